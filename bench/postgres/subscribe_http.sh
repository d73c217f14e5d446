#!/usr/bin/env bash
# Subscribe over HTTP (kuaidi100 `POST /poll`, scattered numbers) against one daemon on
# SQLite and one on PostgreSQL, one after the other, same wrk settings: the side-by-side
# figure of BENCHMARKS.md "PostgreSQL store".
#
#   bench/postgres/subscribe_http.sh [postgres://postgres@127.0.0.1:5432] [connections] [seconds]
#
# Needs wrk and target/release/waybill.
set -euo pipefail
cd "$(dirname "$0")/../.."
server="${1:-postgres://postgres@127.0.0.1:5432}"
conns="${2:-256}"
secs="${3:-10}"
bin=target/release/waybill
db="waybill_subscribe_$$"
work="$(mktemp -d)"
export WAYBILL_SECRET_KEY="$(printf '5a%.0s' {1..32})"
cleanup() {
    [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null || true
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
psql "$server/postgres" -qc "CREATE DATABASE $db"
# The per-key subscribe limit (kuaidi100-like defaults) would answer most requests 502.
printf '[api.rate_limit.subscribe]\nper_second = 0\n' > "$work/config.toml"
run() {
    local name=$1 database=$2 port=$3
    mkdir -p "$work/$name"
    "$bin" tenant add bench --key BENCHKEY --data-dir "$work/$name" --database "$database" >/dev/null
    "$bin" serve --config "$work/config.toml" --data-dir "$work/$name" --database "$database" \
        --bind "127.0.0.1:$port" \
        2>"$work/$name.log" &
    pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    echo "== $name"
    wrk -t2 -c"$conns" -d"${secs}s" -s bench/wrk/poll.lua "http://127.0.0.1:$port" -- BENCHKEY "W$name" random \
        | grep -E "Requests/sec|Latency|returnCode"
    kill "$pid"; wait "$pid" || true; pid=
}
run sqlite "sqlite:$work/sqlite/waybill.db" 18091
run postgres "$server/$db" 18092
