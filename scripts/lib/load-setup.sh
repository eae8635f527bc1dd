# Shared set-up of the scripted load checks (sourced, not run): wrk installed, the debug `ficus` built, a work
# directory and every process started removed on exit, free loopback ports, and a wait for the admin listener.
#
#   source scripts/lib/load-setup.sh    # then: $bin, $work, pids+=(PID), free_port, wait_admin PORT

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
swift build --product ficus >/dev/null
bin="$(swift build --show-bin-path)/ficus"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # A proxy writes its last metric windows while it stops: wait for it before its store goes.
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Waits up to 10 s for `ficus serve`'s /healthz on the admin port $1.
wait_admin() {
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# Prints a FAIL line for each kind of failed request in wrk's output $1 (non-2xx answers, socket errors), the words
# $2 saying when; returns 1 if there was any.
wrk_failures() {
    local found=0
    if grep -q "Non-2xx" "$1"; then
        echo "FAIL: non-2xx answers $2"
        found=1
    fi
    if grep -q "Socket errors" "$1"; then
        echo "FAIL: socket errors (connect, read, write or timeout) $2"
        found=1
    fi
    return "$found"
}
