#!/usr/bin/env python3
"""The shadow upstream for scripts/bench-shadow.sh: answers every request with a small JSON body after DELAY_MS.

Usage: shadow_backend.py PORT DELAY_MS   (binds 127.0.0.1 only; runs until killed)

One thread per connection (the proxy opens one upstream connection per request in flight, so rate × delay threads
are busy at once: 400 req/s × 0.2 s = 80). Each answer, head and body, leaves in ONE write: two small writes on a
keep-alive connection meet Nagle's algorithm and delayed ACKs and add ~40 ms, which would be blamed on the proxy.
The body is the serving backend's (nginx `return 200`), so the comparer sees equal answers.
"""
import http.server
import socket
import sys
import time

PORT = int(sys.argv[1])
DELAY = float(sys.argv[2]) / 1000.0
BODY = b'{"id":7,"status":"shipped"}\n'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def answer(self, with_body):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if DELAY > 0:
            time.sleep(DELAY)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
        ).encode("ascii")
        self.wfile.write(head + BODY if with_body else head)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

    def do_OPTIONS(self):
        self.answer(True)

    def do_POST(self):
        self.answer(True)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    Server(("127.0.0.1", PORT), Handler).serve_forever()
