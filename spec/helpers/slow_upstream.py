#!/usr/bin/env python3
"""A plain-HTTP upstream for end-to-end specs: GET /sleep?seconds=N answers
after N seconds (a slow cloud API). Prints its port on stdout, then serves
until killed. Standard library only."""
import http.server
import sys
import time
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/sleep":
            self.send_error(404)
            return
        seconds = float(urllib.parse.parse_qs(url.query).get("seconds", ["1"])[0])
        time.sleep(min(seconds, 30.0))
        body = b"slept\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
