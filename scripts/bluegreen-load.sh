#!/usr/bin/env bash
# A blue-green switch and switch back under wrk load (loopback only, bounded): `ficus serve` on a store serves blue,
# then `ficus bluegreen switch` moves it to green and `--back` returns it to blue while wrk keeps 16 keep-alive
# connections busy. Passes when wrk saw no non-2xx answer, no socket error of any kind, and answers from both slots.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/load-setup.sh
blue_port=$(free_port)
green_port=$(free_port)
proxy_port=$(free_port)
admin_port=$(free_port)
export FICUS_STORE="$work/ficus.sqlite"

DELAY_MS=2 BODY=blue python3 scripts/lib/keepalive_backend.py "$blue_port" &
pids+=($!)
DELAY_MS=2 BODY=green python3 scripts/lib/keepalive_backend.py "$green_port" &
pids+=($!)

"$bin" init >/dev/null
"$bin" upstream add orders "127.0.0.1:$blue_port" >/dev/null
"$bin" route add orders --prefix / --to orders >/dev/null
"$bin" bluegreen deploy orders --slot green "127.0.0.1:$green_port" >/dev/null
for _ in $(seq 1 50); do
    "$bin" bluegreen check orders --path / >/dev/null 2>&1 && break
    sleep 0.1
done

"$bin" serve --listen "127.0.0.1:$proxy_port" --admin "127.0.0.1:$admin_port" \
    --access-log off --log-level warning --drain-timeout 5 &
pids+=($!)
wait_admin "$admin_port"
test "$(curl -sf "http://127.0.0.1:$proxy_port/orders/1")" = "blue"

wrk -t1 -c16 -d6s --timeout 5s -s scripts/lib/count_bodies.lua "http://127.0.0.1:$proxy_port/orders/1" \
    >"$work/wrk.txt" 2>&1 &
load=$!
sleep 2
"$bin" bluegreen switch orders --reason "bluegreen-load: to green"
sleep 2
"$bin" bluegreen switch orders --back --reason "bluegreen-load: back to blue"
wait "$load"
cat "$work/wrk.txt"

failed=0
wrk_failures "$work/wrk.txt" "during the switches" || failed=1
bodies=$(grep "^bodies:" "$work/wrk.txt" || true)
blue=$(echo "$bodies" | grep -oE "blue=[0-9]+" | cut -d= -f2)
green=$(echo "$bodies" | grep -oE "green=[0-9]+" | cut -d= -f2)
if [ "${blue:-0}" -lt 10 ] || [ "${green:-0}" -lt 10 ]; then
    echo "FAIL: expected answers from both slots, saw blue=${blue:-0} green=${green:-0}"
    failed=1
fi
others=$(echo "$bodies" | tr ' ' '\n' | grep "=" | grep -vE "^(blue|green)=" || true)
if [ -n "$others" ]; then
    echo "FAIL: unexpected bodies: $others"
    failed=1
fi
completed=$(grep -o "[0-9]* requests in" "$work/wrk.txt" | grep -o "^[0-9]*")
if [ "$failed" -ne 0 ]; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "bluegreen-load: ${completed} requests (blue ${blue}, green ${green}), switch and back, no failed request"
echo "1 passed, 0 failed"
