# SPDX-License-Identifier: Apache-2.0
"""The aggregation layer's proxy, as kube-aggregator does it (handler_proxy.go, client-go
SetAuthProxyHeaders, apimachinery UpgradeAwareHandler): verify the backend against the
APIService caBundle as <service>.<namespace>.svc, present the front-proxy client cert, pass
method/path/body, re-encode the query with keys sorted, replace identity headers.
"""
import http.client
import socket
import ssl
import string
import threading
import urllib.parse

HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
CORS = {"access-control-allow-credentials", "access-control-allow-headers",
        "access-control-allow-methods", "access-control-allow-origin"}
_TCHAR = set((string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode())
REDIRECT_MSG = "the backend attempted to redirect this request, which is not permitted"


class ProxyFailure(Exception):
    """The aggregator's own error answer: (code, text body) or a Status when status is set."""

    def __init__(self, code, text, status=None):
        super().__init__(text)
        self.code, self.text, self.status = code, text, status


def escape_extra_key(key):
    """client-go headerKeyEscape: non-tchar bytes and '%' become %XX (upper hex)."""
    return "".join(chr(b) if b in _TCHAR and b != ord("%") else "%%%02X" % b for b in key.encode())


def canonical(name):
    """Go textproto.CanonicalMIMEHeaderKey (names with non-token bytes stay as they are)."""
    if any(b not in _TCHAR for b in name.encode()):
        return name
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def go_query_encode(raw_query):
    """url.Values.Encode() of req.URL.Query(): keys sorted, QueryEscape'd, '+' for space."""
    pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    by_key = {}
    for k, v in pairs:
        by_key.setdefault(k, []).append(v)
    q = lambda s: urllib.parse.quote_plus(s, safe="")  # noqa: E731
    return "&".join("%s=%s" % (q(k), q(v)) for k in sorted(by_key) for v in by_key[k])


def is_discovery(path):
    return len(path.strip("/").split("/")) == 3


class _Conn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port but TLS server name (SNI + hostname check) from the APIService."""

    def __init__(self, host, port, server_name, context, timeout):
        super().__init__(host, port, context=context, timeout=timeout)
        self.server_name = server_name
        self.reused = False

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)
        if self.sock.selected_alpn_protocol() == "h2":
            raise ssl.SSLError("backend selected ALPN h2; this fake speaks HTTP/1.1 only")


class Proxy:
    """Backend settings, a small keep-alive pool, and the forwarding itself."""

    def __init__(self, settings):
        self.lock = threading.Lock()
        self.settings, self.context, self.idle = {}, None, []
        self.configure(settings)

    def configure(self, changes):
        """Merge backend settings (url, ca_file, server_name, cert, key, timeouts, available)."""
        with self.lock:
            self.settings.update(changes or {})
            self.context, self.idle = None, []

    def _context(self):
        s = self.settings
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=s["ca_file"])
        if s.get("cert"):
            ctx.load_cert_chain(s["cert"], s["key"])
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx

    def _checkout(self, timeout):
        with self.lock:
            if self.context is None:
                self.context = self._context()
            if self.idle:
                conn = self.idle.pop()
                conn.reused = True
                conn.timeout = timeout
                if conn.sock:
                    conn.sock.settimeout(timeout)
                return conn
            url = urllib.parse.urlsplit(self.settings["url"])
            return _Conn(url.hostname, url.port or 443, self.settings["server_name"], self.context, timeout)

    def _checkin(self, conn):
        with self.lock:
            if len(self.idle) < 8 and conn.sock:
                self.idle.append(conn)
            else:
                conn.close()

    def outgoing_headers(self, client_headers, user, client_ip, audit_id, path):
        """The header list the backend receives (Go sorts header names when writing)."""
        url = urllib.parse.urlsplit(self.settings["url"])
        named = {h.strip().lower() for n, v in client_headers if n.lower() == "connection"
                 for h in v.split(",")}
        keep, forwarded_for = [], None
        for name, value in client_headers:
            low = name.lower()
            if low in HOP_BY_HOP or low in named or low in ("host", "authorization", "content-length"):
                continue
            if low.startswith("impersonate-") or low.startswith("x-remote-") or low == "audit-id":
                continue
            if low == "x-forwarded-for":
                forwarded_for = (forwarded_for + ", " if forwarded_for else "") + value
                continue
            keep.append((canonical(name), value))
        keep.append(("X-Forwarded-For", (forwarded_for + ", " if forwarded_for else "") + client_ip))
        keep.append(("X-Forwarded-Uri", path))
        keep.append(("Audit-Id", audit_id))
        keep.append(("X-Remote-User", user["username"]))
        if user.get("uid") and self.settings.get("send_uid", True):
            keep.append(("X-Remote-Uid", user["uid"]))
        keep += [("X-Remote-Group", g) for g in user.get("groups", [])]
        for key in sorted(user.get("extra") or {}):
            keep += [(canonical("X-Remote-Extra-" + escape_extra_key(key)), v) for v in user["extra"][key]]
        keep.sort(key=lambda nv: nv[0])
        return [("Host", url.netloc)] + keep

    def forward(self, method, path, raw_query, client_headers, body, user, client_ip, audit_id):
        """Returns (status, header list, body, upstream-request record); raises ProxyFailure."""
        if not self.settings.get("url") or not self.settings.get("available", True):
            raise ProxyFailure(503, "service unavailable")
        discovery = is_discovery(path)
        timeouts = self.settings.get("timeouts", {})
        timeout = float(timeouts.get("discovery", 5) if discovery else timeouts.get("default", 60))
        query = go_query_encode(raw_query)
        target = path + ("?" + query if query else "")
        headers = self.outgoing_headers(client_headers, user, client_ip, audit_id, path)
        if body or method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body))))
        record = {"method": method, "target": target, "headers": headers}
        for attempt in (1, 2):
            conn = None
            try:
                conn = self._checkout(timeout)
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as err:
                reused = conn is not None and conn.reused
                if conn:
                    conn.close()
                if reused and attempt == 1:
                    continue
                raise ProxyFailure(503, "error trying to reach service: %s" % err) from None
            except (socket.timeout, TimeoutError):
                conn.close()
                if discovery:
                    raise ProxyFailure(503, "error trying to reach service: context deadline exceeded") from None
                raise ProxyFailure(504, "", status="request did not complete within requested timeout - "
                                   "context deadline exceeded") from None
            except (OSError, ssl.SSLError, http.client.HTTPException) as err:
                if conn:
                    conn.close()
                raise ProxyFailure(503, "error trying to reach service: %s" % err) from None
            if resp.will_close:
                conn.close()
            else:
                self._checkin(conn)
            record["status"] = resp.status
            return self._response(resp, data) + (record,)
        raise ProxyFailure(503, "error trying to reach service: connection lost")

    @staticmethod
    def _response(resp, data):
        if 300 <= resp.status <= 399 and resp.getheader("Location"):
            return 502, [("Content-Type", "text/plain; charset=utf-8")], REDIRECT_MSG.encode()
        named = {h.strip().lower() for h in (resp.getheader("Connection") or "").split(",")}
        out = [(n, v) for n, v in resp.getheaders()
               if n.lower() not in HOP_BY_HOP and n.lower() not in named and n.lower() not in CORS
               and n.lower() != "content-length"]
        return resp.status, out, data
