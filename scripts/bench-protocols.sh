#!/usr/bin/env bash
# Ficus protocol benchmark (issue 19): TLS, HTTP/2 and WebSocket through nginx and through Ficus, same run.
#
# Scenarios (SCENARIOS picks a subset; the unit is what "per" means in the tables):
#   tls-32c, tls-256c  wrk -t1 -c32 / -c256 over https, keep-alive            unit: request
#   tls-resume         wrk -t1 -c32 -H "Connection: close" over https: a new   unit: handshake
#                      TLS connection per request; wrk keeps the session of
#                      its last connection, so these are resumed (TLS 1.3 PSK)
#   tls-new            scripts/bench/proto_clients.py tls-new: a new TLS       unit: handshake
#                      connection per request that never resumes (full
#                      handshakes), TLS_PROCS client processes
#   h2-c1-m100         h2load -c1 -m100: 100 streams at once on one connection unit: request
#   h2-c8-m32          h2load -c8 -m32                                         unit: request
#   ws-stream          proto_clients.py ws-client: WS_CONNS WebSocket tunnels, unit: message
#                      each with WS_WINDOW batches of WS_BATCH masked frames
#                      of WS_PAYLOAD bytes in flight, echoed by the backend
#   ws-pingpong        the same with one message in flight per connection,     unit: message
#                      WS_PP_CONNS connections
#
# Targets: nginx (TLS listener with ssl_session_cache shared:SSL:10m and http2, HTTP/1.1 keep-alive upstream; a
# plain listener for WebSocket with the Upgrade/Connection fields) and ficus (`ficus serve --tls-cert --tls-key
# --threads 1 --access-log off`, and a second plain `ficus serve` for WebSocket). Backends: an nginx (`return 200` on
# /small, as scripts/bench.sh's) and a WebSocket echo backend (proto_clients.py ws-echo). A throwaway CA and server
# certificate (ECDSA P-256, for 127.0.0.1 and localhost) are made with openssl in the temp dir.
#
# This is a benchmark, not a test: it fails only on broken setup, never on slow numbers. See docs/BENCHMARKS.md,
# "Protocols (issue 19)", for the method. Measuring runs are meant to be wrapped in flock so that benchmarks of
# different sessions never overlap:
#
#   FICUS_BIN=/tmp/ficus-head flock /tmp/bench.lock scripts/bench-protocols.sh
#   FICUS_BIN=.build/release/ficus DURATION=5s ROUNDS=3 MARKDOWN=1 flock /tmp/bench.lock scripts/bench-protocols.sh > out
#   FICUS_BIN=... SCENARIOS="tls-new ws-stream" ROUNDS=1 scripts/bench-protocols.sh
#   FICUS_BIN=... PERF_SCENARIO=tls-new PERF_SECONDS=4 scripts/bench-protocols.sh   # + perf record -g of Ficus
#
# Everything listens on 127.0.0.1 only. Every process started here is killed on exit and the temp dir is removed
# (the perf report, if any, is copied to PERF_OUT first).

set -euo pipefail

# The whole script is one { ... } block: bash parses it completely before running it.
{

# ---------------------------------------------------------------- knobs
DURATION=${DURATION:-5s}           # per measurement (wrk -d, h2load -D, the Python clients)
ROUNDS=${ROUNDS:-3}                # repeat the whole matrix; tables show medians
SCENARIOS=${SCENARIOS:-"tls-32c tls-256c tls-resume tls-new h2-c1-m100 h2-c8-m32 ws-stream ws-pingpong"}
TARGETS=${TARGETS:-"nginx ficus"}
WARMUP=${WARMUP:-2s}               # per target: TLS keep-alive, h2 and WebSocket load before measuring (0 = none)
PAUSE=${PAUSE:-1}                  # seconds of quiet between measurements
TLS_PROCS=${TLS_PROCS:-2}          # tls-new client processes
WS_CONNS=${WS_CONNS:-8}            # ws-stream tunnels
WS_PAYLOAD=${WS_PAYLOAD:-32}       # bytes of payload per WebSocket message (frame = payload + 6)
WS_BATCH=${WS_BATCH:-512}          # ws-stream messages per write
WS_WINDOW=${WS_WINDOW:-4}          # ws-stream batches in flight per tunnel
WS_PP_CONNS=${WS_PP_CONNS:-64}     # ws-pingpong tunnels (one message in flight each)
FICUS_BIN=${FICUS_BIN:-}           # required: the Ficus binary (a release build with TLS, HTTP/2 and WebSocket)
FICUS_START_TIMEOUT=${FICUS_START_TIMEOUT:-15}
MARKDOWN=${MARKDOWN:-0}            # 1 = append a markdown block for docs to stdout
RESULTS_TSV=${RESULTS_TSV:-}       # optional: copy the raw per-run TSV here
PERF_SCENARIO=${PERF_SCENARIO:-}   # after the rounds: `perf record -g` the Ficus process under this scenario
PERF_SECONDS=${PERF_SECONDS:-4}
PERF_OUT=${PERF_OUT:-/tmp/ficus-bench-protocols-perf.txt}  # perf report --stdio of that recording

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS="$REPO/scripts/bench"

log() { printf '[bench-protocols] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup (as scripts/bench.sh)
TMP=""
PIDS=()
FG_PID=""
bg_wait() {  # bg_wait <pid> -> its exit status; a signal to this script is handled at once
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
        kids+=($(pgrep -P "$pid" 2>/dev/null || true))  # nginx workers, tls-new worker processes
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
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
[ -n "$FICUS_BIN" ] || die "FICUS_BIN is required (a release build of ficus with TLS, HTTP/2 and WebSocket)"
[ -x "$FICUS_BIN" ] || die "FICUS_BIN=$FICUS_BIN is not an executable"
missing=()
for tool in nginx wrk h2load openssl curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]} and not root: install them first"
    pkgs=("${missing[@]/h2load/nghttp2-client}")
    log "installing ${pkgs[*]} from Debian packages"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
fi
command -v python3 >/dev/null || die "python3 is required"
[ -x /usr/bin/time ] || die "/usr/bin/time is required (Debian package time): it measures the clients' CPU"
if [ -n "$PERF_SCENARIO" ] && ! command -v perf >/dev/null; then die "PERF_SCENARIO needs perf"; fi
NGINX=$(command -v nginx)
for t in $TARGETS; do case "$t" in nginx|ficus) ;; *) die "unknown target '$t' (nginx ficus)" ;; esac; done
for s in $SCENARIOS; do
    case "$s" in tls-32c|tls-256c|tls-resume|tls-new|h2-c1-m100|h2-c8-m32|ws-stream|ws-pingpong) ;;
        *) die "unknown scenario '$s'" ;; esac
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)
duration_secs() {  # 10s / 2m / 10 -> seconds
    case "$1" in *s) echo "${1%s}" ;; *m) echo $(( ${1%m} * 60 )) ;; *) echo "$1" ;; esac
}
DUR_S=$(duration_secs "$DURATION")
[[ "$DUR_S" =~ ^[0-9]+$ ]] && [ "$DUR_S" -ge 1 ] || die "DURATION must look like 5s, 1m or 5 (got $DURATION)"
WARM_S=$(duration_secs "$WARMUP")
[[ "$WARM_S" =~ ^[0-9]+$ ]] || die "WARMUP must look like 2s or 0 (got $WARMUP)"

TMP=$(mktemp -d /tmp/ficus-bench-protocols.XXXXXX)

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
read -r BACKEND_PORT WS_BACKEND_PORT NGINX_TLS_PORT NGINX_WS_PORT FICUS_PORT FICUS_ADMIN_PORT FICUS_WS_PORT \
    FICUS_WS_ADMIN_PORT < <(free_ports 8)

# ---------------------------------------------------------------- /proc helpers (as scripts/bench.sh)
proc_set() { echo "$1" $(pgrep -P "$1" 2>/dev/null || true); }  # pid plus direct children (nginx workers)
cpu_ticks() {  # sum of utime+stime (clock ticks) over the given pids
    local total=0 pid t
    for pid in "$@"; do
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$(( total + ${t:-0} ))
    done
    echo "$total"
}

# ---------------------------------------------------------------- certificates
CERTS=$TMP/certs
mkdir -p "$CERTS"
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=ficus bench CA" \
        -keyout "$CERTS/ca.key" -out "$CERTS/ca.pem"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$CERTS/server.key" -out "$CERTS/server.csr"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" > "$CERTS/ext.cnf"
    openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" -CAcreateserial \
        -days 2 -extfile "$CERTS/ext.cnf" -out "$CERTS/server.pem"
} >"$TMP/openssl.log" 2>&1 || { cat "$TMP/openssl.log" >&2; die "could not make the certificates"; }
CA=$CERTS/ca.pem

# ---------------------------------------------------------------- nginx configs (as scripts/bench.sh)
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
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
nginx_http_common() {  # nginx_http_common <dir>
    local d=$1
    cat <<EOF
    access_log off;
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
{
    nginx_common "$BE_DIR"
    echo "http {"
    nginx_http_common "$BE_DIR"
    cat <<EOF
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { return 200 "hello from backend\n"; }
    }
}
EOF
} > "$TMP/backend.conf"
mv "$TMP/backend.conf" "$BE_DIR/nginx.conf"

PX_DIR=$TMP/nginx-proxy
{
    nginx_common "$PX_DIR"
    echo "http {"
    nginx_http_common "$PX_DIR"
    cat <<EOF
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 10m;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    upstream wsbackend {
        server 127.0.0.1:$WS_BACKEND_PORT;
    }
    # TLS: HTTP/1.1 and (by ALPN) HTTP/2; nginx 1.22 spells "http2 on" as a listen parameter
    server {
        listen 127.0.0.1:$NGINX_TLS_PORT ssl http2 backlog=4096;
        ssl_certificate $CERTS/server.pem;
        ssl_certificate_key $CERTS/server.key;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 8k;
            proxy_buffers 16 8k;
            proxy_max_temp_file_size 0;
        }
    }
    # WebSocket: plain listener, the upgrade fields passed on; a tunnel's buffers are proxy_buffer_size each way
    server {
        listen 127.0.0.1:$NGINX_WS_PORT backlog=4096;
        location / {
            proxy_pass http://wsbackend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
            proxy_buffer_size 8k;
        }
    }
}
EOF
} > "$TMP/proxy.conf"
mv "$TMP/proxy.conf" "$PX_DIR/nginx.conf"

wait_http() {  # wait_http <url> <seconds> [pid]
    local url=$1 secs=$2 pid=${3:-} i
    for i in $(seq $(( secs * 10 ))); do
        curl -sf --cacert "$CA" --max-time 1 -o /dev/null "$url" && return 0
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
        sleep 0.1
    done
    return 1
}
start_nginx() {  # start_nginx <dir> -> sets STARTED_PID
    local d=$1
    "$NGINX" -t -q -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" 2>"$d/logs/configtest.log" \
        || { cat "$d/logs/configtest.log" >&2; die "nginx config test failed for $d"; }
    "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" >"$d/logs/stdout.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# ---------------------------------------------------------------- start everything
declare -A PORT WSPORT PID WSPID
log "backend nginx on 127.0.0.1:$BACKEND_PORT"
start_nginx "$BE_DIR"; BACKEND_PID=$STARTED_PID
wait_http "http://127.0.0.1:$BACKEND_PORT/small" 10 "$BACKEND_PID" \
    || { cat "$BE_DIR/logs/error.log" >&2; die "backend nginx did not start"; }

log "WebSocket echo backend on 127.0.0.1:$WS_BACKEND_PORT"
python3 "$HELPERS/proto_clients.py" ws-echo --port "$WS_BACKEND_PORT" >"$TMP/ws-echo.log" 2>&1 &
WS_BACKEND_PID=$!
PIDS+=("$WS_BACKEND_PID")
for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" \
        "$WS_BACKEND_PORT" 2>/dev/null && break
    kill -0 "$WS_BACKEND_PID" 2>/dev/null || { cat "$TMP/ws-echo.log" >&2; die "WebSocket echo backend died"; }
    sleep 0.1
done

if [[ " $TARGETS " == *" nginx "* ]]; then
    log "nginx proxy: TLS on 127.0.0.1:$NGINX_TLS_PORT, WebSocket on 127.0.0.1:$NGINX_WS_PORT"
    start_nginx "$PX_DIR"
    PORT[nginx]=$NGINX_TLS_PORT; WSPORT[nginx]=$NGINX_WS_PORT; PID[nginx]=$STARTED_PID; WSPID[nginx]=$STARTED_PID
    wait_http "https://127.0.0.1:$NGINX_TLS_PORT/small" 10 "$STARTED_PID" \
        || { cat "$PX_DIR/logs/error.log" >&2; die "nginx proxy did not start"; }
fi

start_ficus() {  # start_ficus <name> <port> <admin port> <upstream host:port> [flags...] -> sets STARTED_PID
    local name=$1 port=$2 admin=$3 up=$4
    shift 4
    "$FICUS_BIN" serve --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" \
        --upstream "backend=$up" --default backend --threads 1 --access-log off --log-level warning "$@" \
        >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_http "http://127.0.0.1:$admin/healthz" "$FICUS_START_TIMEOUT" "$STARTED_PID" \
        || { tail -n 20 "$TMP/$name.log" >&2; die "$name did not start (no /healthz on its admin port)"; }
}
if [[ " $TARGETS " == *" ficus "* ]]; then
    log "Ficus (TLS) on 127.0.0.1:$FICUS_PORT, Ficus (WebSocket, plain) on 127.0.0.1:$FICUS_WS_PORT: $FICUS_BIN"
    start_ficus ficus "$FICUS_PORT" "$FICUS_ADMIN_PORT" "127.0.0.1:$BACKEND_PORT" \
        --tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server.key"
    PORT[ficus]=$FICUS_PORT; PID[ficus]=$STARTED_PID
    start_ficus ficus-ws "$FICUS_WS_PORT" "$FICUS_WS_ADMIN_PORT" "127.0.0.1:$WS_BACKEND_PORT"
    WSPORT[ficus]=$FICUS_WS_PORT; WSPID[ficus]=$STARTED_PID
fi
RUN_TARGETS=($TARGETS)
[ "${#RUN_TARGETS[@]}" -gt 0 ] || die "nothing to measure"

# ---------------------------------------------------------------- sanity check
for t in "${RUN_TARGETS[@]}"; do
    got=$(curl -s --cacert "$CA" --http1.1 --max-time 5 -o /dev/null -w '%{http_code} %{http_version} %{size_download}' \
        "https://127.0.0.1:${PORT[$t]}/small" || true)
    [[ "$got" =~ ^200\ 1\.1\ [1-9][0-9]*$ ]] || die "$t: GET /small over TLS answered '$got', expected 200 over HTTP/1.1"
    got=$(curl -s --cacert "$CA" --http2 --max-time 5 -o /dev/null -w '%{http_code} %{http_version} %{size_download}' \
        "https://127.0.0.1:${PORT[$t]}/small" || true)
    [[ "$got" =~ ^200\ 2\ [1-9][0-9]*$ ]] || die "$t: GET /small over HTTP/2 answered '$got', expected 200 over h2"
    out=$(python3 "$HELPERS/proto_clients.py" ws-client --port "${WSPORT[$t]}" --conns 2 --duration 0.5 \
        --payload "$WS_PAYLOAD" 2>&1 || true)
    [[ "$out" =~ messages=[1-9].*errors=0 ]] || die "$t: WebSocket echo through the tunnel failed: $out"
    out=$(python3 "$HELPERS/proto_clients.py" tls-new --port "${PORT[$t]}" --cafile "$CA" --procs 1 --duration 0.3 \
        2>&1 || true)
    [[ "$out" =~ requests=[1-9].*errors=0 ]] || die "$t: new TLS connections failed: $out"
done

# ---------------------------------------------------------------- header
GIT_REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo "no commit")
FICUS_VER=$("$FICUS_BIN" --version 2>/dev/null | head -n1 || echo "?")
FICUS_MTIME=$(date -u -r "$FICUS_BIN" +%Y-%m-%dT%H:%MZ)
NGINX_VER=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
NGINX_SSL=$("$NGINX" -V 2>&1 | sed -n 's/^built with \(OpenSSL [^ ]*\).*running with \(OpenSSL [^ ]*\).*/\1, running \2/p')
WRK_VER=$( (wrk -v 2>&1 || true) | head -n1 | awk '{print $2}')
H2LOAD_VER=$(h2load --version 2>&1 | awk '{print $2; exit}')
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
HEADER="Ficus bench-protocols $(date -u +%Y-%m-%dT%H:%MZ), scripts rev $GIT_REV, ficus $FICUS_VER ($FICUS_BIN, \
built $FICUS_MTIME); $(nproc) CPUs ($CPU_MODEL); $NGINX_VER (${NGINX_SSL:-?}), wrk $WRK_VER, h2load $H2LOAD_VER, \
Python $(python3 -c 'import platform; print(platform.python_version())'); DURATION=$DURATION ROUNDS=$ROUNDS \
TLS_PROCS=$TLS_PROCS WS_CONNS=$WS_CONNS WS_PAYLOAD=$WS_PAYLOAD WS_BATCH=$WS_BATCH WS_WINDOW=$WS_WINDOW \
WS_PP_CONNS=$WS_PP_CONNS; one worker/thread per server"
log "$HEADER"
log "load average at start: $LOAD_START"

# ---------------------------------------------------------------- load
# client <scenario> <target> <duration secs> <outfile>: runs the scenario's client under /usr/bin/time
client() {
    local s=$1 t=$2 d=$3 out=$4 cmd
    local url="https://127.0.0.1:${PORT[$t]}/small"
    case "$s" in
        tls-32c) cmd=(wrk -t1 -c32 -d"${d}s" --latency --timeout 5s "$url") ;;
        tls-256c) cmd=(wrk -t1 -c256 -d"${d}s" --latency --timeout 5s "$url") ;;
        tls-resume) cmd=(wrk -t1 -c32 -d"${d}s" --latency --timeout 5s -H "Connection: close" "$url") ;;
        tls-new) cmd=(python3 "$HELPERS/proto_clients.py" tls-new --port "${PORT[$t]}" --cafile "$CA"
                      --procs "$TLS_PROCS" --duration "$d") ;;
        h2-c1-m100) cmd=(h2load -c1 -m100 -D "$d" --log-file="$out.lat" "$url") ;;
        h2-c8-m32) cmd=(h2load -c8 -m32 -D "$d" --log-file="$out.lat" "$url") ;;
        ws-stream) cmd=(python3 "$HELPERS/proto_clients.py" ws-client --port "${WSPORT[$t]}" --conns "$WS_CONNS"
                        --payload "$WS_PAYLOAD" --batch "$WS_BATCH" --window "$WS_WINDOW" --duration "$d") ;;
        ws-pingpong) cmd=(python3 "$HELPERS/proto_clients.py" ws-client --port "${WSPORT[$t]}"
                          --conns "$WS_PP_CONNS" --payload "$WS_PAYLOAD" --batch 1 --window 1 --duration "$d") ;;
    esac
    timeout $(( d + 30 )) /usr/bin/time -f '%e %U %S' -o "$out.time" "${cmd[@]}" >"$out" 2>"$out.err" &
    bg_wait $!
}
unit_of() { case "$1" in tls-resume|tls-new) echo handshake ;; ws-*) echo msg ;; *) echo req ;; esac; }
to_ms() {  # wrk latency value (512.00us, 1.20ms, 2.00s) -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "" }'
}
# parse <scenario> <outfile> -> "count rate p99_ms errors" (p99 "-" when unknown)
parse() {
    local s=$1 out=$2
    case "$s" in
        tls-*c|tls-resume)
            local n rate p99 non2xx sockerr
            n=$(awk '/requests in/ {print $1; exit}' "$out")
            rate=$(awk '/^Requests\/sec:/ {print $2; exit}' "$out")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2; exit}' "$out")")
            non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2; exit}' "$out")
            sockerr=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10; exit}' "$out")
            echo "${n:-0} ${rate:-0} ${p99:--} $(( ${non2xx:-0} + ${sockerr:-0} ))" ;;
        h2-*)
            # "requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout"
            local n rate bad p99
            n=$(awk '/^requests:/ {print $8; exit}' "$out")
            bad=$(awk '/^requests:/ {print $10 + $12 + $14; exit}' "$out")
            rate=$(awk '/^finished in/ {print $4; exit}' "$out")
            non2xx=$(awk '/^status codes:/ {gsub(/,/, ""); print $5 + $7 + $9; exit}' "$out")
            # --log-file: start (µs since the epoch), status, µs until the end of the answer
            p99=$(awk -F'\t' '{print $3}' "$out.lat" 2>/dev/null | sort -n \
                | awk '{v[NR] = $1} END {if (NR) {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", v[i] / 1000} else print "-"}')
            echo "${n:-0} ${rate:-0} ${p99:--} $(( ${bad:-0} + ${non2xx:-0} ))" ;;
        tls-new|ws-*)
            local line n rate p99 err
            line=$(grep -E '^(requests|messages)=' "$out" | tail -n1)
            n=$(sed -n 's/^[a-z]*=\([0-9]*\).*/\1/p' <<<"$line")
            rate=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$line")
            err=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
            p99=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
            echo "${n:-0} ${rate:-0} ${p99:--} ${err:-0}" ;;
    esac
}
proxy_pid() { case "$1" in ws-*) echo "${WSPID[$2]}" ;; *) echo "${PID[$2]}" ;; esac; }
backend_pid() { case "$1" in ws-*) echo "$WS_BACKEND_PID" ;; *) echo "$BACKEND_PID" ;; esac; }
check_alive() {
    local t p
    for t in "${RUN_TARGETS[@]}"; do
        for p in "${PID[$t]}" "${WSPID[$t]}"; do
            kill -0 "$p" 2>/dev/null || { tail -n 20 "$TMP"/*.log >&2 || true; die "$t (pid $p) exited during the run"; }
        done
    done
    kill -0 "$WS_BACKEND_PID" 2>/dev/null || { cat "$TMP/ws-echo.log" >&2; die "the WebSocket echo backend exited"; }
}

if [ "$WARM_S" -gt 0 ]; then
    for t in "${RUN_TARGETS[@]}"; do
        log "warm-up $t (${WARM_S}s each: TLS keep-alive, h2, WebSocket)"
        for s in tls-32c h2-c8-m32 ws-stream; do client "$s" "$t" "$WARM_S" "$TMP/warmup.out" || true; done
    done
    sleep "$PAUSE"
fi

RUNS_TSV=$TMP/runs.tsv
printf 'round\tscenario\ttarget\tunit\trate\tp99_ms\tcount\tcpu_us\tbackend_cpu_us\tproxy_cpu_pct\tclient_cpu_pct\terrors\n' \
    > "$RUNS_TSV"
ntargets=${#RUN_TARGETS[@]}
for round in $(seq "$ROUNDS"); do
    for s in $SCENARIOS; do
        for i in $(seq 0 $(( ntargets - 1 ))); do
            t=${RUN_TARGETS[$(( (i + round - 1) % ntargets ))]}  # the order rotates each round
            pids=$(proc_set "$(proxy_pid "$s" "$t")")
            bpids=$(proc_set "$(backend_pid "$s")")
            out=$TMP/run-$round-$s-$t.out
            t0=$(cpu_ticks $pids); b0=$(cpu_ticks $bpids)
            client "$s" "$t" "$DUR_S" "$out" || log "client of $s $t exited with an error (see below)"
            t1=$(cpu_ticks $pids); b1=$(cpu_ticks $bpids)
            read -r n rate p99 errors < <(parse "$s" "$out")
            # /usr/bin/time -o: "Command exited with non-zero status N" first when the client failed
            read -r wall cu cs < <(tail -n1 "$out.time" 2>/dev/null) || { wall=$DUR_S; cu=0; cs=0; }
            [[ "$wall" =~ ^[0-9.]+$ ]] || { wall=$DUR_S; cu=0; cs=0; }
            if [ "${n:-0}" = 0 ]; then
                log "no $(unit_of "$s")s completed for $t $s:"; sed 's/^/    /' "$out" "$out.err" >&2
                cpu=""; bcpu=""
            else
                cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$CLK_TCK" -v n="$n" 'BEGIN {printf "%.3f", d * 1e6 / hz / n}')
                bcpu=$(awk -v d=$(( b1 - b0 )) -v hz="$CLK_TCK" -v n="$n" 'BEGIN {printf "%.3f", d * 1e6 / hz / n}')
            fi
            pcpu=$(awk -v d=$(( t1 - t0 )) -v hz="$CLK_TCK" -v w="$wall" 'BEGIN {printf "%.0f", (w > 0 ? d / hz / w * 100 : 0)}')
            ccpu=$(awk -v u="$cu" -v s="$cs" -v w="$wall" 'BEGIN {printf "%.0f", (w > 0 ? (u + s) / w * 100 : 0)}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$s" "$t" "$(unit_of "$s")" \
                "$rate" "$p99" "$n" "$cpu" "$bcpu" "$pcpu" "$ccpu" "$errors" >> "$RUNS_TSV"
            log "round $round $s $t: $rate $(unit_of "$s")/s p99 ${p99}ms proxy ${cpu:-?}us/$(unit_of "$s") \
(proxy ${pcpu}% client ${ccpu}% of a core) errors $errors"
            [ -s "$out.err" ] && [ "$errors" != 0 ] && head -n 5 "$out.err" | sed 's/^/    /' >&2
            rm -f "$out.lat"
            check_alive
            sleep "$PAUSE"
        done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at end: $LOAD_END"
[ -n "$RESULTS_TSV" ] && cp "$RUNS_TSV" "$RESULTS_TSV"

# ---------------------------------------------------------------- optional profile of Ficus
if [ -n "$PERF_SCENARIO" ] && [ -n "${PID[ficus]:-}" ]; then
    fp=$(proxy_pid "$PERF_SCENARIO" ficus)
    log "perf record -g of Ficus (pid $fp) for ${PERF_SECONDS}s under $PERF_SCENARIO -> $PERF_OUT"
    client "$PERF_SCENARIO" ficus $(( PERF_SECONDS + 2 )) "$TMP/perf-load.out" &
    loadpid=$!
    sleep 1
    perf record -q -g -p "$fp" -o "$TMP/perf.data" -- sleep "$PERF_SECONDS" >"$TMP/perf.log" 2>&1 \
        || { cat "$TMP/perf.log" >&2; log "perf record failed"; }
    wait "$loadpid" || true
    if [ -s "$TMP/perf.data" ]; then
        { echo "# $PERF_SCENARIO, ficus pid $fp, ${PERF_SECONDS}s; $(parse "$PERF_SCENARIO" "$TMP/perf-load.out")"
          echo "## flat (self) profile"
          perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 -g none 2>/dev/null
          echo "## with children"
          perf report -i "$TMP/perf.data" --stdio --children --sort symbol --percent-limit 3 -g none 2>/dev/null
        } | sed 's/ \{3,\}/  /g; s/ *$//' > "$PERF_OUT" || true  # perf pads its columns very wide
        log "perf report written to $PERF_OUT"
    fi
fi

# ---------------------------------------------------------------- report
echo "$HEADER"
echo "load average: start $LOAD_START, end $LOAD_END"
report_args=("$RUNS_TSV")
[ "$MARKDOWN" = 1 ] && report_args+=(--markdown --header "_${HEADER}; load average start $LOAD_START, end ${LOAD_END}_")
python3 "$HELPERS/protocols_report.py" "${report_args[@]}"
exit
}
