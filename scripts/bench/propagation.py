#!/usr/bin/env python3
"""Propagation benchmark: a commit by another process -> the first request that the proxy serves from it.

Starts two loopback backends answering "a" and "b", a store with one route, and `ficus serve --store` on it. A
client thread sends keep-alive GETs back to back and notes when each answer arrives. FLIPS times, a separate
`ficus flip` process moves the route to the other backend; the latency of one flip is the time from the commit (the
revision's created_at, written inside the committing transaction) to the first answer from the new backend.
Usage: propagation.py FICUS_BINARY [FLIPS]   (loopback only; bounded: FLIPS flips, 10 s per flip at most)
"""
import datetime
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

FICUS = sys.argv[1]
FLIPS = int(sys.argv[2]) if len(sys.argv) > 2 else 50


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend(body):
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


work = tempfile.mkdtemp(prefix="ficus-propagation-")
store = os.path.join(work, "ficus.sqlite")


def ficus(*args):
    return subprocess.run([FICUS, *args, "--store", store], check=True, capture_output=True, text=True).stdout


port_a, port_b = backend(b"a"), backend(b"b")
ficus("init")
ficus("upstream", "add", "a", "127.0.0.1:%d" % port_a)
ficus("upstream", "add", "b", "127.0.0.1:%d" % port_b)
ficus("route", "add", "r", "--prefix", "/", "--to", "a")
proxy_port, admin_port = free_port(), free_port()
serve = subprocess.Popen(
    [FICUS, "serve", "--store", store, "--listen", "127.0.0.1:%d" % proxy_port,
     "--admin", "127.0.0.1:%d" % admin_port, "--threads", "1", "--access-log", "off", "--log-level", "warning"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

latest = {"body": None, "changed_at": {}}
stop = threading.Event()


def client():
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            sock = socket.create_connection(("127.0.0.1", proxy_port))
            break
        except OSError:
            time.sleep(0.05)
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    buffer = b""
    while not stop.is_set():
        sock.sendall(request)
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(4096)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(buffer) < length:
            buffer += sock.recv(4096)
        body, buffer = buffer[:length], buffer[length:]
        now = time.time()
        if body != latest["body"]:
            latest["body"] = body
            latest["changed_at"].setdefault(body, []).append(now)


thread = threading.Thread(target=client, daemon=True)
thread.start()
deadline = time.time() + 10
while latest["body"] != b"a" and time.time() < deadline:
    time.sleep(0.01)

latencies = []
db = sqlite3.connect(store)
for flip in range(FLIPS):
    target = "b" if flip % 2 == 0 else "a"
    seen_before = len(latest["changed_at"].get(target.encode(), []))
    ficus("flip", "r", "--to", target)
    created = db.execute("SELECT created_at FROM revisions ORDER BY number DESC LIMIT 1").fetchone()[0]
    committed = datetime.datetime.strptime(created, "%Y-%m-%d %H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    deadline = time.time() + 10
    while len(latest["changed_at"].get(target.encode(), [])) == seen_before and time.time() < deadline:
        time.sleep(0.0005)
    seen = latest["changed_at"][target.encode()][-1]
    latencies.append((seen - committed) * 1000)

stop.set()
serve.terminate()
serve.wait(timeout=10)
latencies.sort()


def percentile(p):
    return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))]


print(json.dumps({
    "flips": len(latencies),
    "p50_ms": round(percentile(50), 2),
    "p90_ms": round(percentile(90), 2),
    "p99_ms": round(percentile(99), 2),
    "max_ms": round(latencies[-1], 2),
    "poll_interval_ms": 5,
}))
