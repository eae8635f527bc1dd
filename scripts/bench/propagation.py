#!/usr/bin/env python3
"""Propagation benchmark: a commit by another process -> the first request that the proxy serves from it.

Starts two loopback backends answering "a" and "b", a store with one route, and `ficus serve --store` on it. A
client thread sends keep-alive GETs back to back and notes when each answer arrives. FLIPS times, a separate
`ficus flip` process moves the route to the other backend; the latency of one flip is the time from the commit (the
revision's created_at, written inside the committing transaction) to the first answer from the new backend.
Usage: propagation.py FICUS_BINARY [FLIPS]   (loopback only; bounded: FLIPS flips, 10 s per flip at most)
"""
import datetime
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

from propagation_lib import Watcher, backend, free_port, summary

FICUS = sys.argv[1]
FLIPS = int(sys.argv[2]) if len(sys.argv) > 2 else 50


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

watcher = Watcher(proxy_port)
watcher.wait_for(b"a", 1)

latencies = []
db = sqlite3.connect(store)
for flip in range(FLIPS):
    target = "b" if flip % 2 == 0 else "a"
    seen_before = watcher.seen(target.encode())
    ficus("flip", "r", "--to", target)
    created = db.execute("SELECT created_at FROM revisions ORDER BY number DESC LIMIT 1").fetchone()[0]
    committed = datetime.datetime.strptime(created, "%Y-%m-%d %H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    seen = watcher.wait_for(target.encode(), seen_before + 1)
    latencies.append((seen - committed) * 1000)

watcher.stop.set()
serve.terminate()
serve.wait(timeout=10)
print(json.dumps({"flips": len(latencies), **summary(latencies), "poll_interval_ms": 5}))
