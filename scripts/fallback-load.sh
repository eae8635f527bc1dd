#!/usr/bin/env bash
# The new service dies under wrk load with fallback on (loopback only, bounded; docs/PROXY.md, Fallback to legacy):
# `ficus serve` sends a flipped route to orders-v2 while wrk keeps 16 keep-alive connections busy with GETs; after
# 2 s orders-v2 is killed (SIGKILL: its connections reset, later connects are refused). Passes when wrk saw no non-2xx
# answer and no socket error, answers came from both sides, and the proxy counted the fallbacks.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/load-setup.sh
legacy_port=$(free_port)
new_port=$(free_port)
proxy_port=$(free_port)
admin_port=$(free_port)
export FICUS_STORE="$work/ficus.sqlite"

DELAY_MS=2 BODY=legacy python3 scripts/lib/keepalive_backend.py "$legacy_port" &
pids+=($!)
DELAY_MS=2 BODY=new python3 scripts/lib/keepalive_backend.py "$new_port" &
new_pid=$!
pids+=($new_pid)

"$bin" init >/dev/null
"$bin" upstream add legacy "127.0.0.1:$legacy_port" >/dev/null
"$bin" upstream add orders-v2 "127.0.0.1:$new_port" >/dev/null
"$bin" route add orders --prefix / --to legacy >/dev/null
"$bin" flip orders --to orders-v2 --reason "fallback-load: the new service serves" >/dev/null

"$bin" serve --listen "127.0.0.1:$proxy_port" --admin "127.0.0.1:$admin_port" \
    --access-log off --log-level error --drain-timeout 5 &
pids+=($!)
wait_admin "$admin_port"
for _ in $(seq 1 50); do
    [ "$(curl -s "http://127.0.0.1:$proxy_port/orders/1")" = "new" ] && break
    sleep 0.1
done

wrk -t1 -c16 -d6s --timeout 5s -s scripts/lib/count_bodies.lua "http://127.0.0.1:$proxy_port/orders/1" \
    >"$work/wrk.txt" 2>&1 &
load=$!
sleep 2
kill -9 "$new_pid"
wait "$load"
cat "$work/wrk.txt"
metrics=$(curl -s "http://127.0.0.1:$admin_port/metrics")
fallbacks=$(echo "$metrics" | grep '^ficus_fallbacks_total{' || true)
echo "$fallbacks"

failed=0
wrk_failures "$work/wrk.txt" "after the new service died" || failed=1
bodies=$(grep "^bodies:" "$work/wrk.txt" || true)
new=$(echo "$bodies" | grep -oE "new=[0-9]+" | cut -d= -f2)
legacy=$(echo "$bodies" | grep -oE "legacy=[0-9]+" | cut -d= -f2)
if [ "${new:-0}" -lt 10 ] || [ "${legacy:-0}" -lt 10 ]; then
    echo "FAIL: expected answers from both sides, saw new=${new:-0} legacy=${legacy:-0}"
    failed=1
fi
if [ -z "$fallbacks" ]; then
    echo "FAIL: no fallback counted in ficus_fallbacks_total"
    failed=1
fi
completed=$(grep -o "[0-9]* requests in" "$work/wrk.txt" | grep -o "^[0-9]*")
if [ "$failed" -ne 0 ]; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "fallback-load: ${completed} GETs (new ${new}, legacy ${legacy}), the new service killed mid-run, no failed request"
echo "1 passed, 0 failed"
