#!/usr/bin/env python3
"""Table and verdict for scripts/bench-shadow.sh.

Usage: shadow_report.py RUNS_TSV [--limit 1.1] [--min-rate-share 0.95] [--clk-tck 100] [--idle-cpu 0.03] [--warmup 0]
                        [--windows WINDOWS_TSV --windows-log LOG --windows-out OUT --rate RATE]

RUNS_TSV has one line per h2load run: scenario (a, b or c), round, target req/s, seconds, h2load's output file, its
--log-file (tab-separated: start µs since the epoch, HTTP status, µs until the end of the response) and the proxy's
CPU time during the run in clock ticks (utime + stime from /proc/PID/stat). The table shows it as a share of one core
and as µs per request above --idle-cpu (the proxy's share of a core with no traffic, measured before the rounds: the
store watcher's polling). --warmup is h2load's own warm-up (burst mode): inside h2load's "finished in" time and the
CPU ticks, not in the requests.

With --windows (METHOD=windows, the default of bench-shadow.sh), (a) and (b) come from one h2load run instead: LOG
is its --log-file, OUT its output, and WINDOWS_TSV (written by shadow_windows.py) says when shadowing was off (a) and
on (b): scenario, window, block, counted start and end in µs since the epoch, the proxy's CPU ticks over the counted
part. A request belongs to the window its start falls in; requests in the guard after a switch belong to none. The
rows of a and b are then per block (a b b a: two windows of each), and the "round" of the per-round ratios and of
the resampled interval is the block. RUNS_TSV then holds the (c) runs only.

Percentiles are nearest-rank over the per-request latencies of the log. The pooled rows ("all") put every round's
requests of a scenario together. Verdict:

  - (b) 100% shadowing to a slow upstream: p99 over every (b) request of the run ÷ p99 over every (a) request of the
    run is at most the limit. The rounds alternate which of a and b comes first, so a drift of the machine's load
    falls on both; a single round's p99 rests on a few dozen requests and its ratio moved between 0.6 and 1.7 with
    nothing changed, so the per-round ratios and their median are printed for information only, with a 90% interval
    of the pooled ratio from resampling the rounds;
  - (c) shadowing to an upstream that is down: no failed request and no non-2xx answer;
  - every run kept at least min-rate-share of its target rate, measured as requests done ÷ h2load's time (otherwise
    the load was not open-loop at that rate, and the comparison says nothing).

Prints the table and the verdict; exits 1 when a check fails, 2 on unreadable input.
"""
import argparse
import bisect
import re
import sys

NAMES = {
    "a": "a: no shadow",
    "b": "b: shadow 100%, upstream +200ms",
    "c": "c: shadow 100%, upstream down",
}


def parse_h2load(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    m = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        text,
    )
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    f = re.search(r"finished in ([\d.]+)s", text)
    if not m or not s:
        raise ValueError("%s: no h2load summary (did h2load run?)" % path)
    total, started, done, succeeded, failed, errored, timeout = map(int, m.groups())
    return {
        "done": done,
        "succeeded": succeeded,
        "failed": failed,
        "errored": errored,
        "timeout": timeout,
        "non2xx": sum(map(int, s.groups()[1:])),
        "finished_s": float(f.group(1)) if f else 0.0,
    }


def read_latencies(path):
    values = []
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            fields = line.split("\t")
            if len(fields) >= 3 and fields[1].strip().lstrip("-").isdigit():
                values.append(int(fields[2]) / 1000.0)
    return sorted(values)


def pct(values, p):
    if not values:
        return float("nan")
    rank = max(1, -(-len(values) * p // 100))  # nearest rank: ceil(n × p / 100)
    return values[int(rank) - 1]


def resampled_interval(a_runs, b_runs, draws=200, seed=7):
    """5th and 95th percentile of the pooled p99 ratio over rounds drawn with replacement (a and b of a round together).

    Shows how much the verdict depends on which rounds happened to be measured; a fixed seed keeps it repeatable.
    """
    import random

    rng = random.Random(seed)
    by_round = {}
    for scenario, runs in (("a", a_runs), ("b", b_runs)):
        for run in runs:
            by_round.setdefault(run["round"], {}).setdefault(scenario, []).extend(run["lat"])
    rounds = [r for r in by_round.values() if "a" in r and "b" in r]
    if not rounds:
        return float("nan"), float("nan")
    values = []
    for _ in range(draws):
        drawn = [rng.choice(rounds) for _ in rounds]
        a99 = pct(sorted(v for r in drawn for v in r["a"]), 99)
        b99 = pct(sorted(v for r in drawn for v in r["b"]), 99)
        values.append(b99 / a99)
    values.sort()
    return values[int(0.05 * (draws - 1))], values[int(0.95 * (draws - 1))]


def windows_runs(windows_path, log_path, rate):
    """One run per window of shadow_windows.py's output, its requests taken from the shared h2load log."""
    windows = []
    for line in open(windows_path, encoding="utf-8"):
        if line.strip():
            scenario, window, block, start, end, ticks = line.rstrip("\n").split("\t")
            windows.append({"scenario": scenario, "window": int(window), "round": block, "start": int(start),
                            "end": int(end), "ticks": int(ticks), "lat": [], "done": 0, "succeeded": 0,
                            "failed": 0, "errored": 0, "timeout": 0, "non2xx": 0})
    if not windows:
        raise ValueError("%s: no windows" % windows_path)
    windows.sort(key=lambda w: w["start"])
    starts = [w["start"] for w in windows]
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            fields = line.split("\t")
            if len(fields) < 3 or not fields[0].strip().isdigit():
                continue
            began, status, took = int(fields[0]), int(fields[1]), int(fields[2])
            i = bisect.bisect_right(starts, began) - 1
            if i < 0 or began >= windows[i]["end"]:
                continue  # in a guard after a switch, or outside the windows
            w = windows[i]
            w["done"] += 1
            if 200 <= status < 300:
                w["succeeded"] += 1
                w["lat"].append(took / 1000.0)
            elif status > 0:
                w["non2xx"] += 1
                w["lat"].append(took / 1000.0)
            else:
                w["failed"] += 1
    for w in windows:
        w["lat"].sort()
        w["finished_s"] = w["measured_s"] = max((w["end"] - w["start"]) / 1e6, 1e-9)
        w["rate"] = w["done"] / w["measured_s"]
        w["target"], w["seconds"] = rate, w["measured_s"]
    return windows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runs")
    parser.add_argument("--limit", type=float, default=1.1)
    parser.add_argument("--min-rate-share", type=float, default=0.95)
    parser.add_argument("--clk-tck", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=0.0, help="h2load --warm-up-time, seconds")
    parser.add_argument("--idle-cpu", type=float, default=0.0, help="proxy CPU with no traffic, share of one core")
    parser.add_argument("--windows", help="shadow_windows.py's output: (a) and (b) from one h2load run")
    parser.add_argument("--windows-log", help="that h2load run's --log-file")
    parser.add_argument("--windows-out", help="that h2load run's output")
    parser.add_argument("--rate", type=float, default=0.0, help="that h2load run's target rate, req/s")
    args = parser.parse_args()
    if args.windows and not (args.windows_log and args.windows_out and args.rate > 0):
        print("shadow_report: --windows needs --windows-log, --windows-out and --rate", file=sys.stderr)
        return 2

    runs = []
    try:
        for line in open(args.runs, encoding="utf-8"):
            if not line.strip():
                continue
            scenario, rnd, rate, seconds, out, log, ticks = line.rstrip("\n").split("\t")
            run = parse_h2load(out)
            run.update(scenario=scenario, round=rnd, target=float(rate), seconds=float(seconds), ticks=int(ticks))
            run["lat"] = read_latencies(log)
            runs.append(run)
        for run in runs:
            run["measured_s"] = max(run["finished_s"] - args.warmup, 1e-9)
            run["rate"] = run["done"] / run["measured_s"]
        windowed = None
        if args.windows:
            windowed = parse_h2load(args.windows_out)
            runs = windows_runs(args.windows, args.windows_log, args.rate) + runs
    except (OSError, ValueError) as error:
        print("shadow_report: %s" % error, file=sys.stderr)
        return 2

    rows = []
    pooled = {}
    groups = {}  # (scenario, round) -> runs, in the order they ran
    for run in runs:
        pooled.setdefault(run["scenario"], []).append(run)
        groups.setdefault((run["scenario"], run["round"]), []).append(run)
    base_by_round = {}
    for (scenario, rnd), group in groups.items():
        if scenario == "a":
            base_by_round[rnd] = pct(sorted(v for r in group for v in r["lat"]), 99)

    def row(label, rnd, group, base):
        lat = sorted(v for r in group for v in r["lat"])
        seconds = sum(r["measured_s"] for r in group)
        p99 = pct(lat, 99)
        in_ticks = sum(r["done"] + r["rate"] * args.warmup for r in group)  # requests the CPU time covers
        cpu_s = sum(r["ticks"] for r in group) / args.clk_tck
        wall_s = sum(r["finished_s"] for r in group)
        over_idle_us = (cpu_s - args.idle_cpu * wall_s) * 1e6
        return [
            label,
            rnd,
            "%.0f" % (sum(r["done"] for r in group) / seconds),
            str(sum(r["succeeded"] for r in group)),
            str(sum(r["failed"] for r in group)),
            str(sum(r["non2xx"] for r in group)),
            "%.2f" % pct(lat, 50),
            "%.2f" % pct(lat, 90),
            "%.2f" % p99,
            "%.2f" % (lat[-1] if lat else float("nan")),
            "%.2f" % (p99 / base) if base and base == base else "-",
            "%.1f" % (100 * cpu_s / wall_s) if wall_s else "-",
            "%.0f" % (over_idle_us / in_ticks) if in_ticks else "-",
        ]

    for (scenario, rnd), group in groups.items():
        # In windows mode the (c) runs are numbered on their own: no block's (a) is theirs.
        base = None if windowed and scenario == "c" else base_by_round.get(rnd)
        rows.append(row(NAMES.get(scenario, scenario), rnd, group, base))
    base_all = pct(sorted(v for r in pooled.get("a", []) for v in r["lat"]), 99)
    for scenario in sorted(pooled):
        rows.append(row(NAMES.get(scenario, scenario), "all", pooled[scenario], base_all))

    header = ["scenario", "block" if windowed else "round", "req/s", "succeeded", "failed", "non-2xx", "p50 ms",
              "p90 ms", "p99 ms", "max ms", "p99 ÷ (a)", "ficus CPU %", "µs/req over idle"]
    widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(len(header))]
    for i, line in enumerate([header] + rows):
        print("  ".join(str(c).ljust(w) if j < 2 else str(c).rjust(w) for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0 or (i == len(groups)):
            print("  ".join("-" * w for w in widths))

    failures = []
    if windowed is not None:
        # The windows' own rates vary with where their edges fall; the run as a whole must have kept its rate.
        lost = windowed["failed"] + windowed["errored"] + windowed["timeout"]
        if lost:
            failures.append("the (a)/(b) run had %d failed, errored or timed-out requests" % lost)
        for scenario in ("a", "b"):
            group = pooled.get(scenario, [])
            seconds = sum(r["measured_s"] for r in group)
            done = sum(r["done"] for r in group)
            if not seconds or done < args.min_rate_share * args.rate * seconds:
                failures.append("(%s) windows: %d requests in %.1f s, target %.0f req/s: the load did not keep its "
                                "rate" % (scenario, done, seconds, args.rate))
    for run in runs:
        if run.get("window"):
            continue
        if run["rate"] < args.min_rate_share * run["target"] or run["done"] < args.min_rate_share * run["target"] * run[
                "seconds"]:
            failures.append("(%s) round %s: %d requests at %.0f req/s, target %.0f req/s for %.0f s: the load did not "
                            "keep its rate" % (run["scenario"], run["round"], run["done"], run["rate"], run["target"],
                                               run["seconds"]))
    if "a" not in pooled or "b" not in pooled or "c" not in pooled:
        failures.append("a scenario is missing")
    else:
        b99 = pct(sorted(v for r in pooled["b"] for v in r["lat"]), 99)
        ratios = sorted(pct(sorted(v for r in group for v in r["lat"]), 99) / base_by_round[rnd]
                        for (scenario, rnd), group in groups.items() if scenario == "b" and rnd in base_by_round)
        if not ratios:
            failures.append("no round has both (a) and (b)")
        else:
            n = len(ratios)
            median = ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
            ratio = b99 / base_all
            low, high = resampled_interval(pooled["a"], pooled["b"])
            verdict = "ok" if ratio <= args.limit else "FAIL"
            unit = "block" if windowed else "round"
            print("\n(b) p99 ÷ (a) p99, all %ss pooled: %.3f ms ÷ %.3f ms = %.2f, bound %.2f -> %s"
                  % (unit, b99, base_all, ratio, args.limit, verdict))
            print("    90%% interval from resampling the %ss: %.2f .. %.2f" % (unit, low, high))
            print("    per %s: %s; median %.2f" % (unit, ", ".join("%.2f" % x for x in ratios), median))
            if ratio > args.limit:
                failures.append("(b) p99 is %.2f × (a) p99 (all %ss pooled), above %.2f" % (ratio, unit, args.limit))
        bad = sum(r["failed"] + r["non2xx"] for r in pooled["c"])
        print("(c) failed + non-2xx requests: %d -> %s" % (bad, "ok" if bad == 0 else "FAIL"))
        if bad:
            failures.append("(c) had %d failed or non-2xx requests with the shadow upstream down" % bad)
    for failure in failures:
        print("FAIL: " + failure)
    print("PASS" if not failures else "FAILED (%d)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
