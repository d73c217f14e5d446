#!/usr/bin/env bash
# The scale-out harness of BENCHMARKS.md "PostgreSQL store": one daemon on SQLite, then 1, 2
# and 3 daemons on one PostgreSQL database, each a `waybill bench-dispatch` process (the
# engine's check rounds and delivery loop against its own sandbox simulator) measuring the
# same window. The first process of a run loads the subscriptions and receives every push;
# the others join. Every run starts from an empty database.
#
#   bench/postgres/scale.sh [server] [subscriptions] [seconds] [unchanged share] [daemons...]
#   bench/postgres/scale.sh postgres://postgres@127.0.0.1:5432 200000 30 0.9 1 2 3
#
# `unchanged share` is the share of parcels whose carrier never has anything new (their
# checks find no change and push nothing); 0 is the worst case, every check a change.
# Prints one line per run and the machine's CPU split: the daemons' own CPU (simulators
# included) and the rest (PostgreSQL, mostly). Needs target/release/waybill and the
# release sandbox plugin (cargo build --release -p waybill-host -p waybill-carrier-sandbox).
set -euo pipefail
cd "$(dirname "$0")/../.."
server="${1:-postgres://postgres@127.0.0.1:5432}"
subs="${2:-200000}"
secs="${3:-30}"
unchanged="${4:-0.9}"
shift $(( $# < 4 ? $# : 4 ))
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(1 2 3)
bin=target/release/waybill
export WAYBILL_PLUGIN_DIR=target/release
work="$(mktemp -d)"
db="waybill_scale_$$"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Busy and total jiffies of the whole machine.
machine_cpu() { awk '/^cpu /{ print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat; }

# run NAME DAEMONS DATABASE-ARGS...
run() {
    local name=$1 daemons=$2
    shift 2
    local gate="$work/$name-gate"
    rm -rf "$gate" && mkdir -p "$gate"
    pids=()
    for i in $(seq "$daemons"); do
        local n=0
        [[ $i -eq 1 ]] && n=$subs
        "$bin" bench-dispatch --subscriptions "$n" --seconds "$secs" --unchanged "$unchanged" \
            --gate "$gate" --json "$work/$name-$i.json" "$@" >"$work/$name-$i.log" 2>&1 &
        pids+=($!)
        # The first one loads; the others join once the subscriptions are there.
        while [[ $(find "$gate" -name 'ready-*' | wc -l) -lt $i ]]; do
            kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$name-$i.log"; exit 1; }
            sleep 0.2
        done
    done
    read -r busy0 total0 < <(machine_cpu)
    touch "$gate/go"
    # Each process writes its figures, then waits for `done`: the first one's receiver
    # takes the others' pushes until every window has closed.
    for i in $(seq "$daemons"); do
        while [[ ! -s "$work/$name-$i.json" ]]; do
            kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { cat "$work/$name-$i.log"; exit 1; }
            sleep 0.2
        done
    done
    read -r busy1 total1 < <(machine_cpu)
    touch "$gate/done"
    for pid in "${pids[@]}"; do wait "$pid"; done
    pids=()
    python3 - "$name" "$daemons" "$busy0" "$total0" "$busy1" "$total1" "$work/$name"-*.json <<'PY'
import json, sys
name, daemons, b0, t0, b1, t1, *files = sys.argv[1:]
runs = [json.load(open(f)) for f in files]
ncpu = __import__("os").cpu_count()
wall = max(r["seconds"] for r in runs)
machine = (float(b1) - float(b0)) / 100.0  # USER_HZ
own = sum(r["cpu_s"] for r in runs)
checks = sum(r["checks"] for r in runs)
p99 = max((r["latency_p99_ms"] or 0) for r in runs)
p50 = sorted((r["latency_p50_ms"] or 0) for r in runs)[len(runs) // 2]
per = " ".join(f"{r['checks_per_s']:.0f}" for r in runs)
rss = " ".join(f"{r['rss_mib']:.0f}" for r in runs)
print(f"{name:<12} daemons {daemons}  checks {checks:>7} = {checks / wall:>6.0f}/s  "
      f"per daemon {per}  "
      f"pushes queued {sum(r['pushes_queued'] for r in runs)} accepted {runs[0]['receiver_accepted']}  "
      f"change→push p50 {p50:.0f} ms p99 {p99:.0f} ms  "
      f"RSS {rss} MiB  "
      f"CPU: machine {machine / wall:.2f} of {ncpu} cores, daemons {own / wall:.2f}, rest {(machine - own) / wall:.2f}")
PY
}

run sqlite 1
for n in "${counts[@]}"; do
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
    WAYBILL_SECRET_KEY="$(printf '3c%.0s' {1..32})" run "postgres-$n" "$n" --database "$server/$db"
done
