#!/usr/bin/env python3
"""Switches shadowing on and off in windows while one open-loop load runs (scripts/bench-shadow.sh, METHOD=windows).

Usage: shadow_windows.py --on CMD --off CMD --admin URL --pid PID --windows N --window SECONDS --guard SECONDS OUT

The windows follow the order a b b a, a b b a, ... (a: shadowing off, b: on): a drift of the machine's load over a
block falls on both scenarios equally. When a window's scenario differs from the one before, the driver runs the
--on or --off command (a shell command line: `ficus shadow ...` or `ficus apply ...`), reads the revision it printed
and waits until the proxy's /healthz reports it; the window is counted from then plus --guard seconds (copies still
in flight from the window before, the command's own start-up) until the window's end. Consecutive windows of the same
scenario need no switch and are counted whole.

OUT gets one tab-separated line per window: scenario, window number, block number, counted start and end (µs since
the epoch, the clock of h2load's --log-file) and the proxy's CPU time in clock ticks over the counted part (utime +
stime from /proc/PID/stat). Exits 2 when a command fails or the proxy does not pick up a revision within 10 s.
"""
import argparse
import json
import re
import subprocess
import sys
import time
import urllib.request


def now_us():
    return time.time_ns() // 1000


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def served_revision(admin):
    with urllib.request.urlopen(admin + "/healthz", timeout=1) as answer:
        return json.loads(answer.read()).get("revision")


def switch(command, admin):
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError("`%s` failed: %s" % (command, (done.stdout + done.stderr).strip()))
    found = re.findall(r"revision (\d+)", done.stdout + done.stderr)
    if not found:
        raise RuntimeError("`%s` printed no revision: %s" % (command, (done.stdout + done.stderr).strip()))
    revision = int(found[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if served_revision(admin) == revision:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    raise RuntimeError("the proxy did not pick up revision %d within 10 s" % revision)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--on", required=True)
    parser.add_argument("--off", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--windows", type=int, required=True)
    parser.add_argument("--window", type=float, required=True)
    parser.add_argument("--guard", type=float, required=True)
    parser.add_argument("out")
    args = parser.parse_args()
    if args.windows < 4 or args.windows % 4:
        print("shadow_windows: --windows must be a positive multiple of 4 (blocks of a b b a)", file=sys.stderr)
        return 2
    if not 0 <= args.guard < args.window:
        print("shadow_windows: --guard must be at least 0 and shorter than --window", file=sys.stderr)
        return 2

    current = "a"  # bench-shadow.sh switches shadowing off before the run starts
    lines = []
    next_end = time.monotonic()
    try:
        for index in range(args.windows):
            scenario = "abba"[index % 4]
            next_end += args.window
            if scenario != current:
                switch(args.on if scenario == "b" else args.off, args.admin)
                current = scenario
                time.sleep(args.guard)
            start, start_ticks = now_us(), cpu_ticks(args.pid)
            time.sleep(max(0.0, next_end - time.monotonic()))
            end, end_ticks = now_us(), cpu_ticks(args.pid)
            if end <= start:
                raise RuntimeError("window %d had no time left after its switch and guard: lengthen --window" % index)
            lines.append("%s\t%d\t%d\t%d\t%d\t%d\n" % (scenario, index + 1, index // 4 + 1, start, end,
                                                       end_ticks - start_ticks))
    except (RuntimeError, OSError) as error:
        print("shadow_windows: %s" % error, file=sys.stderr)
        return 2
    with open(args.out, "w") as out:
        out.writelines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
