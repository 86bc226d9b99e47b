#!/usr/bin/env bash
# Usage rollups: (1) the usage writer's CPU per request with the request log off, sampled at
# 1 % and kept whole, on SQLite (in-process) and PostgreSQL (server CPU beside it); (2) a month
# of hour rollups for 1,000 keys × 10 routes (the equivalent of 100 million requests) loaded
# into PostgreSQL, then the month summary and the 7-day series at 1 h, p50 / p99; (3) bytes on
# disk per million requests for the rollups and for the request log.
#
#   bash bench/usage-rollups.sh            (from the repository root; a few minutes)
#
# Knobs (environment): PG_URL (default postgres://postgres@127.0.0.1:5432), RECORDS (writer
# records per case, 200000), ROUNDS (query repetitions, 50), DAYS (days of hour rollups, 30).
set -euo pipefail

cd "$(dirname "$0")/.."

PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
RECORDS=${RECORDS:-200000}
ROUNDS=${ROUNDS:-50}
DAYS=${DAYS:-30}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
EXAMPLE=$TARGET_DIR/release/examples/usage_rollups
WORK=$(mktemp -d)
DATABASES=()

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'usage-rollups: %s\n' "$*" >&2; exit 1; }
command -v psql >/dev/null || die "psql is required"
for v in RECORDS ROUNDS DAYS; do
    case "${!v}" in '' | *[!0-9]* | 0) die "$v must be a positive integer" ;; esac
done

cleanup() {
    for db in "${DATABASES[@]}"; do
        psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

say "building the example (cargo build --release -p tollgate --example usage_rollups)"
cargo build --release -p tollgate --example usage_rollups

pg_db() {
    local name=tg_bench_rollups_$(date +%s)_$$_$RANDOM
    psql "$PG_URL/postgres" -qAt -c "CREATE DATABASE $name" >/dev/null
    DATABASES+=("$name")
    echo "$name"
}
# The PostgreSQL server's CPU ticks (postmaster, reaped and live children).
server_ticks() {
    local master total=0 t child
    master=$(pgrep -o -x postgres || true)
    [ -n "$master" ] || { echo 0; return; }
    total=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$master/stat")
    for child in $(pgrep -P "$master"); do
        t=$(awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

printf '\nUsage writer — %s records per case (1,000 keys × 10 routes), %s\n' "$RECORDS" "$(date -u '+%Y-%m-%d %H:%M:%SZ')"
printf '%-10s %-6s %16s %16s %18s %18s\n' backend log "CPU µs/request" "server µs/req" "log bytes/M req" "rollup bytes/M req"
for backend in sqlite postgres; do
    for policy in off 0.01 1; do
        if [ "$backend" = postgres ]; then
            db=$(pg_db); url="$PG_URL/$db"
        else
            url="sqlite://$WORK/w_$policy.db?mode=rwc"
        fi
        before=$(server_ticks)
        line=$("$EXAMPLE" write "$url" "$RECORDS" "$policy" | grep '^RESULT ')
        sleep 1
        after=$(server_ticks)
        cpu=$(echo "$line" | field cpu_us_per_record)
        n=$(echo "$line" | field records)
        if [ "$backend" = postgres ]; then
            server=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
            sizes=$(psql "$url" -qAt -F' ' -c "SELECT pg_total_relation_size('usage_records') + COALESCE((SELECT SUM(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'usage_records'::regclass), 0), pg_total_relation_size('usage_rollups')")
        else
            sizes=$(python3 - "$WORK/w_$policy.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
log = sum(v for k, v in rows.items() if 'usage_records' in k)
rollups = sum(v for k, v in rows.items() if 'usage_rollups' in k)
print(log, rollups)
PY
) || sizes="? ?"
            server=-
        fi
        read -r log_bytes rollup_bytes <<<"$sizes"
        per_m() { awk -v b="$1" -v n="$n" 'BEGIN { if (b == "?") print "?"; else printf "%.0f", b * 1e6 / n }'; }
        printf '%-10s %-6s %16s %16s %18s %18s\n' "$backend" "$policy" "$cpu" "$server" "$(per_m "$log_bytes")" "$(per_m "$rollup_bytes")"
    done
done

say "loading $DAYS days of hour rollups (1,000 keys × 10 routes, 2 status classes) into PostgreSQL"
db=$(pg_db); url="$PG_URL/$db"
"$EXAMPLE" write "$url" 1 off >/dev/null # migrates
started=$(date +%s)
psql "$url" -qAt <<SQL
SET synchronous_commit = off;
INSERT INTO usage_rollups (span, bucket, api_key_id, user_id, group_id, route_id, status_class,
    requests, errors, counted, overage, request_bytes, response_bytes, duration_ms,
    latency_le_10, latency_le_50)
SELECT 'hour', (extract(epoch FROM date_trunc('hour', now()))::bigint - h * 3600) * 1000,
    'key_' || lpad(k::text, 4, '0'), 'usr_' || lpad((k / 100)::text, 2, '0'), '',
    'rte_' || r, c, n, CASE WHEN c = '5xx' THEN n ELSE 0 END, n, 0, n * 100, n * 1000, n * 12,
    n / 2, n - n / 2
FROM generate_series(0, $DAYS * 24 - 1) h, generate_series(0, 999) k, generate_series(0, 9) r,
    (VALUES ('2xx', 13), ('5xx', 1)) AS s(c, n);
ANALYZE usage_rollups;
SQL
loaded=$(psql "$url" -qAt -c "SELECT COUNT(*), SUM(requests), pg_total_relation_size('usage_rollups') FROM usage_rollups")
IFS='|' read -r rows requests bytes <<<"$loaded"
printf '\nRollups loaded in %ss: %s hour rows, %s requests, %s MB (%s bytes per million requests)\n' \
    "$(( $(date +%s) - started ))" "$rows" "$requests" "$((bytes / 1048576))" "$(awk -v b="$bytes" -v n="$requests" 'BEGIN { printf "%.0f", b * 1e6 / n }')"
printf '%-18s %14s %10s %10s\n' query requests "p50 ms" "p99 ms"
"$EXAMPLE" query "$url" "$ROUNDS" | grep '^RESULT ' | while read -r line; do
    name=$(echo "$line" | sed -n 's/.*case="\([^"]*\)".*/\1/p')
    printf '%-18s %14s %10s %10s\n' "$name" "$(echo "$line" | field requests)" "$(echo "$line" | field p50_ms)" "$(echo "$line" | field p99_ms)"
done
