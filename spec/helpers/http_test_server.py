#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Test HTTP(S) server for spec/host/http_spec.lua (Python 3 stdlib only).

Prints one JSON line on stdout once listening: {"port": P, "pid": PID, "closed_port": Q}
(Q: a port that was free a moment ago, for "connection refused" tests), then serves until
killed, or until --lifetime seconds pass so a crashed test run leaves nothing behind.

Endpoints (HTTP/1.1, keep-alive):
  ANY  /echo            JSON {method, path, headers (names lower-cased), body_hex, conn}
  ANY  /status/N        status N, body "status N"
  GET  /slow?s=SECONDS  sleeps, then 200 "slow"
  GET  /big?n=BYTES     n bytes of "x"
  GET  /big-chunked?n=  the same, chunked (no Content-Length, so the client learns late)
  GET  /conn            JSON {conn, port}: a per-connection id and the client's source port
  GET  /clientcert      JSON {cn}: the verified client certificate's CN, or null
  GET  /repeat          two Set-Cookie and two X-Multi headers
  GET  /redirect        302 to /echo
"""
import argparse
import itertools
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_conn_ids = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible

    def setup(self):
        super().setup()
        self.conn_id = next(_conn_ids)

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body, ctype="application/json", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status=200):
        self._send(status, json.dumps(obj))

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        body = self._read_body()
        parts = url.path.strip("/").split("/")
        if parts[0] == "echo":
            headers = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            self._json({
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body_hex": body.hex(),
                "conn": self.conn_id,
            })
        elif parts[0] == "status":
            code = int(parts[1])
            self._send(code, "status %d" % code, "text/plain")
        elif parts[0] == "slow":
            time.sleep(float(query.get("s", ["5"])[0]))
            self._send(200, "slow", "text/plain")
        elif parts[0] == "big":
            self._send(200, b"x" * int(query["n"][0]), "application/octet-stream")
        elif parts[0] == "big-chunked":
            self._chunked(int(query["n"][0]))
        elif parts[0] == "conn":
            self._json({"conn": self.conn_id, "port": self.client_address[1]})
        elif parts[0] == "clientcert":
            self._json({"cn": self._peer_cn()})
        elif parts[0] == "repeat":
            self._send(200, "", "text/plain", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                               ("X-Multi", "one"), ("X-Multi", "two")])
        elif parts[0] == "redirect":
            self._send(302, "", "text/plain", [("Location", "/echo")])
        else:
            self._send(404, "not found", "text/plain")

    def _chunked(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        while n > 0:
            part = chunk[:n]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            n -= len(part)
        self.wfile.write(b"0\r\n\r\n")

    def _peer_cn(self):
        getpeercert = getattr(self.connection, "getpeercert", None)
        cert = getpeercert() if getpeercert else None
        for rdn in (cert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return value
        return None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    ssl_context = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's thread, so a client that fails
        # it (wrong CA, timeouts) never blocks the accept loop.
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:  # ssl.SSLError included
            return
        with tls:
            super().finish_request(tls, client_address)

    def handle_error(self, request, client_address):  # clients hang up on purpose in tests
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--client-ca", help="CA for optional client certificates")
    parser.add_argument("--require-client-cert", action="store_true")
    parser.add_argument("--lifetime", type=float, default=300)
    args = parser.parse_args()

    server = Server(("127.0.0.1", 0), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.load_verify_locations(args.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL
        server.ssl_context = ctx

    def watchdog():
        time.sleep(args.lifetime)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    info = {"port": server.server_address[1], "pid": os.getpid(), "closed_port": free_port()}
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
