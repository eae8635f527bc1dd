"""Shared parts of the propagation benchmarks (propagation.py on SQLite, propagation_fleet.py on PostgreSQL).

Loopback backends that answer a fixed body in one write, a keep-alive client that notes when the answer changes
backend, and percentiles.
"""
import http.server
import socket
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend(body):
    """A loopback HTTP/1.1 server answering `body` to every GET; returns its port."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            # One write per answer: a head and a body in two small writes meet Nagle and delayed ACKs (~40 ms).
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


class Watcher:
    """Sends keep-alive GETs to one proxy and records when each new body is first seen.

    `pause` seconds between requests (0: back to back) bounds the resolution and the CPU the client takes: several
    watchers sending back to back would keep a 2-core machine busy and measure its scheduler instead.
    """

    def __init__(self, port, pause=0.0):
        self.port = port
        self.pause = pause
        self.body = None
        self.changed_at = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.05)
        request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        buffer = b""
        while not self.stop.is_set():
            sock.sendall(request)
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(4096)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            while len(buffer) < length:
                buffer += sock.recv(4096)
            body, buffer = buffer[:length], buffer[length:]
            now = time.time()
            if body != self.body:
                self.body = body
                self.changed_at.setdefault(body, []).append(now)
            if self.pause:
                time.sleep(self.pause)

    def seen(self, body):
        """How many times the answer changed to `body` so far."""
        return len(self.changed_at.get(body, []))

    def wait_for(self, body, count, seconds=10):
        """The time the answer changed to `body` for the `count`-th time, waiting up to `seconds`; None if never."""
        deadline = time.time() + seconds
        while self.seen(body) < count and time.time() < deadline:
            time.sleep(0.0005)
        return self.changed_at[body][count - 1] if self.seen(body) >= count else None


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values):
    return {
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
    }
