#!/usr/bin/env python3
"""Keep-alive load that behaves like a load balancer during a drain, and counts every request's outcome.

Each worker holds one keep-alive connection and sends GET after GET. A response with `Connection: close` is the
drain signal: the worker stops sending there, as a load balancer takes a draining instance out of rotation. Every
request written must come back as a complete 2xx answer; anything else is a failed request.
Usage: drain_probe.py PORT WORKERS SECONDS  (prints one JSON line; exit 0 when no request failed)
"""
import json
import socket
import sys
import threading
import time

PORT, WORKERS, SECONDS = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
lock = threading.Lock()
totals = {"ok": 0, "failed": 0, "drained": 0, "refused": 0}
failures = []


def read_response(sock, buffer):
    """Reads one Content-Length response; returns (status, close, rest) or raises on a short read."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    length = int(fields.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of the body")
        rest += chunk
    return status, fields.get("connection") == "close", rest[length:]


def worker(deadline):
    try:
        sock = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    except OSError:
        with lock:
            totals["refused"] += 1
        return
    buffer = b""
    while time.time() < deadline:
        try:
            sock.sendall(b"GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n")
            status, close, buffer = read_response(sock, buffer)
        except OSError as error:
            with lock:
                totals["failed"] += 1
                failures.append(repr(error))
            return
        with lock:
            if 200 <= status < 300:
                totals["ok"] += 1
            else:
                totals["failed"] += 1
                failures.append("status %d" % status)
        if close:
            with lock:
                totals["drained"] += 1
            return
    sock.close()


deadline = time.time() + SECONDS
threads = [threading.Thread(target=worker, args=(deadline,)) for _ in range(WORKERS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
totals["failures"] = failures[:5]
print(json.dumps(totals))
sys.exit(0 if totals["failed"] == 0 and totals["ok"] > 0 else 1)
