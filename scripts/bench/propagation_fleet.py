#!/usr/bin/env python3
"""Fleet propagation benchmark (issue 18): a commit on PostgreSQL -> the first request each of three proxies serves
from it, and how long the commit itself takes.

Starts a throwaway PostgreSQL cluster (scripts/postgres-test-cluster.sh), two loopback backends answering "a" and
"b", a store with one route, and three `ficus serve --store postgres://...` on it, each watched by a client thread
sending keep-alive GETs a millisecond apart. FLIPS times, a separate `ficus flip` process moves the route to the other
backend. Per flip and proxy, the latency is the time from the commit (the revision row's commit timestamp,
pg_xact_commit_timestamp, which the test cluster tracks) to the first answer from the new backend; the commit latency is
the `ficus flip` process's wall time (process start, connection, transaction, exit).
Usage: propagation_fleet.py FICUS_BINARY [FLIPS]   (loopback only; bounded: FLIPS flips, 10 s per flip at most)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from propagation_lib import Watcher, backend, free_port, summary

FICUS = sys.argv[1]
FLIPS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
PROXIES = int(os.environ.get("PROXIES", "3"))
HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = os.path.join(HERE, "..", "postgres-test-cluster.sh")

work = tempfile.mkdtemp(prefix="ficus-propagation-fleet-")
# As root the cluster runs as the postgres user, which must reach its directory.
os.chmod(work, 0o755)
cluster_dir = os.path.join(work, "pg")
store = subprocess.run(["bash", CLUSTER, "start", cluster_dir], check=True, capture_output=True, text=True).stdout.strip()
servers = []
try:
    def ficus(*args):
        return subprocess.run([FICUS, *args, "--store", store], check=True, capture_output=True, text=True).stdout

    def committed_at():
        out = subprocess.run(
            ["psql", store, "-Atc", "SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM revisions "
             "ORDER BY number DESC LIMIT 1"],
            check=True, capture_output=True, text=True).stdout
        return float(out.strip())

    port_a, port_b = backend(b"a"), backend(b"b")
    ficus("init")
    ficus("upstream", "add", "a", "127.0.0.1:%d" % port_a)
    ficus("upstream", "add", "b", "127.0.0.1:%d" % port_b)
    ficus("route", "add", "r", "--prefix", "/", "--to", "a")
    watchers = []
    for index in range(PROXIES):
        proxy_port, admin_port = free_port(), free_port()
        servers.append(subprocess.Popen(
            [FICUS, "serve", "--store", store, "--listen", "127.0.0.1:%d" % proxy_port,
             "--admin", "127.0.0.1:%d" % admin_port, "--threads", "1", "--access-log", "off", "--log-level", "warning",
             "--drain-timeout", "1", "--config-cache", os.path.join(work, "cache-%d.json" % index)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # A request every millisecond per proxy: three clients back to back would saturate two cores.
        watchers.append(Watcher(proxy_port, pause=0.001))
    for watcher in watchers:
        watcher.wait_for(b"a", 1)

    latencies = [[] for _ in range(PROXIES)]
    commits = []
    for flip in range(FLIPS):
        target = ("b" if flip % 2 == 0 else "a").encode()
        seen_before = [watcher.seen(target) for watcher in watchers]
        started = time.time()
        ficus("flip", "r", "--to", target.decode())
        commits.append((time.time() - started) * 1000)
        committed = committed_at()
        for index, watcher in enumerate(watchers):
            seen = watcher.wait_for(target, seen_before[index] + 1)
            if seen is None:
                raise SystemExit("proxy %d never served flip %d" % (index, flip))
            latencies[index].append((seen - committed) * 1000)
    for watcher in watchers:
        watcher.stop.set()
    everything = [value for per_proxy in latencies for value in per_proxy]
    print(json.dumps({
        "flips": FLIPS,
        "proxies": PROXIES,
        "commit_to_served": summary(everything),
        "per_proxy_p99_ms": [round(summary(values)["p99_ms"], 2) for values in latencies],
        "commit_wall": summary(commits),
    }))
finally:
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    subprocess.run(["bash", CLUSTER, "stop", cluster_dir], capture_output=True)
