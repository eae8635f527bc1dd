#!/usr/bin/env python3
"""A small HTTP/1.1 keep-alive backend for scripted tests: answers every request with BODY after DELAY_MS."""
import http.server
import os
import sys
import time

DELAY = float(os.environ.get("DELAY_MS", "20")) / 1000.0
BODY = (os.environ.get("BODY", "ok") + "\n").encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(DELAY)
        body = BODY
        # One write per answer: a head and a body in two small writes meet Nagle and delayed ACKs (~40 ms stalls).
        head = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        self.wfile.write(head.encode() + body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
