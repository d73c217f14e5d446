#!/usr/bin/env bash
# EXPLAIN ANALYZE of the due-claim at scale: loads N active subscriptions (default
# 1,000,000, due over a week) into a fresh PostgreSQL database that `waybill` migrates,
# then shows the plan of the claim statement PgStore::claim_due runs, with a batch of 500
# due now. The point: the claim reads O(batch) rows (an index scan on subscriptions_due
# that stops at the LIMIT), not O(active).
#
#   bench/postgres/claim_explain.sh [postgres://postgres@127.0.0.1:5432] [N]
#
# Needs psql and a built `waybill` (target/release or target/debug).
set -euo pipefail
cd "$(dirname "$0")/../.."
server="${1:-postgres://postgres@127.0.0.1:5432}"
n="${2:-1000000}"
db="waybill_explain_$$"
bin=target/release/waybill
[[ -x $bin ]] || bin=target/debug/waybill
work="$(mktemp -d)"
trap 'psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
psql "$server/postgres" -qc "CREATE DATABASE $db"
WAYBILL_SECRET_KEY="$(printf '5a%.0s' {1..32})" \
    "$bin" tenant add explain --database "$server/$db" --data-dir "$work" >/dev/null
now=1733040000000 # 2024-12-01T08:00:00Z in Unix ms
psql "$server/$db" -q <<SQL
INSERT INTO subscriptions (tenant_id, company, number, callback_url, next_check_at,
                           created_at, updated_at)
SELECT 1, 'sandbox', 'SB' || lpad(g::text, 9, '0'), 'http://127.0.0.1:9/cb',
       $now - 3600000 + (g::bigint * 604800000 / $n), $now - 86400000, $now - 86400000
FROM generate_series(1, $n) g;
ANALYZE subscriptions;
SQL
echo "active: $(psql "$server/$db" -tAc "SELECT count(*) FROM subscriptions WHERE status = 'polling'")"
echo "due now: $(psql "$server/$db" -tAc "SELECT count(*) FROM subscriptions WHERE next_check_at <= $now")"
psql "$server/$db" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
UPDATE subscriptions s SET lease_owner = 'bench', lease_until = $now + 600000 FROM (
  SELECT id AS claimed FROM subscriptions WHERE status = 'polling'
  AND next_check_at <= $now AND (lease_until IS NULL OR lease_until <= $now)
  ORDER BY next_check_at LIMIT 500 FOR UPDATE SKIP LOCKED) c
WHERE s.id = c.claimed AND s.status = 'polling'
AND (s.lease_until IS NULL OR s.lease_until <= $now) RETURNING s.id"
