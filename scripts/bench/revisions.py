#!/usr/bin/env python3
"""Revision storage benchmark (issue 18, item 3): what a flip costs with 10, 1,000 and 10,000 routes of 10 rules.

For each size and backend (SQLite file; PostgreSQL on a throwaway cluster from scripts/postgres-test-cluster.sh):
  1. `ficus-store-probe revisions STORE ROUTES FLIPS` commits the configuration, then FLIPS flips of one random route
     in-process: per flip the commit time, the bytes it stored (new object versions' JSON + the layout column), and
     what a second store instance (a proxy's reader, cache warm) takes to read the new revision and to compile the
     routing table from it.
  2. CLI_FLIPS runs of the real `ficus flip ROUTE --to UPSTREAM --store STORE`, timed end to end (process start to
     exit), with the bytes each wrote: for PostgreSQL the WAL bytes the server generated (pg_current_wal_lsn before
     and after, read outside the timing); for SQLite three more flips under strace, summing what pwrite/write put into
     the store's files (WAL frames, then the checkpoint's pages into the database file).
Usage: revisions.py FICUS_BINARY PROBE_BINARY [FLIPS] [CLI_FLIPS]   (loopback and temporary files only; bounded)
"""
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

FICUS, PROBE = sys.argv[1], sys.argv[2]
FLIPS = int(sys.argv[3]) if len(sys.argv) > 3 else 30
CLI_FLIPS = int(sys.argv[4]) if len(sys.argv) > 4 else 20
SIZES = [int(size) for size in os.environ.get("SIZES", "10,1000,10000").split(",")]
BACKENDS = os.environ.get("BACKENDS", "sqlite,postgres").split(",")
HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = os.path.join(HERE, "..", "postgres-test-cluster.sh")


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def probe(store, routes):
    out = subprocess.run([PROBE, "revisions", store, str(routes), str(FLIPS)], check=True, capture_output=True,
                         text=True, timeout=1800).stdout
    initial, flips = {}, []
    for line in out.splitlines():
        words = line.split()
        first = 2 if words[0] == "flip" else 1
        fields = {words[i]: words[i + 1] for i in range(first, len(words) - 1, 2)}
        if words[0] == "initial":
            initial = fields
        elif words[0] == "flip":
            flips.append({key: float(value) for key, value in fields.items()})
    return initial, flips


def sqlite_bytes(path):
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def wal_lsn(store):
    return int(subprocess.run(["psql", store, "-Atc", "SELECT pg_current_wal_lsn() - '0/0'"], check=True,
                              capture_output=True, text=True).stdout.strip())


def strace_bytes(store, routes):
    written = []
    # route-0 to one side and back, four times: every flip after the first changes it, whatever it was.
    for flip in range(5):
        trace = store + ".strace"
        target = "modern" if flip % 2 == 0 else "legacy"
        subprocess.run(["strace", "-f", "-y", "-e", "trace=pwrite64,write", "-e", "signal=none", "-o", trace, FICUS,
                        "flip", "route-0", "--to", target, "--store", store, "--reason", "bench"],
                       check=True, capture_output=True)
        total = 0
        with open(trace) as lines:
            for line in lines:
                if store in line and "= " in line:
                    result = line.rsplit("= ", 1)[1].split()[0]
                    if result.isdigit():
                        total += int(result)
        os.remove(trace)
        if flip > 0:
            written.append(total)
    return written


def cli_flips(store, routes, backend):
    times, written = [], []
    for flip in range(CLI_FLIPS):
        route = f"route-{random.randrange(routes)}"
        # To whichever side the route is not on: the first try names one side and, when the route is there already
        # ("nothing to change", nothing written), the other side is timed instead.
        for target in ("modern", "legacy"):
            before = sqlite_bytes(store) if backend == "sqlite" else wal_lsn(store)
            started = time.perf_counter()
            result = subprocess.run([FICUS, "flip", route, "--to", target, "--store", store, "--reason", "bench"],
                                    capture_output=True, text=True)
            elapsed = (time.perf_counter() - started) * 1000
            if result.returncode == 0 and "nothing to change" not in result.stderr:
                after = sqlite_bytes(store) if backend == "sqlite" else wal_lsn(store)
                times.append(elapsed)
                written.append(after - before)
                break
    return times, written


work = tempfile.mkdtemp(prefix="ficus-revisions-")
os.chmod(work, 0o755)
cluster = None
rows = []
try:
    if "postgres" in BACKENDS:
        cluster = os.path.join(work, "pg")
        server = subprocess.run(["bash", CLUSTER, "start", cluster], check=True, capture_output=True,
                                text=True).stdout.strip()
    for backend in BACKENDS:
        for routes in SIZES:
            if backend == "sqlite":
                store = os.path.join(work, f"store-{routes}.sqlite")
            else:
                name = f"bench_{routes}"
                subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
                store = server.replace("/postgres?", f"/{name}?")
            initial, flips = probe(store, routes)
            times, written = cli_flips(store, routes, backend)
            if backend == "sqlite":
                written = strace_bytes(store, routes)
            commit = [f["commit_ms"] for f in flips]
            read = [f["read_ms"] for f in flips]
            compile_ = [f["compile_ms"] for f in flips]
            apply = [f["read_ms"] + f["compile_ms"] for f in flips]
            stored = [f["new_object_bytes"] + f["layout_bytes"] for f in flips]
            checkpoints = sum(int(f["checkpoint"]) for f in flips)
            rows.append((backend, routes, initial, commit, read, compile_, apply, stored, checkpoints, times, written))
            print(f"{backend} {routes} routes: initial commit {initial.get('commit_ms')} ms, "
                  f"{initial.get('objects')} objects, {int(initial.get('object_bytes', 0)) // 1024} KiB of JSON; "
                  f"flip commit p50 {pct(commit, 50):.2f} ms; stored p50 {pct(stored, 50):.0f} B max {max(stored):.0f} B "
                  f"({checkpoints} checkpoints in {len(flips)}); read p50 {pct(read, 50):.2f} p99 {pct(read, 99):.2f} ms; "
                  f"compile p50 {pct(compile_, 50):.2f} p99 {pct(compile_, 99):.2f} ms; apply p50 {pct(apply, 50):.2f} "
                  f"p99 {pct(apply, 99):.2f} ms; `ficus flip` p50 {pct(times, 50):.1f} p99 {pct(times, 99):.1f} ms "
                  f"(n={len(times)}), wrote p50 {pct(written, 50) / 1024:.1f} KiB max {max(written) / 1024:.1f} KiB",
                  flush=True)
finally:
    if cluster:
        subprocess.run(["bash", CLUSTER, "stop", cluster], capture_output=True)
