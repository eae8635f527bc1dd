#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests of the PostgreSQL store (docs/FLEET.md, "Testing").
#
#   postgres-test-cluster.sh start DIR [PORT]   initdb in DIR (trust on loopback only), start it on 127.0.0.1:PORT
#                                                (a free port when omitted); prints the URL for FICUS_TEST_POSTGRES
#   postgres-test-cluster.sh pause DIR          stop the server, keep the data (an outage in a test)
#   postgres-test-cluster.sh resume DIR         start it again on the same port
#   postgres-test-cluster.sh stop DIR           stop the server and remove DIR
#
# For `start`, FICUS_PG_TLS_CERT and FICUS_PG_TLS_KEY (PEM files) turn TLS on with that certificate, and
# FICUS_PG_PASSWORD makes TCP connections authenticate with that password (SCRAM) instead of trust.
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user, which then owns DIR.
set -euo pipefail

bin=""
for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/pg_ctl" ] && bin="$candidate"
done
if [ -z "$bin" ]; then
    echo "postgres-test-cluster: no PostgreSQL found under /usr/lib/postgresql (apt-get install postgresql)" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_server() {
    local dir=$1 port fd
    port=$(cat "$dir/port")
    # The server must inherit no descriptor but 0-2: Foundation's Process learns that its child exited from a socket
    # the child inherits, so a test that runs this script would wait for as long as the server held a copy.
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ]; then
            eval "exec $fd>&-" 2>/dev/null || true
        fi
    done
    # -k DIR: the Unix socket lives in the cluster's own directory, not /var/run/postgresql.
    # track_commit_timestamp: the fleet benchmark measures from the commit itself (pg_xact_commit_timestamp).
    local options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    options="$options -c track_commit_timestamp=on"
    if [ -f "$dir/server.crt" ]; then
        options="$options -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "$options" start >/dev/null
}

command=${1:-}
dir=${2:-}
if [ -z "$command" ] || [ -z "$dir" ]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi

case "$command" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir"
    fi
    echo "${3:-$(free_port)}" >"$dir/port"
    auth=(-A trust)
    if [ -n "${FICUS_PG_PASSWORD:-}" ]; then
        printf '%s\n' "$FICUS_PG_PASSWORD" >"$dir/password"
        auth=(--auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/password")
    fi
    if [ -n "${FICUS_PG_TLS_CERT:-}" ]; then
        cp "$FICUS_PG_TLS_CERT" "$dir/server.crt"
        cp "$FICUS_PG_TLS_KEY" "$dir/server.key"
        chmod 0600 "$dir/server.key"
    fi
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir/data" "${auth[@]}" -U postgres --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    rm -f "$dir/password"
    start_server "$dir"
    echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres?sslmode=disable"
    ;;
pause)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
resume)
    start_server "$dir"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac
