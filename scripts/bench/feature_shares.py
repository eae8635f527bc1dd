#!/usr/bin/env python3
"""Share of a Ficus process's CPU spent in each resilience feature's code (issue 17's idle-feature price).

Reads the profiles `scripts/bench.sh` records with PROFILE_DIR set (TARGET.ROUND.perf from `perf record -F 4000 -g`,
and TARGET.ROUND.wrk, the wrk run that loaded the target meanwhile) and counts, per target, the samples whose call stack passes
through each feature's functions (inclusive: a sample in a callee counts for its caller). A sample is counted once
per feature, and once for "every feature" however many it passes through.

Why a share: CPU per request moves by several percent between rounds on a shared machine, more than an idle feature
costs, but the share of one process's own samples in a function does not depend on how busy the machine is.

    feature_shares.py PROFILE_DIR [--markdown]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

HZ = 4000

# Demangled-name patterns of each feature's own work on an idle request (no failure): what a route or upstream with
# the feature runs that one without it does not.
FEATURES = [
    ("stale_if_error", r"StaleKey|StaleAnswers|StaleCapture|StaleAnswer\b|hostBytes"),
    ("rate_limit", r"RateLimiter|RateLimitBuckets|TokenBucket|RateLimitPolicy|rateLimited"),
    ("retry budget", r"RetryBudget|acquireRetry|releaseBudgets"),
    ("outlier ejection", r"OutlierState|UpstreamHealth\.(record|ejected|watches)|recordOutcome"),
    ("limits (breakers)", r"UpstreamHealth\.(beginRetry|endRetry)"),
    ("least_request", r"Balancer\.(powerOfTwo|smoothWeighted)"),
    ("health checks", r"HealthChecker|HealthCheckState"),
    ("fallback", r"fallbackHead|fallBack|admitFallbackResend|mayFallBack|RoutingTable\.hasUpstream"),
]


def samples(perf_file):
    """Yields each sample's stack as a list of demangled function names (innermost first)."""
    script = subprocess.run(
        ["perf", "script", "-i", perf_file, "-F", "ip,sym,dso", "--no-demangle"],
        check=True, capture_output=True, text=True).stdout
    demangler = shutil.which("swift-demangle")
    if demangler:
        script = subprocess.run([demangler, "--simplified"], input=script, check=True, capture_output=True,
                                text=True).stdout
    stack = []
    for line in script.splitlines():
        line = line.strip()
        if not line:
            if stack:
                yield stack
            stack = []
            continue
        parts = line.split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else "")
    # (each frame: "SYMBOL+OFFSET (DSO)"; the innermost frame's DSO tells kernel from user space)
    if stack:
        yield stack


def requests_per_second(wrk_file):
    with open(wrk_file) as f:
        for line in f:
            if line.startswith("Requests/sec:"):
                return float(line.split()[1])
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("PROFILE_SECONDS", "8")))
    args = parser.parse_args()
    patterns = [(name, re.compile(pattern)) for name, pattern in FEATURES]
    # TARGET.ROUND.perf: per target, the samples of every round together (for the shares) and each round's CPU per
    # request (whose median is reported, as for the rounds of scripts/bench.sh).
    by_target = {}
    for entry in sorted(os.listdir(args.directory)):
        if not entry.endswith(".perf"):
            continue
        target, _, _ = entry[:-len(".perf")].partition(".")
        by_target.setdefault(target, []).append(entry[:-len(".perf")])
    if not by_target:
        sys.exit(f"no profiles (*.perf) in {args.directory}")
    rows = []
    for target, runs in sorted(by_target.items()):
        total = user = any_feature = 0
        hits = {name: 0 for name, _ in FEATURES}
        per_round = []
        for run in runs:
            run_total = run_user = 0
            for stack in samples(os.path.join(args.directory, run + ".perf")):
                run_total += 1
                run_user += "kernel.kallsyms" not in stack[0]
                matched = False
                for name, pattern in patterns:
                    if any(pattern.search(frame) for frame in stack):
                        hits[name] += 1
                        matched = True
                any_feature += matched
            total += run_total
            user += run_user
            rps = requests_per_second(os.path.join(args.directory, run + ".wrk"))
            if rps and run_total:
                us = (run_total / HZ) * 1e6 / (rps * args.seconds)
                per_round.append((us, us * run_user / run_total))
        cpu = statistics.median(u for u, _ in per_round) if per_round else None
        user_us = statistics.median(u for _, u in per_round) if per_round else None
        rows.append((target, len(runs), total, cpu, user_us, hits, any_feature))

    header = ["target", "rounds", "samples", "CPU µs/req", "user µs/req"] + [name for name, _ in FEATURES] + [
        "every feature", "every feature µs/req"]
    lines = []
    for target, rounds, total, us, user_us, hits, any_feature in rows:
        share = lambda n: f"{100.0 * n / total:.2f}%" if total else "n/a"
        lines.append([target, str(rounds), str(total), f"{us:.1f}" if us else "n/a",
                      f"{user_us:.1f}" if user_us else "n/a"] + [share(hits[name]) for name, _ in FEATURES]
                     + [share(any_feature), f"{us * any_feature / total:.2f}" if us and total else "n/a"])
    print()
    print("== Share of each target's CPU samples in resilience features' code (inclusive), "
          f"perf record -F {HZ} -g under wrk -c32 /small; CPU and user µs/req: median of the rounds")
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for l in lines:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(l, widths))))
    if args.markdown:
        print()
        print("**Share of CPU samples in resilience features' code (inclusive)**")
        print()
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for l in lines:
            print("| " + " | ".join(l) + " |")


if __name__ == "__main__":
    main()
