#!/usr/bin/env python3
"""Render scripts/bench.sh results: a table, Ficus/nginx ratios, optional markdown.

With the store targets (ficus-store, ficus-features, ficus-features-nostale) a
further table compares each with plain ficus (and the feature targets with
ficus-store) in the same run: CPU/request, req/s and p99 ratios.

usage: report.py RESULTS_TSV IDLE_TSV [--markdown] [--header TEXT]
                 [--ficus-status TEXT]

--ficus-status: anything but "measured" / "not requested" adds a "ficus
(pending)" row per scenario, so a run before Ficus exists says so.

RESULTS_TSV columns (tab separated, with a header line):
  round target conns body rps p50_ms p99_ms requests cpu_us_req
  backend_cpu_us_req rss_kb non2xx sock_errors
IDLE_TSV columns: target conns_ok conns_failed rss_before_kb rss_after_kb

With ROUNDS > 1 every number shown is the median over the rounds (errors are
summed).  Standard library only.
"""

import csv
import statistics
import sys

TARGETS = ["direct", "nginx", "ficus-before", "ficus", "ficus-log", "ficus-store", "ficus-features", "ficus-features-nostale"]
# (target, baseline) pairs of the features table, shown when both were measured
FEATURE_PAIRS = [("ficus-features", "ficus"), ("ficus-features-nostale", "ficus"), ("ficus-store", "ficus"),
                 ("ficus-features", "ficus-store"), ("ficus-features-nostale", "ficus-store")]
FEATURES_TARGET = 1.03  # issue 17: CPU per request with every feature idle at most 3% above none configured
TEXT_COLS = ("scenario", "target", "comparison")


def load(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except FileNotFoundError:
        return []


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(rows, key):
    vals = [num(r[key]) for r in rows if num(r[key]) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((int(r["conns"]), r["body"], r["target"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {
            "rounds": len(rs),
            "rps": med(rs, "rps"),
            "p50": med(rs, "p50_ms"),
            "p99": med(rs, "p99_ms"),
            "cpu": med(rs, "cpu_us_req"),
            "be_cpu": med(rs, "backend_cpu_us_req"),
            "rss": med(rs, "rss_kb"),
            "errors": sum(int(num(r["non2xx"]) or 0) + int(num(r["sock_errors"]) or 0) for r in rs),
        }
    return out


def scenarios(summary):
    seen = []
    for conns, body, _t in sorted(summary, key=lambda k: (k[1] != "small", k[0])):
        if (conns, body) not in seen:
            seen.append((conns, body))
    return seen


def main_table(summary, pending=False):
    cols = ["scenario", "target", "req/s", "p50 ms", "p99 ms", "proxy CPU µs/req",
            "backend CPU µs/req", "RSS MiB", "errors"]
    lines = []
    for conns, body in scenarios(summary):
        for t in TARGETS:
            s = summary.get((conns, body, t))
            if s is None:
                continue
            lines.append([
                f"{conns}c {body}", t, fmt(s["rps"], ".0f"), fmt(s["p50"], ".2f"),
                fmt(s["p99"], ".2f"), fmt(s["cpu"], ".1f"),
                fmt(s["be_cpu"], ".1f") if t != "direct" else "(=proxy)",
                fmt(None if s["rss"] is None else s["rss"] / 1024, ".1f"), str(s["errors"]),
            ])
        if pending and (conns, body, "ficus") not in summary:
            lines.append([f"{conns}c {body}", "ficus (pending)"] + ["-"] * (len(cols) - 2))
    return cols, lines


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratio_table(summary):
    cols = ["scenario", "CPU/req ficus÷nginx", "req/s ficus÷nginx", "p99 ficus÷nginx"]
    lines = []
    for conns, body in scenarios(summary):
        f = summary.get((conns, body, "ficus"))
        n = summary.get((conns, body, "nginx"))
        if f is None or n is None:
            lines.append([f"{conns}c {body}", "n/a", "n/a", "n/a"])
            continue
        lines.append([f"{conns}c {body}",
                      fmt(ratio(f["cpu"], n["cpu"]), ".2f"),
                      fmt(ratio(f["rps"], n["rps"]), ".2f"),
                      fmt(ratio(f["p99"], n["p99"]), ".2f")])
    return cols, lines


def before_after_table(summary):
    """ficus-before (an earlier build) and ficus, each against nginx and against each other, same run."""
    cols = ["scenario", "CPU/req before÷nginx", "CPU/req after÷nginx", "req/s before÷nginx", "req/s after÷nginx",
            "CPU/req after÷before", "req/s after÷before"]
    lines = []
    for conns, body in scenarios(summary):
        before = summary.get((conns, body, "ficus-before"))
        after = summary.get((conns, body, "ficus"))
        n = summary.get((conns, body, "nginx"))
        if before is None or after is None:
            continue
        get = lambda x, k: None if x is None else x[k]
        lines.append([f"{conns}c {body}",
                      fmt(ratio(before["cpu"], get(n, "cpu")), ".2f"), fmt(ratio(after["cpu"], get(n, "cpu")), ".2f"),
                      fmt(ratio(before["rps"], get(n, "rps")), ".2f"), fmt(ratio(after["rps"], get(n, "rps")), ".2f"),
                      fmt(ratio(after["cpu"], before["cpu"]), ".3f"), fmt(ratio(after["rps"], before["rps"]), ".3f")])
    return cols, lines


def log_table(summary):
    """What the access log costs a request: ficus-log (the ficus target with its log on) against ficus, same run."""
    cols = ["scenario", "CPU/req ficus µs", "CPU/req ficus-log µs", "log µs/req", "req/s ficus-log÷ficus",
            "log ≤ 2 µs"]
    lines = []
    for conns, body in scenarios(summary):
        plain_ = summary.get((conns, body, "ficus"))
        logged = summary.get((conns, body, "ficus-log"))
        if plain_ is None or logged is None or plain_["cpu"] is None or logged["cpu"] is None:
            continue
        delta = logged["cpu"] - plain_["cpu"]
        lines.append([f"{conns}c {body}", fmt(plain_["cpu"], ".1f"), fmt(logged["cpu"], ".1f"), fmt(delta, "+.2f"),
                      fmt(ratio(logged["rps"], plain_["rps"]), ".3f"), "yes" if delta <= 2 else "no"])
    return cols, lines


def short(target):
    return "ficus" if target == "ficus" else target[len("ficus-"):]


def features_table(summary):
    cols = ["scenario", "comparison", "CPU/req ratio", "CPU/req Δ µs", "req/s ratio", "p99 ratio",
            f"CPU ≤ {FEATURES_TARGET:.2f}×"]
    lines = []
    for conns, body in scenarios(summary):
        for target, base in FEATURE_PAIRS:
            a = summary.get((conns, body, target))
            b = summary.get((conns, body, base))
            if a is None or b is None:
                continue
            cpu = ratio(a["cpu"], b["cpu"])
            delta = None if a["cpu"] is None or b["cpu"] is None else a["cpu"] - b["cpu"]
            lines.append([f"{conns}c {body}", f"{short(target)} ÷ {short(base)}", fmt(cpu, ".3f"),
                          fmt(delta, "+.1f"), fmt(ratio(a["rps"], b["rps"]), ".3f"),
                          fmt(ratio(a["p99"], b["p99"]), ".2f"),
                          "-" if cpu is None else ("yes" if cpu <= FEATURES_TARGET else "no")])
    return cols, lines


def idle_table(idle, pending=False):
    cols = ["target", "idle conns", "failed", "RSS before MiB", "RSS with idle MiB",
            "KiB per conn"]
    lines = []
    for r in idle:
        ok = int(num(r["conns_ok"]) or 0)
        before, after = num(r["rss_before_kb"]), num(r["rss_after_kb"])
        per = (after - before) / ok if ok and before is not None and after is not None else None
        lines.append([r["target"], str(ok), r["conns_failed"],
                      fmt(None if before is None else before / 1024, ".1f"),
                      fmt(None if after is None else after / 1024, ".1f"), fmt(per, ".1f")])
    if pending and not any(r["target"] == "ficus" for r in idle):
        lines.append(["ficus (pending)"] + ["-"] * (len(cols) - 1))
    return cols, lines


def plain(cols, lines):
    widths = [max(len(c), *(len(l[i]) for l in lines)) if lines else len(c)
              for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) if c in TEXT_COLS else v.rjust(w)
                      for c, v, w in zip(cols, l, widths)) for l in lines]
    return "\n".join(out)


def markdown(cols, lines):
    out = ["| " + " | ".join(cols) + " |",
           "|" + "|".join("---" if c in TEXT_COLS else "---:" for c in cols) + "|"]
    out += ["| " + " | ".join(l) + " |" for l in lines]
    return "\n".join(out)


def print_tables(tables, want_md, header):
    """Prints (title, (cols, lines)) tables as text, then, with want_md, as markdown under header for the docs."""
    for title, (cols, lines) in tables:
        print(f"\n== {title}")
        print(plain(cols, lines))
    if want_md:
        print("\n<!-- markdown for docs/BENCHMARKS.md -->")
        if header:
            print(header)
        for title, (cols, lines) in tables:
            print(f"\n**{title}**\n")
            print(markdown(cols, lines))


def main():
    args = sys.argv[1:]
    want_md = "--markdown" in args
    opts = {}
    for name in ("--header", "--ficus-status"):
        if name in args:
            opts[name] = args[args.index(name) + 1]
    header = opts.get("--header", "")
    ficus_status = opts.get("--ficus-status", "")
    pending = ficus_status not in ("", "measured", "not requested")
    paths = [a for i, a in enumerate(args)
             if not a.startswith("--") and (i == 0 or args[i - 1] not in opts)]
    rows = load(paths[0])
    idle = load(paths[1]) if len(paths) > 1 else []
    summary = summarize(rows)
    have_ficus = any(k[2] == "ficus" for k in summary)
    rounds = max((s["rounds"] for s in summary.values()), default=0)

    tables = [("Throughput, latency, CPU" + (f" (median of {rounds} rounds)" if rounds > 1 else ""),
               main_table(summary, pending)),
              ("Ficus / nginx ratios (CPU and p99: lower is better; req/s: higher is better)"
               + ("" if have_ficus else " -- Ficus not measured"
                  + (f": {ficus_status}" if pending else "")),
               ratio_table(summary))]
    feature_cols, feature_lines = features_table(summary)
    if feature_lines:
        tables.append(("Resilience features configured but idle against plain ficus, same run"
                       " (CPU and p99: lower is better; req/s: higher is better)", (feature_cols, feature_lines)))
    before_cols, before_lines = before_after_table(summary)
    if before_lines:
        tables.append(("Before (ficus-before) and after (ficus), same run (CPU: lower is better; req/s: higher is"
                       " better)", (before_cols, before_lines)))
    log_cols, log_lines = log_table(summary)
    if log_lines:
        tables.append(("Access log cost: ficus-log (log on) against ficus, same run", (log_cols, log_lines)))
    if idle:
        tables.append(("RSS with idle keep-alive client connections", idle_table(idle, pending)))

    print_tables(tables, want_md, header)


if __name__ == "__main__":
    main()
