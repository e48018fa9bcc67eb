"""Shared plumbing for the fake cloud APIs (fake_aws.py, fake_tencentcloud.py).

Python 3 stdlib only. Provides:
  - Request: one received HTTP request (raw path/query bytes, headers in order, body).
  - Reply: an answer plus transport misbehaviour (delay, hang, reset, close).
  - Store: the request log, the reboot record, the fault table, settings, a lock.
  - ApiHandler: an HTTP/1.1 handler that hands every request to an app and performs
    the Reply (including the faults that never answer).
  - control_handler(): the control port (plain HTTP JSON) built from a route table.
  - run(): argument parsing, listeners, the ready line, --lifetime.
See spec/fakes/README.md ("Fake cloud APIs").
"""

import argparse
import hashlib
import itertools
import json
import os
import select
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def digest(secret):
    """sha256 hex prefix shown in logs in place of a secret (token, signature)."""
    if secret is None:
        return None
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    return hashlib.sha256(secret).hexdigest()[:16]


def request_id():
    return str(uuid.uuid4())


def iso8601(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_time(value):
    """Unix seconds (number) or ISO-8601 'YYYY-MM-DDTHH:MM:SSZ' -> float, None stays None."""
    if value is None or isinstance(value, (int, float)):
        return value
    import calendar
    return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))


class Request:
    """One HTTP request as received. path/query are bytes exactly as on the request line."""

    def __init__(self, method, target, headers, body, port):
        self.method = method
        raw = target.encode("latin-1") if isinstance(target, str) else target
        path, _, query = raw.partition(b"?")
        self.raw_path, self.raw_query = path, query
        self.path = urllib.parse.unquote(path.decode("latin-1"))
        self.headers = headers  # list of (name, value) in order, duplicates kept
        self.body = body
        self.port = port

    def header(self, name):
        """All values of a header joined with ',' (None when absent)."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ",".join(values) if values else None

    def query_params(self):
        return urllib.parse.parse_qsl(self.raw_query.decode("latin-1"), keep_blank_values=True)


class Reply:
    """An answer. Transport faults: delay (seconds before anything happens), hang (never
    answer until the client closes), reset (close with RST, no answer), close (FIN, no answer)."""

    def __init__(self, status=200, body=b"", content_type="application/json", headers=None):
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = list(headers or [])
        self.delay = 0
        self.hang = False
        self.reset = False
        self.close = False


def json_reply(value, status=200, headers=None):
    return Reply(status, json.dumps(value), "application/json", headers)


class Store:
    """State shared by the api and control ports. Every access holds self.lock."""

    def __init__(self, cfg, default_settings):
        self.lock = threading.RLock()
        self.ids = itertools.count(1)
        self.requests = []
        self.reboots = []
        self.faults = {}
        self.fault_hits = []
        self.settings = dict(default_settings)
        self.settings.update(cfg.get("settings") or {})
        self.set_faults(cfg.get("faults") or {})

    def now(self):
        """The fake's clock: real time plus settings.clock_offset."""
        return time.time() + float(self.settings.get("clock_offset") or 0)

    def log(self, entry):
        with self.lock:
            entry["id"] = next(self.ids)
            entry["time"] = time.time()
            self.requests.append(entry)
            if len(self.requests) > 5000:
                del self.requests[:1000]
            return entry

    def set_faults(self, table):
        if not isinstance(table, dict):
            raise ValueError("faults must be an object keyed by action (or \"*\")")
        with self.lock:
            self.faults = {k: dict(v) for k, v in table.items()}

    def take_fault(self, action):
        """The fault for this action (else "*"), counting down `times`; a copy, or None."""
        with self.lock:
            for key in (action, "*"):
                spec = self.faults.get(key)
                if spec is None:
                    continue
                times = spec.get("times")
                if times is not None:
                    if times <= 0:
                        del self.faults[key]
                        continue
                    spec["times"] = times - 1
                    if spec["times"] <= 0:
                        del self.faults[key]
                hit = dict(spec, key=key)
                self.fault_hits.append({"action": action, "key": key, "time": time.time()})
                return hit
        return None


def apply_transport(reply, fault):
    """Copies a fault's transport directives onto a reply."""
    if fault:
        reply.delay = float(fault.get("delay") or 0)
        reply.hang = bool(fault.get("hang"))
        reply.reset = bool(fault.get("reset"))
        reply.close = bool(fault.get("close") or fault.get("drop"))
    return reply


def redact_headers(headers, secret_names, digest_names=()):
    out = []
    for name, value in headers:
        low = name.lower()
        if low in secret_names:
            value = "<redacted sha256:%s>" % digest(value)
        elif low in digest_names:
            value = digest_names[low](value)
        out.append([name, value])
    return out


class ApiHandler(BaseHTTPRequestHandler):
    """Reads one request, asks `self.server.app.handle(Request)` for a Reply, performs it."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        body = self.read_body()
        req = Request(self.command, self.path, list(self.headers.items()), body, self.server.server_address[1])
        try:
            reply = self.server.app.handle(req)
        except Exception as exc:  # a bug in the fake: answer 500 so the spec sees it
            import traceback
            traceback.print_exc()
            reply = Reply(500, "fake cloud internal error: %r" % (exc,), "text/plain")
        self.perform(reply)

    def perform(self, reply):
        if reply.delay:
            time.sleep(reply.delay)
        if reply.hang:
            self.wait_for_client_close()
            self.close_connection = True
            return
        if reply.reset:
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.connection.close()
            except OSError:
                pass
            return
        if reply.close:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        if not any(name.lower() == "server" for name, _ in reply.headers):
            self.send_header("Server", "FakeCloud")
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def wait_for_client_close(self):
        sock = self.connection
        while True:
            try:
                readable, _, _ = select.select([sock], [], [], 0.5)
                if readable:
                    data = sock.recv(65536)
                    if not data:
                        return
            except OSError:
                return

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class ControlHandler(BaseHTTPRequestHandler):
    """Control port: JSON in and out. server.routes: {(METHOD, "/path"): fn(body, query)} and
    server.prefix_routes: {(METHOD, "/prefix/"): fn(rest, body, query)}."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        query = dict(urllib.parse.parse_qsl(query))
        try:
            body = json.loads(raw) if raw.strip() else None
            fn = self.server.routes.get((self.command, path))
            if fn is not None:
                value = fn(body, query)
            else:
                for (method, prefix), pfn in self.server.prefix_routes.items():
                    if method == self.command and path.startswith(prefix) and len(path) > len(prefix):
                        value = pfn(urllib.parse.unquote(path[len(prefix):]), body, query)
                        break
                else:
                    raise LookupError("no control route %s %s" % (self.command, path))
            status, out = 200, value
        except LookupError as exc:
            status, out = 404, {"error": str(exc)}
        except (ValueError, TypeError, KeyError) as exc:
            status, out = 400, {"error": "%s: %s" % (type(exc).__name__, exc)}
        data = json.dumps(out if out is not None else {}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


def common_routes(store):
    """Control routes every fake has: request log, reboots, faults, settings."""

    def get_requests(_body, query):
        since = int(query.get("since", 0))
        with store.lock:
            return [r for r in store.requests if r["id"] > since]

    def clear_requests(_body, _query):
        with store.lock:
            store.requests.clear()
        return {}

    def get_reboots(_body, _query):
        with store.lock:
            return list(store.reboots)

    def clear_reboots(_body, _query):
        with store.lock:
            store.reboots.clear()
        return {}

    def put_faults(body, _query):
        store.set_faults(body or {})
        return store.faults

    def get_faults(_body, _query):
        with store.lock:
            return {"faults": store.faults, "hits": store.fault_hits}

    def put_settings(body, _query):
        if not isinstance(body, dict):
            raise ValueError("settings must be an object")
        with store.lock:
            store.settings.update(body)
            return store.settings

    def get_settings(_body, _query):
        with store.lock:
            return dict(store.settings, now=store.now())

    return {
        ("GET", "/requests"): get_requests,
        ("DELETE", "/requests"): clear_requests,
        ("GET", "/reboots"): get_reboots,
        ("DELETE", "/reboots"): clear_reboots,
        ("PUT", "/faults"): put_faults,
        ("GET", "/faults"): get_faults,
        ("PUT", "/settings"): put_settings,
        ("GET", "/settings"): get_settings,
        ("GET", "/health"): lambda _b, _q: {"ok": True},
    }


class NoDelayServer(ThreadingHTTPServer):
    """Sets TCP_NODELAY on every connection, as Go's and the clouds' servers do;
    without it a header write followed by a body write waits ~40 ms on the
    client's delayed ACK, which would distort every latency measured here.
    The listen backlog is Go's (SOMAXCONN) too: Python's default of 5 drops
    the SYNs of a burst of new connections, and each waits a 1 s retransmit."""

    request_queue_size = socket.SOMAXCONN

    def finish_request(self, request, client_address):
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().finish_request(request, client_address)


def listen(handler, app=None):
    srv = NoDelayServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.app = app
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run(description, build, self_test):
    """Command line: --config FILE, --lifetime SECONDS, --self-test [VECTOR_DIR].
    build(cfg) -> (app, routes, prefix_routes, extra_ports) where extra_ports is a dict
    name -> True for additional api listeners (e.g. {"pod_identity_port": True})."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="JSON configuration file")
    parser.add_argument("--lifetime", type=float, default=900, help="exit after this many seconds")
    parser.add_argument("--self-test", nargs="?", const="", metavar="VECTOR_DIR",
                        help="check the verifier against the published test vectors and exit")
    args = parser.parse_args()
    if args.self_test is not None:
        sys.exit(self_test(args.self_test or None))
    cfg = {}
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            cfg = json.load(f)
    app, routes, prefix_routes, extra = build(cfg)
    api = listen(ApiHandler, app)
    control = listen(ControlHandler)
    control.routes, control.prefix_routes = routes, prefix_routes
    ready = {"port": api.server_address[1], "control_port": control.server_address[1], "pid": os.getpid()}
    for name in extra:
        ready[name] = listen(ApiHandler, app).server_address[1]
    app.ports = ready
    print(json.dumps(ready), flush=True)
    time.sleep(args.lifetime)
    os._exit(0)


class Checks:
    """Tiny assertion collector for --self-test."""

    def __init__(self):
        self.failures = 0
        self.count = 0

    def eq(self, name, got, want):
        self.count += 1
        if got != want:
            self.failures += 1
            print("FAIL %s\n  got:  %r\n  want: %r" % (name, got, want))
        return got == want

    def true(self, name, cond, detail=""):
        self.count += 1
        if not cond:
            self.failures += 1
            print("FAIL %s %s" % (name, detail))
        return bool(cond)

    def finish(self, what):
        print("%s: %d checks, %d failures" % (what, self.count, self.failures))
        return 1 if self.failures else 0


def default_vector_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "..", "..", "..", "shared", "testvectors"),
                      os.path.join(here, "..", "..", "shared", "testvectors")):
        if os.path.isdir(candidate):
            return os.path.normpath(candidate)
    return None


def parse_http_message(data):
    """Parses a test-vector request file (bytes): request line, 'Name:value' lines, blank, body.
    Returns (method, target bytes, [(name, value)], body bytes)."""
    head, sep, body = data.partition(b"\n\n")
    lines = head.split(b"\n")
    method, target, _ = lines[0].split(b" ", 2)
    headers = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[:1] in (b" ", b"\t") and headers:  # folded continuation line
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.decode("utf-8").strip())
            continue
        name, _, value = line.partition(b":")
        headers.append((name.decode("utf-8"), value.decode("utf-8").strip()))
    return method.decode(), target, headers, body if sep else b""
