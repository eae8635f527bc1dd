#!/usr/bin/env bash
# Runs one libFuzzer target of the Fuzz/ package for a bounded time: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags]
# (--list prints the targets, --totals the executions recorded on this machine, with the seconds asked for). Builds
# the package first (incremental: seconds when nothing changed; FUZZ_SKIP_BUILD=1 skips it), seeds from
# Fuzz/Corpus/TARGET and Fuzz/Regressions/TARGET, keeps what the fuzzer learns in Fuzz/.build/corpus/TARGET (not
# committed), prints the executions, and appends them to Fuzz/.build/execs.log (the totals in docs/FUZZING.md).
# On a crash, leak or timeout it copies the input into Fuzz/Regressions/TARGET/ and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(request-parser response-parser proxy-exchange json-diff endpoint-template rules-loader routing-decision)
if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${targets[@]}"
    exit 0
fi
if [ "${1:-}" = "--totals" ]; then
    # Executions and seconds per target over every run recorded on this machine (Fuzz/.build/execs.log).
    [ -f Fuzz/.build/execs.log ] || { echo "no runs recorded in Fuzz/.build/execs.log"; exit 0; }
    awk '{ split($4, e, "="); t[$2] += e[2]; s[$2] += $3 + 0; r[$2]++ }
        END { for (k in t) printf "%-18s %12d execs in %6d s over %d runs\n", k, t[k], s[k], r[k] }' \
        Fuzz/.build/execs.log | sort
    exit 0
fi
if [ $# -lt 2 ]; then
    echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]   (targets: ${targets[*]})" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2
if [[ ! " ${targets[*]} " =~ " ${target} " ]]; then
    echo "fuzz.sh: unknown target '$target' (targets: ${targets[*]})" >&2
    exit 2
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2
    exit 2
fi

# Release with the fuzzer's coverage and AddressSanitizer; the same flags each time, so the build is incremental.
# SwiftPM does not notice files added to the main package (a path dependency) when it builds incrementally: removing
# the build plan (not the compiled modules) makes it plan again, for a few seconds.
if [ -z "${FUZZ_SKIP_BUILD:-}" ]; then
    rm -f Fuzz/.build/release.yaml
    swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address >&2
fi
bin=Fuzz/.build/release/$target
work=Fuzz/.build/corpus/$target
artifacts=Fuzz/.build/artifacts/$target
regressions=Fuzz/Regressions/$target
mkdir -p "$work" "$artifacts"
mkdir -p Fuzz/.build/logs
log=Fuzz/.build/logs/$target-$(date -u +%Y%m%dT%H%M%SZ).log

# Seeds and kept regressions are read; new inputs go to the first directory only. Leaks are not judged: the Swift
# runtime's caches and NIO's event-loop bookkeeping look like leaks to LeakSanitizer between inputs. Swift's own
# crash backtracer is off: it reads the stack in ways AddressSanitizer reports as an error of its own, hiding the
# real one; libFuzzer's handler prints the trap and writes the input.
status=0
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" "$bin" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$@" \
    "$work" "Fuzz/Corpus/$target" $( [ -d "$regressions" ] && echo "$regressions" ) >"$log" 2>&1 || status=$?

execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1 || true)
speed=$(grep -oE "stat::average_exec_per_sec: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1 || true)
if [ -z "$execs" ]; then
    # A crash ends the run before the final stats: the last status line has the count.
    execs=$(grep -oE "^#[0-9]+" "$log" | tail -1 | tr -d '#' || true)
fi
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $target ${seconds}s execs=${execs:-0} exec/s=${speed:-?} status=$status" \
    | tee -a Fuzz/.build/execs.log

if [ "$status" -ne 0 ]; then
    # The trap's own message (a failed invariant names itself), then the end of the fuzzer's report.
    grep -m 5 -A 4 -E "Fatal error|ERROR: (AddressSanitizer|libFuzzer)" "$log" >&2 || true
    tail -n 25 "$log" >&2
    echo "fuzz.sh: full log in $log" >&2
    mkdir -p "$regressions"
    found=0
    for file in "$artifacts"/{crash,leak,timeout,oom,slow-unit}-*; do
        [ -e "$file" ] || continue
        cp "$file" "$regressions/"
        echo "fuzz.sh: kept $regressions/$(basename "$file")" >&2
        rm -f "$file"
        found=1
    done
    [ "$found" -eq 1 ] || echo "fuzz.sh: $target exited with status $status and left no input" >&2
    exit 1
fi
