#!/usr/bin/env bash
# Graceful shutdown under load (loopback only, bounded): wrk and a drain probe drive Ficus while it gets SIGTERM.
# Passes when Ficus exits 0, wrk saw no non-2xx answer and no timeout, and the probe (keep-alive clients that stop
# sending when they see `Connection: close`, as a load balancer does with a draining instance) saw every one of its
# requests answered 2xx. wrk's socket errors are printed but not judged: wrk reconnects after the listener has closed,
# and those attempts are refused by the kernel, not requests Ficus lost.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/load-setup.sh
backend_port=$(free_port)
proxy_port=$(free_port)
admin_port=$(free_port)

DELAY_MS=20 python3 scripts/lib/keepalive_backend.py "$backend_port" &
pids+=($!)
"$bin" serve --listen "127.0.0.1:$proxy_port" --admin "127.0.0.1:$admin_port" \
    --upstream "backend=127.0.0.1:$backend_port" --default backend \
    --access-log off --log-level warning --drain-timeout 10 &
ficus=$!
pids+=($ficus)

wait_admin "$admin_port"
# The backend is a Python process that may bind after Ficus is up: wait (10 s at most) until a request through the
# proxy succeeds, then fail loudly if it never does.
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$proxy_port/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$proxy_port/" >/dev/null || { echo "sigterm-load: no answer through the proxy" >&2; exit 1; }

wrk -t1 -c16 -d5s --timeout 5s "http://127.0.0.1:$proxy_port/" >"$work/wrk.txt" 2>&1 &
load=$!
python3 scripts/lib/drain_probe.py "$proxy_port" 16 8 >"$work/probe.json" &
probe=$!
sleep 2
kill -TERM "$ficus"
set +e
wait "$ficus"
exit_code=$?
wait "$load"
wait "$probe"
probe_status=$?
set -e
cat "$work/wrk.txt"
echo "probe: $(cat "$work/probe.json")"

failed=0
if [ "$exit_code" -ne 0 ]; then
    echo "FAIL: ficus exited with $exit_code after SIGTERM (expected 0)"
    failed=1
fi
if grep -q "Non-2xx" "$work/wrk.txt"; then
    echo "FAIL: non-2xx answers during shutdown"
    failed=1
fi
if errors=$(grep -o "timeout [0-9]*" "$work/wrk.txt"); then
    if [ "$errors" != "timeout 0" ]; then
        echo "FAIL: wrk requests timed out during shutdown ($errors)"
        failed=1
    fi
fi
if [ "$probe_status" -ne 0 ]; then
    echo "FAIL: the drain probe saw failed requests"
    failed=1
fi
completed=$(grep -o "[0-9]* requests in" "$work/wrk.txt" | grep -o "^[0-9]*")
if [ "${completed:-0}" -lt 100 ]; then
    echo "FAIL: only ${completed:-0} wrk requests completed: the load did not run"
    failed=1
fi
if [ "$failed" -ne 0 ]; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "sigterm-load: ${completed} requests, ficus exited 0, no failed request"
echo "1 passed, 0 failed"
