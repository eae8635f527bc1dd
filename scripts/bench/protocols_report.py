#!/usr/bin/env python3
"""Render scripts/bench-protocols.sh results: one table of all scenarios and the Ficus ÷ nginx ratios against
issue 19's target (CPU per unit at most 1.15× nginx's, as for plain HTTP), optional markdown.

usage: protocols_report.py RESULTS_TSV [--markdown] [--header TEXT]

RESULTS_TSV columns (tab separated, with a header line):
  round scenario target unit rate p99_ms count cpu_us backend_cpu_us proxy_cpu_pct client_cpu_pct errors

With ROUNDS > 1 every number shown is the median over the rounds (errors are summed). The table helpers are
scripts/bench/report.py's, so both reports look alike. Standard library only.
"""

import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fmt, med, num, print_tables, ratio  # noqa: E402

TARGETS = ["nginx", "ficus"]
SCENARIOS = ["tls-32c", "tls-256c", "tls-resume", "tls-new", "h2-c1-m100", "h2-c8-m32", "ws-stream", "ws-pingpong"]
CPU_TARGET = 1.15  # issue 19: the same target as plain HTTP


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["target"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {
            "unit": rs[0]["unit"],
            "rounds": len(rs),
            "rate": med(rs, "rate"),
            "p99": med(rs, "p99_ms"),
            "cpu": med(rs, "cpu_us"),
            "be_cpu": med(rs, "backend_cpu_us"),
            "pcpu": med(rs, "proxy_cpu_pct"),
            "ccpu": med(rs, "client_cpu_pct"),
            "errors": sum(int(num(r["errors"]) or 0) for r in rs),
        }
    return out


def order(summary):
    seen = [s for s in SCENARIOS if any(k[0] == s for k in summary)]
    return seen + sorted({k[0] for k in summary} - set(seen))


def main_table(summary):
    cols = ["scenario", "target", "rate /s", "p99 ms", "proxy CPU µs/unit", "backend CPU µs/unit",
            "proxy CPU %", "client CPU %", "errors"]
    lines = []
    for s in order(summary):
        for t in TARGETS:
            x = summary.get((s, t))
            if x is None:
                continue
            small = x["cpu"] is not None and x["cpu"] < 1
            lines.append([f"{s} ({x['unit']})", t, fmt(x["rate"], ".0f"), fmt(x["p99"], ".2f"),
                          fmt(x["cpu"], ".3f" if small else ".1f"), fmt(x["be_cpu"], ".3f" if small else ".1f"),
                          fmt(x["pcpu"], ".0f"), fmt(x["ccpu"], ".0f"), str(x["errors"])])
    return cols, lines


def ratio_table(summary):
    cols = ["scenario", "CPU/unit ficus÷nginx", f"CPU ≤ {CPU_TARGET:.2f}×", "rate ficus÷nginx", "p99 ficus÷nginx"]
    lines = []
    for s in order(summary):
        f, n = summary.get((s, "ficus")), summary.get((s, "nginx"))
        if f is None or n is None:
            lines.append([s, "n/a", "-", "n/a", "n/a"])
            continue
        cpu = ratio(f["cpu"], n["cpu"])
        lines.append([s, fmt(cpu, ".2f"), "-" if cpu is None else ("yes" if cpu <= CPU_TARGET else "no"),
                      fmt(ratio(f["rate"], n["rate"]), ".2f"), fmt(ratio(f["p99"], n["p99"]), ".2f")])
    return cols, lines


def main():
    args = sys.argv[1:]
    want_md = "--markdown" in args
    header = args[args.index("--header") + 1] if "--header" in args else ""
    paths = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--header")]
    summary = summarize(load(paths[0]))
    rounds = max((x["rounds"] for x in summary.values()), default=0)
    tables = [("Throughput, latency, CPU per unit" + (f" (median of {rounds} rounds)" if rounds > 1 else ""),
               main_table(summary)),
              ("Ficus ÷ nginx (CPU and p99: lower is better; rate: higher is better)", ratio_table(summary))]
    print_tables(tables, want_md, header)


if __name__ == "__main__":
    main()
