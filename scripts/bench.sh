#!/usr/bin/env bash
# Ficus benchmark: direct-to-backend vs nginx reverse proxy vs Ficus.
# Optional targets: Ficus served from a store with every resilience feature
# configured but idle (ficus-features, ficus-features-nostale) and the same
# store with none (ficus-store), to price the features against plain ficus.
#
# This is a benchmark, not a test: it never fails on slow numbers, only on
# broken setup.  See docs/BENCHMARKS.md for the method and the knobs.
#
#   scripts/bench.sh                      # full run (10s per measurement)
#   DURATION=5s SKIP_BUILD=1 scripts/bench.sh
#   ROUNDS=3 MARKDOWN=1 scripts/bench.sh > bench.out
#   TARGETS="ficus ficus-store ficus-features ficus-features-nostale" SKIP_BUILD=1 scripts/bench.sh
#   TARGETS="nginx ficus ficus-before" FICUS_BEFORE_BIN=/path/to/old/ficus SKIP_BUILD=1 scripts/bench.sh
#   PROFILE_DIR=/tmp/prof TARGETS="ficus-store ficus-features" SKIP_BUILD=1 scripts/bench.sh
#
# Everything listens on 127.0.0.1 only.  Every process started here is killed
# on exit and the temp dir is removed.

set -euo pipefail

# The whole script is one { ... } block: bash parses it completely before
# running it, so editing or checking out this file mid-run cannot derail it.
{

# ---------------------------------------------------------------- knobs
DURATION=${DURATION:-10s}          # wrk -d per measurement
ROUNDS=${ROUNDS:-1}                # repeat the whole matrix; tables show medians
CONNS=${CONNS:-"32 256"}           # wrk -c values
BODIES=${BODIES:-"small 64k"}      # small = tiny `return 200` body, 64k = 65536-byte file
TARGETS=${TARGETS:-"direct nginx ficus"}  # also: ficus-store ficus-features ficus-features-nostale ficus-before
                                   # ficus-log
WARMUP=${WARMUP:-2s}               # per-target warm-up before measuring (0 = none)
PAUSE=${PAUSE:-1}                  # seconds of quiet between measurements
IDLE_CONNS=${IDLE_CONNS:-1000}     # idle keep-alive clients for the RSS test (0 = skip)
TASKSET=${TASKSET:-0}              # 1 = pin processes to cores (see below)
PROXY_CPUS=${PROXY_CPUS:-0}        # with TASKSET=1: proxy under test (nginx proxy, Ficus)
BACKEND_CPUS=${BACKEND_CPUS:-1}    # with TASKSET=1: backend nginx
WRK_CPUS=${WRK_CPUS:-1}            # with TASKSET=1: wrk and the idle-connection client
SKIP_BUILD=${SKIP_BUILD:-0}        # 1 = do not run `swift build -c release`
FICUS_BIN=${FICUS_BIN:-}           # explicit Ficus binary (implies no build)
FICUS_BEFORE_BIN=${FICUS_BEFORE_BIN:-}  # ficus-before: an earlier build, served exactly as the ficus target
FICUS_START_TIMEOUT=${FICUS_START_TIMEOUT:-15}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-3600}
LOGS=${LOGS:-off}                  # on = access logs on both proxies: nginx to a file (buffer=64k), Ficus its
                                   # default log (standard error, redirected to a file); the backend never logs
MARKDOWN=${MARKDOWN:-0}            # 1 = append a markdown block for docs to stdout
RESULTS_TSV=${RESULTS_TSV:-}       # optional: copy the raw per-run TSV here
PROFILE_DIR=${PROFILE_DIR:-}       # optional: after the rounds, profile each Ficus target (perf record -g) under
                                   # wrk 32c small and report the share of its CPU in each resilience feature's code
                                   # (scripts/bench/feature_shares.py); the profiles are kept in this directory
PROFILE_SECONDS=${PROFILE_SECONDS:-8}
PROFILE_ROUNDS=${PROFILE_ROUNDS:-3}  # profiles per target, the targets' order rotated each round

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS="$REPO/scripts/bench"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
case "$LOGS" in on|off) ;; *) die "LOGS must be on or off, got '$LOGS'" ;; esac

# ---------------------------------------------------------------- cleanup
TMP=""
PIDS=()
FG_PID=""  # long-running helper (build, wrk) we are waiting for
FG_SIG=TERM
# Run long helpers in the background and `wait` for them, so that a signal
# to this script is handled at once instead of after the helper finishes.
bg_wait() {  # bg_wait <pid> [signal to stop it with] -> the helper's exit status
    FG_PID=$1 FG_SIG=${2:-TERM}
    local rc=0
    wait "$FG_PID" || rc=$?
    FG_PID=""
    return "$rc"
}
cleanup() {
    local rc=$? pid kids=()
    trap - EXIT INT TERM
    if [ -n "$FG_PID" ]; then  # `timeout` passes the signal on to its command
        kill -"$FG_SIG" "$FG_PID" 2>/dev/null || true
        wait "$FG_PID" 2>/dev/null || true
    fi
    for pid in "${PIDS[@]}"; do
        # nginx workers are children of the master: remember them too.
        kids+=($(pgrep -P "$pid" 2>/dev/null || true))
    done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}" "${kids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}" "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || ! command -v curl >/dev/null; then
    [ "$(id -u)" = 0 ] || die "nginx/wrk/curl missing and not root: install them first"
    log "installing nginx, wrk, curl from Debian packages"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk curl >&2
fi
command -v python3 >/dev/null || die "python3 is required"
NGINX=$(command -v nginx)

NCPU=$(nproc)
pin() {  # pin <cpus> cmd... -> prints a command prefix
    if [ "$TASKSET" = 1 ]; then
        local cpus=$1
        [ "$NCPU" -lt 2 ] && cpus=0
        printf 'taskset -c %s' "$cpus"
    fi
}
PIN_PROXY=$(pin "$PROXY_CPUS"); PIN_BACKEND=$(pin "$BACKEND_CPUS"); PIN_WRK=$(pin "$WRK_CPUS")

# Enough descriptors for 1,000 idle clients plus upstream connections.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 2>/dev/null || true

CLK_TCK=$(getconf CLK_TCK)

duration_secs() {  # 10s / 2m / 1h / 10 -> seconds
    local d=$1
    case "$d" in
        *ms) echo 1 ;;
        *s) echo "${d%s}" ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *h) echo $(( ${d%h} * 3600 )) ;;
        *) echo "$d" ;;
    esac
}
DUR_S=$(duration_secs "$DURATION")
[[ "$DUR_S" =~ ^[0-9]+$ ]] && [ "$DUR_S" -ge 1 ] || die "DURATION must look like 10s, 2m or 10 (got $DURATION)"

TMP=$(mktemp -d /tmp/ficus-bench.XXXXXX)

free_ports() {  # free_ports N -> N currently free loopback TCP ports
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r BACKEND_PORT NGINX_PORT FICUS_PORT FICUS_ADMIN_PORT < <(free_ports 4)

# ---------------------------------------------------------------- /proc helpers
proc_set() {  # pid -> pid plus its direct children (nginx master + workers)
    echo "$1" $(pgrep -P "$1" 2>/dev/null || true)
}
cpu_ticks() {  # sum of utime+stime (clock ticks) over the given pids
    local total=0 pid t
    for pid in "$@"; do
        # fields after "pid (comm) ": utime is the 12th, stime the 13th
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$(( total + ${t:-0} ))
    done
    echo "$total"
}
rss_kb() {  # sum of VmRSS (KiB) over the given pids
    local total=0 pid r
    for pid in "$@"; do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || r=0
        total=$(( total + ${r:-0} ))
    done
    echo "$total"
}

# ---------------------------------------------------------------- nginx configs
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"   # workers must read files in our 0700 temp dir

nginx_common() {  # nginx_common <dir>
    local d=$1
    mkdir -p "$d/tmp" "$d/logs"
    cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
worker_rlimit_nofile 16384;
$USER_LINE
events { worker_connections 8192; }
EOF
}
nginx_http_common() {  # nginx_http_common <dir> [log] -> with "log", an access log to <dir>/logs/access.log
    local d=$1
    if [ "${2:-}" = log ]; then
        echo "    access_log $d/logs/access.log combined buffer=64k;"
    else
        echo "    access_log off;"
    fi
    cat <<EOF
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    default_type application/octet-stream;
EOF
}

BE_DIR=$TMP/backend
mkdir -p "$BE_DIR/html"
head -c 65536 /dev/zero | tr '\0' 'x' > "$BE_DIR/html/64k"
{
    nginx_common "$BE_DIR"
    echo "http {"
    nginx_http_common "$BE_DIR"
    cat <<EOF
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location = /64k { root $BE_DIR/html; }
        location / { return 200 "hello from backend\n"; }
    }
}
EOF
} > "$BE_DIR/nginx.conf"

PX_DIR=$TMP/nginx-proxy
mkdir -p "$PX_DIR"
{
    nginx_common "$PX_DIR"
    echo "http {"
    nginx_http_common "$PX_DIR" "$( [ "$LOGS" = on ] && echo log )"
    cat <<EOF
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # keep a 64 KiB response in memory: never spool to a temp file
            proxy_buffer_size 8k;
            proxy_buffers 16 8k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
} > "$PX_DIR/nginx.conf"

wait_http() {  # wait_http <url> <seconds> [pid]
    local url=$1 secs=$2 pid=${3:-} i
    for i in $(seq $(( secs * 10 ))); do
        curl -sf --max-time 1 -o /dev/null "$url" && return 0
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
        sleep 0.1
    done
    return 1
}

start_nginx() {  # start_nginx <dir> <pin-prefix> -> sets STARTED_PID
    local d=$1 pinp=$2
    "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" 2>"$d/logs/configtest.log" \
        || { cat "$d/logs/configtest.log" >&2; die "nginx config test failed for $d"; }
    $pinp "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" \
        >"$d/logs/stdout.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

declare -A PORT PID
log "backend nginx on 127.0.0.1:$BACKEND_PORT"
start_nginx "$BE_DIR" "$PIN_BACKEND"; BACKEND_PID=$STARTED_PID
wait_http "http://127.0.0.1:$BACKEND_PORT/" 10 "$BACKEND_PID" \
    || { cat "$BE_DIR/logs/error.log" >&2; die "backend nginx did not start"; }
PORT[direct]=$BACKEND_PORT; PID[direct]=$BACKEND_PID

if [[ " $TARGETS " == *" nginx "* ]]; then
    log "nginx reverse proxy on 127.0.0.1:$NGINX_PORT"
    start_nginx "$PX_DIR" "$PIN_PROXY"
    PORT[nginx]=$NGINX_PORT; PID[nginx]=$STARTED_PID
    wait_http "http://127.0.0.1:$NGINX_PORT/" 10 "${PID[nginx]}" \
        || { cat "$PX_DIR/logs/error.log" >&2; die "nginx proxy did not start"; }
fi

# ---------------------------------------------------------------- Ficus
FICUS_STATUS="not requested"
STORE_TARGETS=()  # ficus-store, ficus-features, ficus-features-nostale: served from a store, see below
for t in $TARGETS; do
    case "$t" in
        direct|nginx|ficus) ;;
        ficus-before) [ -x "$FICUS_BEFORE_BIN" ] || die "ficus-before needs FICUS_BEFORE_BIN (an executable ficus)" ;;
        ficus-log) ;;
        ficus-store|ficus-features|ficus-features-nostale) STORE_TARGETS+=("$t") ;;
        *) die "unknown target '$t' (direct nginx ficus ficus-before ficus-log ficus-store ficus-features ficus-features-nostale)" ;;
    esac
done
if [[ " $TARGETS " == *" ficus "* ]] || [ "${#STORE_TARGETS[@]}" -gt 0 ]; then
    FICUS_STATUS=""
    if [ -z "$FICUS_BIN" ]; then
        if ! command -v swift >/dev/null; then
            FICUS_STATUS="swift toolchain not found"
        else
            if [ "$SKIP_BUILD" != 1 ]; then
                log "building Ficus: swift build -c release --product ficus (log: $TMP/build.log)"
                (cd "$REPO" && exec timeout "$BUILD_TIMEOUT" swift build -c release --product ficus) \
                    >"$TMP/build.log" 2>&1 &
                # SIGINT: SwiftPM cancels its compiler jobs on INT, not on TERM
                if ! bg_wait $! INT; then
                    tail -n 30 "$TMP/build.log" >&2
                    FICUS_STATUS="release build failed"
                fi
            fi
            if [ -z "$FICUS_STATUS" ]; then
                FICUS_BIN="$(cd "$REPO" && swift build -c release --show-bin-path 2>/dev/null)/ficus"
            fi
        fi
    fi
    if [ -z "$FICUS_STATUS" ] && [ ! -x "$FICUS_BIN" ]; then
        FICUS_STATUS="binary $FICUS_BIN missing"
    fi
    # The store targets exist to be compared with ficus: without a binary there is nothing to compare.
    [ "${#STORE_TARGETS[@]}" -gt 0 ] && [ -n "$FICUS_STATUS" ] \
        && die "${STORE_TARGETS[*]} requested but Ficus is not available: $FICUS_STATUS"
    if [ -z "$FICUS_STATUS" ] && [[ " $TARGETS " != *" ficus "* ]]; then
        FICUS_STATUS="not requested"
    fi
    if [ -z "$FICUS_STATUS" ]; then
        log "Ficus on 127.0.0.1:$FICUS_PORT (admin $FICUS_ADMIN_PORT): $FICUS_BIN"
        $PIN_PROXY "$FICUS_BIN" serve \
            --listen "127.0.0.1:$FICUS_PORT" \
            --admin "127.0.0.1:$FICUS_ADMIN_PORT" \
            --upstream "backend=127.0.0.1:$BACKEND_PORT" \
            --default backend \
            --threads 1 \
            --access-log "$LOGS" \
            --log-level "$( [ "$LOGS" = on ] && echo info || echo warning )" \
            >"$TMP/ficus.log" 2>&1 &
        FPID=$!
        PIDS+=("$FPID")
        if wait_http "http://127.0.0.1:$FICUS_ADMIN_PORT/healthz" "$FICUS_START_TIMEOUT" "$FPID"; then
            PORT[ficus]=$FICUS_PORT; PID[ficus]=$FPID
        else
            FICUS_STATUS="failed to start (no /healthz on the admin port)"
            log "Ficus output:"; tail -n 20 "$TMP/ficus.log" | sed 's/^/    /' >&2
            kill -TERM "$FPID" 2>/dev/null || true
        fi
    fi
    if [ "$FICUS_STATUS" = "not requested" ]; then
        :
    elif [ -n "$FICUS_STATUS" ]; then
        log "SKIPPING Ficus: $FICUS_STATUS -- measuring direct and nginx only"
    else
        FICUS_STATUS="measured"
    fi
fi

# ---------------------------------------------------------------- the ficus target's twins
# ficus-before: another build (FICUS_BEFORE_BIN, e.g. the commit before a change) with the ficus target's flags, so
# that a before/after table comes from one run on the same machine state. ficus-log: the ficus target's binary and
# flags but with its default access log on (text, to a file), whatever LOGS says, so that one LOGS=off run prices
# the log per request against the ficus target beside it. Optional like the store targets: asked for on purpose, so
# a failure to start stops the run.
# start_ficus_target TARGET BIN LOGS CONFIG...: a `BIN serve` with the ficus target's flags (--threads 1, LOGS) and
# CONFIG (--upstream/--default or --store), its output in $TMP/TARGET/ficus.log; dies unless /healthz answers.
start_ficus_target() {
    local t=$1 bin=$2 logs=$3 port admin_port spid
    shift 3
    read -r port admin_port < <(free_ports 2)
    log "$t on 127.0.0.1:$port (admin $admin_port): $bin $*, access log $logs"
    $PIN_PROXY "$bin" serve "$@" \
        --listen "127.0.0.1:$port" \
        --admin "127.0.0.1:$admin_port" \
        --threads 1 \
        --access-log "$logs" \
        --log-level "$( [ "$logs" = on ] && echo info || echo warning )" \
        >"$TMP/$t/ficus.log" 2>&1 &
    spid=$!
    PIDS+=("$spid")
    wait_http "http://127.0.0.1:$admin_port/healthz" "$FICUS_START_TIMEOUT" "$spid" \
        || { tail -n 20 "$TMP/$t/ficus.log" >&2; die "$t: failed to start (no /healthz on the admin port)"; }
    PORT[$t]=$port; PID[$t]=$spid
}
for t in ficus-before ficus-log; do
    [[ " $TARGETS " == *" $t "* ]] || continue
    bin=$FICUS_BIN; logs=$LOGS
    [ "$t" = ficus-before ] && bin=$FICUS_BEFORE_BIN
    [ "$t" = ficus-log ] && logs=on
    [ -x "$bin" ] || die "$t: no Ficus binary to run (FICUS_BIN, or FICUS_BEFORE_BIN for ficus-before)"
    mkdir -p "$TMP/$t"
    start_ficus_target "$t" "$bin" "$logs" --upstream "backend=127.0.0.1:$BACKEND_PORT" --default backend
done

# ---------------------------------------------------------------- Ficus from a store
# The same binary and flags as the ficus target (--threads 1, the same logs), but its configuration comes from a
# store written by `ficus init` + `ficus apply` of a rules file: one catch-all route, as `--upstream --default`
# makes. ficus-store has nothing else (the control: what serving from a store costs by itself); ficus-features has
# every resilience feature of issue 17 configured and idle (the backend never fails, the limits are far above the
# load); ficus-features-nostale is the same without stale_if_error, which copies every 200 answer to a GET.
# Any of them that cannot be set up or answers wrongly stops the run: they are only ever asked for on purpose.
store_rules() {  # store_rules <target> -> a rules file on stdout
    local t=$1 addr="127.0.0.1:$BACKEND_PORT" name
    if [ "$t" = ficus-store ]; then
        cat <<EOF
upstreams:
  - name: backend
    addresses: [$addr]
routes:
  - name: default
    legacy: backend
    default: backend
EOF
        return 0
    fi
    # Two upstreams at the same address, so that the route has a legacy side to fall back to (fallback is on by
    # default when default and legacy differ); both carry every upstream feature.
    echo "upstreams:"
    for name in backend legacy; do
        cat <<EOF
  - name: $name
    addresses: [$addr]
    balance: least_request
    outlier: {}
    limits: {max_requests: 100000, max_pending: 100000, max_connections: 100000}
    health_check: {path: /small, interval: 10s}
EOF
    done
    cat <<EOF
routes:
  - name: default
    legacy: legacy
    default: backend
    fallback: legacy
    retry: {attempts: 1}
    rate_limit: {requests: 1000000000, per: 1s, burst: 1000000000}
EOF
    [ "$t" = ficus-features ] && echo "    stale_if_error: 60s"
    return 0
}
for t in "${STORE_TARGETS[@]}"; do
    d=$TMP/$t
    mkdir -p "$d"
    store_rules "$t" > "$d/rules.yaml"
    "$FICUS_BIN" validate "$d/rules.yaml" >"$d/setup.log" 2>&1 \
        || { cat "$d/rules.yaml" "$d/setup.log" >&2; die "$t: ficus validate refused its rules file"; }
    { "$FICUS_BIN" init --store "$d/ficus.sqlite" --author bench --reason "scripts/bench.sh $t" \
        && "$FICUS_BIN" apply --store "$d/ficus.sqlite" --author bench --reason "scripts/bench.sh $t" \
            "$d/rules.yaml"; } >>"$d/setup.log" 2>&1 \
        || { cat "$d/setup.log" >&2; die "$t: ficus init/apply failed"; }
    start_ficus_target "$t" "$FICUS_BIN" "$LOGS" --store "$d/ficus.sqlite"
done
# The twins are watched for an early exit like the store targets (their logs are in $TMP/TARGET too).
for t in ficus-before ficus-log; do [ -n "${PID[$t]:-}" ] && STORE_TARGETS+=("$t"); done

RUN_TARGETS=()
for t in $TARGETS; do
    [ -n "${PORT[$t]:-}" ] && RUN_TARGETS+=("$t")
done
[ "${#RUN_TARGETS[@]}" -gt 0 ] || die "nothing to measure"

# ---------------------------------------------------------------- sanity check
path_of() { [ "$1" = 64k ] && echo /64k || echo /small; }
for t in "${RUN_TARGETS[@]}"; do
    for b in $BODIES; do
        got=$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' \
              "http://127.0.0.1:${PORT[$t]}$(path_of "$b")" || true)
        want="200 (non-empty body)"; ok=0
        if [ "$b" = 64k ]; then
            want="200 65536"; [ "$got" = "$want" ] && ok=1
        else
            [[ "$got" =~ ^200\ [1-9][0-9]*$ ]] && ok=1
        fi
        if [ "$ok" = 0 ]; then
            if [ "$t" = ficus ]; then
                log "SKIPPING Ficus: GET $(path_of "$b") answered '$got', expected '$want'"
                FICUS_STATUS="wrong answer in sanity check ($got)"
                unset 'PORT[ficus]'
                break
            else
                die "$t: GET $(path_of "$b") answered '$got', expected '$want'"
            fi
        fi
    done
done
RUN_TARGETS=()
for t in $TARGETS; do [ -n "${PORT[$t]:-}" ] && RUN_TARGETS+=("$t"); done

# ---------------------------------------------------------------- header
GIT_REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo "no commit")
# the build uses the work tree: say so when its sources differ from the commit
[ -n "$(cd "$REPO" && git status --porcelain -- Sources Package.swift Package.resolved 2>/dev/null)" ] \
    && GIT_REV="$GIT_REV+uncommitted"
NGINX_VER=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
WRK_VER=$( (wrk -v 2>&1 || true) | head -n1 | awk '{print $2}')
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
HEADER="Ficus bench $(date -u +%Y-%m-%dT%H:%MZ), rev $GIT_REV; $NCPU CPUs ($CPU_MODEL); $NGINX_VER, wrk $WRK_VER; \
DURATION=$DURATION ROUNDS=$ROUNDS TASKSET=$TASKSET LOGS=$LOGS; wrk -t1; one worker/thread per server; Ficus: $FICUS_STATUS"
log "$HEADER"
log "load average at start: $LOAD_START"

# ---------------------------------------------------------------- idle RSS
IDLE_TSV=$TMP/idle.tsv
printf 'target\tconns_ok\tconns_failed\trss_before_kb\trss_after_kb\n' > "$IDLE_TSV"
if [ "$IDLE_CONNS" -gt 0 ]; then
    for t in "${RUN_TARGETS[@]}"; do
        [ "$t" = direct ] && continue
        pids=$(proc_set "${PID[$t]}")
        before=$(rss_kb $pids)
        out=$TMP/idle-$t.out
        $PIN_WRK python3 "$HELPERS/idle_conns.py" --port "${PORT[$t]}" --count "$IDLE_CONNS" \
            --path /small --hold 120 >"$out" 2>"$TMP/idle-$t.err" &
        ipid=$!
        PIDS+=("$ipid")
        for _ in $(seq 600); do
            grep -q '^READY' "$out" 2>/dev/null && break
            kill -0 "$ipid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1
        after=$(rss_kb $pids)
        ready=$(grep '^READY' "$out" || echo "READY ok=0 failed=$IDLE_CONNS")
        ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$ready")
        failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$ready")
        kill -TERM "$ipid" 2>/dev/null || true
        wait "$ipid" 2>/dev/null || true
        closed=$(sed -n 's/^DONE server_closed=//p' "$out")
        log "idle: $t held $ok/$IDLE_CONNS connections (failed $failed, closed by server while held ${closed:-?}); RSS $before -> $after KiB"
        [ -s "$TMP/idle-$t.err" ] && sed 's/^/    /' "$TMP/idle-$t.err" >&2
        printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$ok" "$failed" "$before" "$after" >> "$IDLE_TSV"
        sleep "$PAUSE"
    done
fi

# ---------------------------------------------------------------- load runs
to_ms() {  # wrk latency value (e.g. 512.00us, 1.20ms, 2.00s) -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "" }'
}

run_wrk() {  # run_wrk <port> <conns> <path> <duration> <outfile>
    $PIN_WRK timeout $(( $(duration_secs "$4") + 30 )) \
        wrk -t1 -c"$2" -d"$4" --latency --timeout 5s "http://127.0.0.1:$1$3" >"$5" 2>&1 &
    bg_wait $!
}

if [ "$WARMUP" != 0 ]; then
    for t in "${RUN_TARGETS[@]}"; do
        log "warm-up $t ($WARMUP)"
        for b in $BODIES; do
            run_wrk "${PORT[$t]}" 32 "$(path_of "$b")" "$WARMUP" "$TMP/warmup.out"
        done
    done
    sleep "$PAUSE"
fi

RUNS_TSV=$TMP/runs.tsv
printf 'round\ttarget\tconns\tbody\trps\tp50_ms\tp99_ms\trequests\tcpu_us_req\tbackend_cpu_us_req\trss_kb\tnon2xx\tsock_errors\n' > "$RUNS_TSV"
ntargets=${#RUN_TARGETS[@]}
for round in $(seq "$ROUNDS"); do
    for b in $BODIES; do
        for c in $CONNS; do
            for i in $(seq 0 $(( ntargets - 1 ))); do
                # rotate the order each round so no target always goes first
                t=${RUN_TARGETS[$(( (i + round - 1) % ntargets ))]}
                port=${PORT[$t]}
                pids=$(proc_set "${PID[$t]}")
                bpids=$(proc_set "$BACKEND_PID")
                out=$TMP/wrk-$round-$t-$c-$b.out
                t0=$(cpu_ticks $pids); b0=$(cpu_ticks $bpids)
                run_wrk "$port" "$c" "$(path_of "$b")" "$DURATION" "$out"
                t1=$(cpu_ticks $pids); b1=$(cpu_ticks $bpids)
                rss=$(rss_kb $pids)
                requests=$(awk '/requests in/ {print $1; exit}' "$out")
                rps=$(awk '/^Requests\/sec:/ {print $2; exit}' "$out")
                p50=$(to_ms "$(awk '$1 == "50%" {print $2; exit}' "$out")")
                p99=$(to_ms "$(awk '$1 == "99%" {print $2; exit}' "$out")")
                non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2; exit}' "$out")
                sockerr=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10; exit}' "$out")
                if [ -z "$requests" ] || [ "${requests:-0}" = 0 ]; then
                    log "wrk produced no requests for $t ${c}c $b:"; sed 's/^/    /' "$out" >&2
                    cpu=""; bcpu=""
                else
                    cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$CLK_TCK" -v n="$requests" \
                        'BEGIN {printf "%.2f", d * 1e6 / hz / n}')
                    bcpu=$(awk -v d=$(( b1 - b0 )) -v hz="$CLK_TCK" -v n="$requests" \
                        'BEGIN {printf "%.2f", d * 1e6 / hz / n}')
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                    "$round" "$t" "$c" "$b" "${rps:-}" "${p50:-}" "${p99:-}" "${requests:-0}" \
                    "$cpu" "$bcpu" "$rss" "${non2xx:-0}" "${sockerr:-0}" >> "$RUNS_TSV"
                log "round $round ${c}c $b $t: ${rps:-?} req/s p50 ${p50:-?}ms p99 ${p99:-?}ms cpu ${cpu:-?}us/req errors $(( ${non2xx:-0} + ${sockerr:-0} ))"
                [ -n "${PID[ficus]:-}" ] && ! kill -0 "${PID[ficus]}" 2>/dev/null && {
                    log "Ficus exited during the run:"; tail -n 20 "$TMP/ficus.log" | sed 's/^/    /' >&2
                    die "Ficus died"; }
                for st in "${STORE_TARGETS[@]}"; do
                    kill -0 "${PID[$st]}" 2>/dev/null || {
                        log "$st exited during the run:"; tail -n 20 "$TMP/$st/ficus.log" | sed 's/^/    /' >&2
                        die "$st died"; }
                done
                sleep "$PAUSE"
            done
        done
    done
done

# ---------------------------------------------------------------- profiles (optional)
# A share of one process's samples does not move with the machine's load the way CPU per request does, so it can
# price work far below the run-to-run spread of the rounds above.
if [ -n "$PROFILE_DIR" ]; then
    command -v perf >/dev/null || die "PROFILE_DIR needs perf (apt-get install -y linux-perf)"
    mkdir -p "$PROFILE_DIR"
    PROFILED=()
    for t in "${RUN_TARGETS[@]}"; do [[ $t == ficus* ]] && PROFILED+=("$t"); done
    for round in $(seq "$PROFILE_ROUNDS"); do
        for i in $(seq 0 $(( ${#PROFILED[@]} - 1 ))); do
            t=${PROFILED[$(( (i + round - 1) % ${#PROFILED[@]} ))]}
            f=$PROFILE_DIR/$t.$round
            log "profiling $t (round $round): perf record -F 4000 -g for ${PROFILE_SECONDS}s under wrk -c32 /small"
            perf record -q -F 4000 -g -p "${PID[$t]}" -o "$f.perf" -- sleep "$PROFILE_SECONDS" >"$f.perf.log" 2>&1 &
            perf_pid=$!
            run_wrk "${PORT[$t]}" 32 /small "$(( PROFILE_SECONDS + 1 ))s" "$f.wrk"
            bg_wait "$perf_pid" INT || die "$t: perf record failed: $(cat "$f.perf.log")"
            sleep "$PAUSE"
        done
    done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at end: $LOAD_END"
[ -n "$RESULTS_TSV" ] && cp "$RUNS_TSV" "$RESULTS_TSV"

# ---------------------------------------------------------------- report
echo "$HEADER"
echo "load average: start $LOAD_START, end $LOAD_END"
report_args=("$RUNS_TSV" "$IDLE_TSV" --ficus-status "$FICUS_STATUS")
if [ "$MARKDOWN" = 1 ]; then
    report_args+=(--markdown --header "_${HEADER}; load average start $LOAD_START, end ${LOAD_END}_")
fi
python3 "$HELPERS/report.py" "${report_args[@]}"
if [ -n "$PROFILE_DIR" ]; then
    shares_args=("$PROFILE_DIR")
    [ "$MARKDOWN" = 1 ] && shares_args+=(--markdown)
    python3 "$HELPERS/feature_shares.py" "${shares_args[@]}"
fi
exit
}
