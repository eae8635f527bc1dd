#!/usr/bin/env bash
# The HTML report in a real browser (issue 6): `ficus demo` fills a store through the proxy, then `ficus report`
# renders that same store as HTML and as JSON; headless Chromium opens the HTML (rendered DOM, console log,
# screenshot) and scripts/report/check_report_html.py checks that the page loads with no console error, that the
# diff-rate chart has one point per JSON time bucket with the same numbers and totals, that each latency chart
# carries the JSON's percentiles, and that the screenshot is a non-blank PNG. What counts as a console error, and
# which Chromium log noise is ignored, is documented at the top of the Python file.
#
# Installs Debian's `chromium` if missing (root, apt-get). Every step is bounded in time. The screenshot is kept in
# .build/report-check/report.png (git-ignored); everything else lives in a temporary directory removed on exit.
# Prints "1 passed, 0 failed" and exits 0, or prints why and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

fail() {
    echo "check-report-html: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

if ! command -v chromium >/dev/null 2>&1; then
    echo "check-report-html: installing chromium"
    timeout 120 apt-get update -qq || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >/dev/null \
        || fail "cannot install chromium"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ficus-report-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$root/.build/report-check"
mkdir -p "$out"
rm -f "$out/report.png"

if ! timeout 1800 swift build --product ficus >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log" >&2
    fail "swift build --product ficus failed (log above)"
fi
bin="$(swift build --show-bin-path)/ficus"
[ -x "$bin" ] || fail "no ficus binary at $bin"

# A store filled by a real shadowing run; TMPDIR puts the demo's kept store inside $work.
if ! TMPDIR="$work" timeout 300 "$bin" demo --duration 5 --keep --out "$work/report.html" >"$work/demo.log" 2>&1; then
    tail -20 "$work/demo.log" >&2
    fail "ficus demo failed (log above)"
fi
store=$(sed -n 's/^ *kept the store: //p' "$work/demo.log" | tail -1)
[ -n "$store" ] && [ -f "$store" ] || fail "ficus demo did not report a kept store (see its output: 'kept the store:')"

# The same store, both formats.
timeout 120 "$bin" report --store "$store" --format html --out "$work/r.html" 2>"$work/report.err" \
    || fail "ficus report --format html failed: $(cat "$work/report.err")"
timeout 120 "$bin" report --store "$store" --format json --out "$work/r.json" 2>"$work/report.err" \
    || fail "ficus report --format json failed: $(cat "$work/report.err")"

# Headless Chromium, with its own throw-away profile. Console messages go to stderr with --enable-logging.
size=1280,2000
browse() { # log-file, chromium arguments...
    local log=$1
    shift
    timeout -k 5 90 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$work/profile" \
        --no-first-run --enable-logging=stderr --v=0 "$@" 2>"$log"
}
# A canary page with a console error proves this Chromium still logs console messages where the check looks.
printf '%s\n' '<!DOCTYPE html><html><head><title>canary</title></head><body>' \
    '<script>console.error("ficus-canary-error")</script></body></html>' >"$work/canary.html"
browse "$work/canary.log" --dump-dom "file://$work/canary.html" >/dev/null || fail "chromium failed on a canary page"
browse "$work/dom.log" --dump-dom "file://$work/r.html" >"$work/dom.html" \
    || fail "chromium --dump-dom failed: $(tail -5 "$work/dom.log")"
browse "$work/shot.log" --screenshot="$out/report.png" --window-size=$size --hide-scrollbars "file://$work/r.html" \
    >/dev/null || fail "chromium --screenshot failed: $(tail -5 "$work/shot.log")"

timeout 60 python3 scripts/report/check_report_html.py --dom "$work/dom.html" --json "$work/r.json" \
    --log "$work/dom.log" --log "$work/shot.log" --canary-log "$work/canary.log" --page r.html \
    --screenshot "$out/report.png" --size "${size/,/x}" || fail "the HTML report does not match its JSON (above)"
echo "1 passed, 0 failed"
