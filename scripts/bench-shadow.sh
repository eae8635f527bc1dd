#!/usr/bin/env bash
# What shadowing costs the client (issue 5, "Benchmark"): open-loop load at a fixed rate below saturation.
#
#   (a) no shadow                                 - the baseline
#   (b) 100% of requests shadowed to an upstream that answers after 200 ms
#   (c) as (b), but the shadow upstream is down (killed)
#
# Load: h2load --h1 --rps, open-loop at RATE req/s, with the clients' start staggered so that requests arrive evenly
# spaced (LOAD_MODE=burst starts them together: every client fires in the same instant, RATE/CONNS times a second).
# METHOD=windows (the default): one h2load run carries (a) and (b); shadowing is switched off and on in windows of
# WINDOW seconds in the order a b b a, a b b a, ... (scripts/bench/shadow_windows.py), and each request counts for the
# window it started in, except in the GUARD seconds after a switch (copies still in flight, the CLI starting). A
# disturbance of the machine lasting seconds then falls on both scenarios alike instead of on one whole run. Then
# C_RUNS runs of (c). METHOD=rounds: ROUNDS rounds of separate runs of a and b (a first in odd rounds, b first in even
# ones), each followed by c. Passes when the p99 over all (b) requests ÷ the p99 over all (a) requests is at most
# LIMIT (1.1), (c) has no failed or non-2xx request, and the load kept its target rate. The ratios per block (per
# round), their median and a 90% interval of the pooled ratio (blocks or rounds resampled) are printed beside it.
# Method and results: docs/BENCHMARKS.md, "Shadowing cost".
#
#   scripts/bench-shadow.sh
#   SKIP_BUILD=1 WINDOWS=96 WINDOW=2 scripts/bench-shadow.sh
#   SKIP_BUILD=1 METHOD=rounds RATE=500 CONNS=20 ROUNDS=4 DURATION=10 scripts/bench-shadow.sh
#   SKIP_BUILD=1 LOAD_MODE=burst RATE=400 CONNS=16 scripts/bench-shadow.sh
#
# Loopback only, bounded (every h2load run has a duration and a timeout), and every process started here is
# killed on exit; the temp dir is removed (KEEP_TMP=1 keeps it, with the h2load logs).

set -euo pipefail

# One { ... } block: bash parses the whole script before running it, so editing this file mid-run is harmless.
{

# ---------------------------------------------------------------- knobs
RATE=${RATE:-500}                  # total requests per second (all clients together)
CONNS=${CONNS:-20}                 # h2load -c: keep-alive connections; each sends RATE/CONNS req/s
DURATION=${DURATION:-6}            # seconds measured per run
WARMUP=${WARMUP:-2}                # seconds of the same load before each measured run (not in the numbers)
LOAD_MODE=${LOAD_MODE:-stagger}    # stagger: clients start 1000/RATE ms apart, so requests arrive evenly spaced
                                   #   (h2load -r 1 --rate-period P -n N); burst: all clients start at once
                                   #   (h2load -D, --warm-up-time), so every client fires in the same instant
METHOD=${METHOD:-windows}          # windows: a and b alternate in windows of one run; rounds: separate runs
WINDOWS=${WINDOWS:-48}             # windows: how many (a multiple of 4: blocks of a b b a), half of them (b)
WINDOW=${WINDOW:-2.5}              # windows: seconds per window
GUARD=${GUARD:-0.5}                # windows: seconds after a switch that count for neither scenario
C_RUNS=${C_RUNS:-4}                # windows: runs of c (DURATION each) after the windows
ROUNDS=${ROUNDS:-8}                # rounds: rounds of a, b (alternating order), c; the verdict pools all rounds
SHADOW_DELAY_MS=${SHADOW_DELAY_MS:-200}
SHADOW_NICE=${SHADOW_NICE:-0}      # nice value of the shadow upstream's processes (it stands in for another host)
SHADOW_BACKEND=${SHADOW_BACKEND:-nginx}  # nginx: a second nginx with the echo module (echo_sleep), event-driven C;
                                   #   python: scripts/bench/shadow_backend.py, a thread per connection
LIMIT=${LIMIT:-1.1}                # bound on p99(b) / p99(a), all rounds pooled
MIN_RATE_SHARE=${MIN_RATE_SHARE:-0.95}  # a run that completes fewer than this share of RATE × DURATION fails
PAUSE=${PAUSE:-1}                  # seconds of quiet between runs
SHADOW_MODE=${SHADOW_MODE:-auto}   # auto | cli (`ficus shadow`) | yaml (`ficus apply` of a generated rules file)
SKIP_BUILD=${SKIP_BUILD:-0}        # 1 = do not run `swift build -c release`
FICUS_BIN=${FICUS_BIN:-}           # explicit Ficus binary (implies no build)
BUILD_TIMEOUT=${BUILD_TIMEOUT:-3600}
KEEP_TMP=${KEEP_TMP:-0}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS="$REPO/scripts/bench"

log() { printf '[bench-shadow] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ---------------------------------------------------------------- cleanup
TMP=""
PIDS=()      # every long-running process started here
FG_PID=""    # the helper being waited for (build, h2load)
bg_wait() {  # bg_wait PID: wait for a background helper so that signals are handled at once
    FG_PID=$1
    local rc=0
    wait "$FG_PID" || rc=$?
    FG_PID=""
    return "$rc"
}
cleanup() {
    local rc=$? pid kids=()
    trap - EXIT INT TERM
    if [ -n "$FG_PID" ]; then
        kill -TERM "$FG_PID" 2>/dev/null || true
        wait "$FG_PID" 2>/dev/null || true
    fi
    for pid in "${PIDS[@]}"; do
        kids+=($(pgrep -P "$pid" 2>/dev/null || true))  # nginx's worker
    done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}" "${kids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}" "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$TMP" ]; then
        if [ "$KEEP_TMP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v nginx >/dev/null || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
case "$SHADOW_BACKEND" in
    nginx) [ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing+=(libnginx-mod-http-echo) ;;
    python) ;;
    *) die "SHADOW_BACKEND must be nginx or python" ;;
esac
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]} and not root: install them first"
    log "installing ${missing[*]} from Debian packages"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
command -v python3 >/dev/null || die "python3 is required"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)

for v in RATE CONNS DURATION WARMUP ROUNDS SHADOW_DELAY_MS WINDOWS C_RUNS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "$v must be a positive integer (got ${!v})"
done
for v in WINDOW GUARD; do
    [[ "${!v}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v must be a number of seconds (got ${!v})"
done
case "$METHOD" in windows|rounds) ;; *) die "METHOD must be windows or rounds" ;; esac
[ $((WINDOWS % 4)) = 0 ] || die "WINDOWS must be a multiple of 4 (blocks of a b b a; got $WINDOWS)"
python3 -c "import sys; sys.exit(0 if $GUARD < $WINDOW else 1)" || die "GUARD ($GUARD s) must be shorter than WINDOW ($WINDOW s)"
case "$LOAD_MODE" in stagger|burst) ;; *) die "LOAD_MODE must be stagger or burst" ;; esac
PER_CLIENT=$(python3 -c "print(round($RATE / $CONNS, 6))")
PERIOD_MS=$(python3 -c "print(max(1, round(1000 / $RATE)))")   # h2load takes whole milliseconds only
PER_RUN=$(( (RATE * DURATION + CONNS - 1) / CONNS * CONNS ))     # -n, a multiple of -c
WARMUP_RUN=$(( (RATE * WARMUP + CONNS - 1) / CONNS * CONNS ))

TMP=$(mktemp -d /tmp/ficus-bench-shadow.XXXXXX)

# ---------------------------------------------------------------- build
if [ -z "$FICUS_BIN" ]; then
    if [ "$SKIP_BUILD" != 1 ]; then
        log "building: swift build -c release --product ficus (log: $TMP/build.log)"
        (cd "$REPO" && exec timeout "$BUILD_TIMEOUT" swift build -c release --product ficus) >"$TMP/build.log" 2>&1 &
        bg_wait $! || { tail -n 30 "$TMP/build.log" >&2; die "release build failed"; }
    fi
    FICUS_BIN="$(cd "$REPO" && swift build -c release --show-bin-path 2>/dev/null)/ficus"
fi
[ -x "$FICUS_BIN" ] || die "no Ficus binary at $FICUS_BIN (build first, or set FICUS_BIN)"

# ---------------------------------------------------------------- ports and helpers
read -r LEGACY_PORT SHADOW_PORT PROXY_PORT ADMIN_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
STORE="$TMP/ficus.sqlite"
PROXY_URL="http://127.0.0.1:$PROXY_PORT/api/v1/orders/7"
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
ficus() { "$FICUS_BIN" "$@" --store "$STORE"; }

wait_http() {  # wait_http URL SECONDS PID: until URL answers 200, or PID died, or the time is up
    local url=$1 deadline=$((SECONDS + $2)) pid=$3
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        curl -sf -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    return 1
}
unset_pid() {  # drop a PID from PIDS once it has been stopped on purpose
    local keep=() pid
    for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------- backends
# Serving side ("legacy"): nginx, one worker, `return 200` with the JSON the shadow upstream also answers.
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx;
    proxy_temp_path $TMP/nginx;
    fastcgi_temp_path $TMP/nginx;
    uwsgi_temp_path $TMP/nginx;
    scgi_temp_path $TMP/nginx;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$LEGACY_PORT backlog=4096;
        location / { default_type application/json; return 200 '{"id":7,"status":"shipped"}\n'; }
    }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/out.log" 2>&1 &
LEGACY_PID=$!
PIDS+=("$LEGACY_PID")
wait_http "http://127.0.0.1:$LEGACY_PORT/" 10 "$LEGACY_PID" || die "nginx (legacy) did not start: $(cat "$TMP/nginx/"*.log)"

# Shadow side ("orders-v2"): the same JSON after SHADOW_DELAY_MS, from a second nginx (echo_sleep keeps the
# request waiting on a timer, no thread per request) or from the Python server.
mkdir -p "$TMP/shadow-nginx"
cat >"$TMP/shadow-nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
daemon off;
pid $TMP/shadow-nginx/nginx.pid;
error_log $TMP/shadow-nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/shadow-nginx;
    proxy_temp_path $TMP/shadow-nginx;
    fastcgi_temp_path $TMP/shadow-nginx;
    uwsgi_temp_path $TMP/shadow-nginx;
    scgi_temp_path $TMP/shadow-nginx;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$SHADOW_PORT backlog=4096;
        location / {
            default_type application/json;
            echo_sleep $(python3 -c "print($SHADOW_DELAY_MS / 1000)");
            echo '{"id":7,"status":"shipped"}';
        }
    }
}
EOF
SHADOW_PID=""
start_shadow() {
    if [ "$SHADOW_BACKEND" = nginx ]; then
        nice -n "$SHADOW_NICE" nginx -p "$TMP/shadow-nginx" -c "$TMP/shadow-nginx/nginx.conf" >>"$TMP/shadow.log" 2>&1 &
    else
        nice -n "$SHADOW_NICE" python3 "$HELPERS/shadow_backend.py" "$SHADOW_PORT" "$SHADOW_DELAY_MS" >>"$TMP/shadow.log" 2>&1 &
    fi
    SHADOW_PID=$!
    PIDS+=("$SHADOW_PID")
    wait_http "http://127.0.0.1:$SHADOW_PORT/" 10 "$SHADOW_PID" || die "shadow backend did not start: $(cat "$TMP/shadow.log")"
}
stop_shadow() {
    # nginx's workers are found first and killed together with the master, so that no master lives to start a
    # new worker and no worker outlives its master holding the port.
    local workers
    workers=$(pgrep -P "$SHADOW_PID" 2>/dev/null || true)
    kill -KILL "$SHADOW_PID" $workers 2>/dev/null || true
    wait "$SHADOW_PID" 2>/dev/null || true
    unset_pid "$SHADOW_PID"
    SHADOW_PID=""
    ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$SHADOW_PORT/" || die "the shadow port still answers"
}
start_shadow

# ---------------------------------------------------------------- store and proxy
ficus init >/dev/null
ficus upstream add legacy "127.0.0.1:$LEGACY_PORT" >/dev/null
ficus upstream add orders-v2 "127.0.0.1:$SHADOW_PORT" >/dev/null
ficus route add orders --prefix / --to legacy >/dev/null

if [ "$SHADOW_MODE" = auto ]; then
    if "$FICUS_BIN" shadow --help >/dev/null 2>&1; then SHADOW_MODE=cli; else SHADOW_MODE=yaml; fi
fi
case "$SHADOW_MODE" in cli|yaml) ;; *) die "SHADOW_MODE must be auto, cli or yaml" ;; esac
log "shadow policy via: $([ "$SHADOW_MODE" = cli ] && echo 'ficus shadow' || echo 'ficus apply (YAML)')"

rules_yaml() {  # rules_yaml on|off: the whole configuration, as `ficus export` writes it
    cat <<EOF
upstreams:
- name: legacy
  addresses:
  - 127.0.0.1:$LEGACY_PORT
- name: orders-v2
  addresses:
  - 127.0.0.1:$SHADOW_PORT
routes:
- name: orders
  path: /
  legacy: legacy
  default: legacy
EOF
    if [ "$1" = on ]; then
        printf '  shadow:\n    to: orders-v2\n    percent: 100\n'
    fi
}
set_shadow() {  # set_shadow on|off, then wait until the proxy serves that revision
    local out revision
    if [ "$SHADOW_MODE" = cli ]; then
        if [ "$1" = on ]; then
            out=$(ficus shadow orders --to orders-v2 --percent 100 2>&1)
        else
            out=$(ficus shadow orders --off 2>&1)
        fi
    else
        rules_yaml "$1" >"$TMP/rules.yaml"
        out=$(ficus apply "$TMP/rules.yaml" 2>&1)
    fi
    revision=$(grep -o 'revision [0-9]*' <<<"$out" | tail -n 1 | grep -o '[0-9]*$') \
        || die "shadow $1: no revision in: $out"
    local deadline=$((SECONDS + 10))
    until curl -s --max-time 1 "$ADMIN_URL/healthz" | grep -q "\"revision\":$revision[,}]"; do
        [ "$SECONDS" -lt "$deadline" ] || die "the proxy did not pick up revision $revision: $(curl -s "$ADMIN_URL/healthz")"
        sleep 0.05
    done
    log "shadow $1: proxy serves revision $revision"
}

"$FICUS_BIN" serve --store "$STORE" --listen "127.0.0.1:$PROXY_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
    --threads 1 --access-log off --log-level warning >"$TMP/ficus.log" 2>&1 &
FICUS_PID=$!
PIDS+=("$FICUS_PID")
wait_http "$ADMIN_URL/healthz" 15 "$FICUS_PID" || { cat "$TMP/ficus.log" >&2; die "ficus serve did not start"; }
got=$(curl -s --max-time 2 "$PROXY_URL") || true
[ "$got" = '{"id":7,"status":"shipped"}' ] || die "the proxy answered '$got' instead of the backend's JSON"

# ---------------------------------------------------------------- load
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
shadow_metrics() {  # the shadow counters, one "name{labels} value" per line
    curl -s --max-time 2 "$ADMIN_URL/metrics" | grep -E '^ficus_shadow_(requests|compared|errors|dropped|differing)_total' || true
}
metric_sum() { awk -v name="$1" 'index($0, name) == 1 { s += $NF } END { printf "%d\n", s }'; }

RUNS_TSV="$TMP/runs.tsv"
: >"$RUNS_TSV"
h2load_shape() {  # the h2load options of one run; $1 = requests (stagger mode), $2 = seconds (burst mode)
    if [ "$LOAD_MODE" = stagger ]; then
        echo "--h1 -t 1 -c $CONNS --rps $PER_CLIENT -r 1 --rate-period ${PERIOD_MS}ms -n $1"
    else
        echo "--h1 -t 1 -c $CONNS --rps $PER_CLIENT -D ${2:-$DURATION} --warm-up-time $WARMUP"
    fi
}
warm_up() {  # warm_up NAME: the same load for WARMUP seconds, not measured (-D and -r exclude each other)
    [ "$LOAD_MODE" = stagger ] || return 0
    timeout $((WARMUP + 30)) h2load $(h2load_shape "$WARMUP_RUN") "$PROXY_URL" >"$TMP/$1.warmup" 2>&1 &
    bg_wait $! || { tail -n 20 "$TMP/$1.warmup" >&2; die "h2load warm-up failed in run $1"; }
}
run_load() {  # run_load SCENARIO ROUND
    local name="$1-$2" before after
    sleep "$PAUSE"
    warm_up "$name"
    before=$(cpu_ticks "$FICUS_PID")
    timeout $((DURATION + WARMUP + 30)) h2load $(h2load_shape "$PER_RUN") --log-file "$TMP/$name.tsv" \
        "$PROXY_URL" >"$TMP/$name.out" 2>&1 &
    bg_wait $! || { tail -n 20 "$TMP/$name.out" >&2; die "h2load failed in run $name"; }
    after=$(cpu_ticks "$FICUS_PID")
    kill -0 "$FICUS_PID" 2>/dev/null || { tail -n 20 "$TMP/ficus.log" >&2; die "ficus exited during run $name"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$RATE" "$DURATION" "$TMP/$name.out" "$TMP/$name.tsv" \
        "$((after - before))" >>"$RUNS_TSV"
    log "run $name: $(grep -E '^requests:' "$TMP/$name.out")"
}

# The proxy's CPU with no traffic (the store watcher polls): the report shows CPU per request above it.
idle_before=$(cpu_ticks "$FICUS_PID")
sleep 5
IDLE_CPU=$(python3 -c "print(round(($(cpu_ticks "$FICUS_PID") - $idle_before) / $CLK_TCK / 5, 4))")
log "ficus with no traffic: $(python3 -c "print(round(100 * $IDLE_CPU, 1))") % of a core"

log "legacy nginx :$LEGACY_PORT, shadow upstream ($SHADOW_BACKEND) :$SHADOW_PORT (+${SHADOW_DELAY_MS} ms), ficus :$PROXY_PORT (admin :$ADMIN_PORT)"
if [ "$METHOD" = windows ]; then
    log "load ($LOAD_MODE): one h2load run at $RATE req/s over $CONNS connections, $WINDOWS windows of $WINDOW s (a b b a ...; $GUARD s after each switch not counted), then $C_RUNS runs of c: h2load $(h2load_shape "$PER_RUN")"
else
    log "load ($LOAD_MODE): h2load $(h2load_shape "$PER_RUN") (= $RATE req/s), $ROUNDS round(s) of a and b (alternating order), then c"
fi
METRICS_OUT="$TMP/metrics.txt"
: >"$METRICS_OUT"
SHADOW_STATE=off  # the policy the store holds (the route was added without one)
shadow_to() {  # shadow_to on|off: set the policy unless the store already holds it
    [ "$SHADOW_STATE" = "$1" ] && return 0
    set_shadow "$1"
    SHADOW_STATE=$1
}
run_a() {
    shadow_to off
    run_load a "$1"
}
run_b() {
    shadow_to on
    local before metrics shadowed
    before=$(shadow_metrics | metric_sum ficus_shadow_requests_total)
    run_load b "$1"
    metrics=$(shadow_metrics)
    shadowed=$(( $(metric_sum ficus_shadow_requests_total <<<"$metrics") - before ))
    { echo "after (b) round $1: ficus_shadow_requests_total grew by $shadowed"; echo "$metrics"; } >>"$METRICS_OUT"
    [ "$shadowed" -gt 0 ] || die "round $1: no request was shadowed in (b)"
}
# The commands that switch shadowing for shadow_windows.py: the same as set_shadow's.
if [ "$SHADOW_MODE" = cli ]; then
    ON_CMD=$(printf '%q ' "$FICUS_BIN" shadow orders --to orders-v2 --percent 100 --store "$STORE")
    OFF_CMD=$(printf '%q ' "$FICUS_BIN" shadow orders --off --store "$STORE")
else
    rules_yaml on >"$TMP/rules-on.yaml"
    rules_yaml off >"$TMP/rules-off.yaml"
    ON_CMD=$(printf '%q ' "$FICUS_BIN" apply "$TMP/rules-on.yaml" --store "$STORE")
    OFF_CMD=$(printf '%q ' "$FICUS_BIN" apply "$TMP/rules-off.yaml" --store "$STORE")
fi
WINDOWS_TSV="$TMP/windows-plan.tsv"
run_windows() {  # one h2load run; shadow_windows.py switches shadowing under it
    local seconds requests before metrics shadowed h2_pid
    seconds=$(python3 -c "import math; print(math.ceil($WINDOWS * $WINDOW + 2))")
    requests=$(( (RATE * seconds + CONNS - 1) / CONNS * CONNS ))
    shadow_to off
    before=$(shadow_metrics | metric_sum ficus_shadow_requests_total)
    sleep "$PAUSE"
    warm_up windows
    timeout $((seconds + WARMUP + 30)) h2load $(h2load_shape "$requests" "$seconds") --log-file "$TMP/windows.tsv" \
        "$PROXY_URL" >"$TMP/windows.out" 2>&1 &
    h2_pid=$!
    PIDS+=("$h2_pid")
    sleep "$([ "$LOAD_MODE" = burst ] && echo $((WARMUP + 1)) || echo 1)"
    python3 "$HELPERS/shadow_windows.py" --on "$ON_CMD" --off "$OFF_CMD" --admin "$ADMIN_URL" --pid "$FICUS_PID" \
        --windows "$WINDOWS" --window "$WINDOW" --guard "$GUARD" "$WINDOWS_TSV" &
    bg_wait $! || die "switching shadowing in windows failed"
    SHADOW_STATE=off  # the windows end with (a)
    bg_wait "$h2_pid" || { tail -n 20 "$TMP/windows.out" >&2; die "h2load failed in the windows run"; }
    unset_pid "$h2_pid"
    kill -0 "$FICUS_PID" 2>/dev/null || { tail -n 20 "$TMP/ficus.log" >&2; die "ficus exited during the windows run"; }
    metrics=$(shadow_metrics)
    shadowed=$(( $(metric_sum ficus_shadow_requests_total <<<"$metrics") - before ))
    { echo "after the windows: ficus_shadow_requests_total grew by $shadowed"; echo "$metrics"; } >>"$METRICS_OUT"
    [ "$shadowed" -gt 0 ] || die "no request was shadowed in the (b) windows"
    log "windows run: $(grep -E '^requests:' "$TMP/windows.out")"
}
if [ "$METHOD" = windows ]; then
    run_windows
    shadow_to on
    stop_shadow
    for run in $(seq 1 "$C_RUNS"); do run_load c "$run"; done
    ROUNDS=$C_RUNS
fi
for round in $(seq 1 "$([ "$METHOD" = rounds ] && echo "$ROUNDS" || echo 0)"); do
    [ -n "$SHADOW_PID" ] || start_shadow
    # a then b in odd rounds, b then a in even ones: whatever comes first in a round (the shadow upstream just
    # restarted after (c), a drift of the machine's load) falls on both sides equally.
    if [ $((round % 2)) = 1 ]; then
        run_a "$round"
        run_b "$round"
    else
        run_b "$round"
        run_a "$round"
    fi
    shadow_to on
    stop_shadow
    run_load c "$round"
done
echo "after (c) run $ROUNDS:" >>"$METRICS_OUT"
shadow_metrics >>"$METRICS_OUT"

echo
if [ "$METHOD" = windows ]; then
    shape="(a) and (b) in one run of $WINDOWS windows of $WINDOW s (a b b a ...; $GUARD s after each switch not counted), then $C_RUNS runs of (c) of ${DURATION} s after ${WARMUP} s warm-up"
    windows_args=(--windows "$WINDOWS_TSV" --windows-log "$TMP/windows.tsv" --windows-out "$TMP/windows.out" --rate "$RATE")
else
    shape="${DURATION} s per run after ${WARMUP} s warm-up, $ROUNDS round(s)"
    windows_args=()
fi
echo "Shadowing cost: $RATE req/s over $CONNS connections, $LOAD_MODE load (h2load $(h2load_shape "$PER_RUN")), $shape;" \
     "shadow upstream +${SHADOW_DELAY_MS} ms; ficus --threads 1; $(nproc) cores;" \
     "ficus with no traffic: $(python3 -c "print(round(100 * $IDLE_CPU, 1))") % of a core"
echo
rc=0
# In burst mode h2load's own warm-up is inside the run: in its "finished in" time and in the CPU ticks.
python3 "$HELPERS/shadow_report.py" "$RUNS_TSV" --limit "$LIMIT" --min-rate-share "$MIN_RATE_SHARE" \
    --clk-tck "$CLK_TCK" --idle-cpu "$IDLE_CPU" --warmup "$([ "$LOAD_MODE" = burst ] && echo "$WARMUP" || echo 0)" \
    "${windows_args[@]}" || rc=$?
echo
echo "Shadow counters (/metrics):"
sed 's/^/  /' "$METRICS_OUT"
exit "$rc"
}
