#!/usr/bin/env bash
# Usage-log write cost: CPU per stored record when the proxy's usage writer appends synthetic
# records (1,000 keys over 10 users, like bench/proxy.sh) in batches, for the current schema
# and, as the baseline in the same run, with the (api_key_id, created_at) index that
# migration m0006 removed. CPU is the writing process's (SQLite runs inside it); on PostgreSQL
# the local server's CPU is printed beside it.
#
#   bash bench/usage-writer.sh            (from the repository root)
#
# Knobs (environment): BENCH_BACKEND (sqlite | postgres, default sqlite), PG_URL (server URL,
# default postgres://postgres@127.0.0.1:5432), RECORDS (300000). See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."

BACKEND=${BENCH_BACKEND:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
RECORDS=${RECORDS:-300000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
EXAMPLE=$TARGET_DIR/release/examples/usage_append
WORK=$(mktemp -d)
DATABASES=()

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'usage-writer: %s\n' "$*" >&2; exit 1; }

case "$BACKEND" in sqlite | postgres) ;; *) die "BENCH_BACKEND must be sqlite or postgres" ;; esac
case "$RECORDS" in '' | *[!0-9]* | 0) die "RECORDS must be a positive integer" ;; esac
if [ "$BACKEND" = postgres ]; then
    command -v psql >/dev/null || die "psql is required for BENCH_BACKEND=postgres"
fi

cleanup() {
    for db in "${DATABASES[@]}"; do
        psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

say "building the example (cargo build --release -p tollgate --example usage_append)"
cargo build --release -p tollgate --example usage_append

fresh_url() { # a new, empty database
    local name=tg_bench_usage_$(date +%s)_$$_$RANDOM
    if [ "$BACKEND" = postgres ]; then
        psql "$PG_URL/postgres" -qAt -c "CREATE DATABASE $name" >/dev/null
        DATABASES+=("$name")
        echo "$PG_URL/$name"
    else
        echo "sqlite://$WORK/$name.db?mode=rwc"
    fi
}

# PostgreSQL's CPU (local server only): the postmaster's own and reaped children's time, plus
# its live children's (a connection's backend is reaped when the example exits).
server_ticks() {
    [ "$BACKEND" = postgres ] || { echo 0; return; }
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

printf '\nUsage writer — %s records per case, %s, %s\n' "$RECORDS" "$BACKEND" "$(date -u '+%Y-%m-%d %H:%M:%SZ')"
printf '%-38s %10s %10s %14s %14s\n' schema "per batch" "wall s" "CPU µs/record" "server µs/rec"
for case in "with-key-index 1500" "with-key-index 7500" "current 1500" "current 7500" "current 15000"; do
    set -- $case
    flag=$([ "$1" = with-key-index ] && echo with-key-index || true)
    label=$([ "$1" = with-key-index ] && echo "baseline: + key index (before m0006)" || echo "current (m0006)")
    url=$(fresh_url)
    before=$(server_ticks)
    line=$("$EXAMPLE" "$url" "$2" "$RECORDS" $flag | grep '^RESULT ')
    sleep 1 # the backend exits and is reaped
    server=$(awk -v d="$(( $(server_ticks) - before ))" -v hz="$CLK_TCK" -v n="$RECORDS" \
        'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
    [ "$BACKEND" = postgres ] || server=-
    wall=$(sed -E 's/.* wall_s=([0-9.]+).*/\1/' <<<"$line")
    cpu=$(sed -E 's/.* cpu_us_per_record=([0-9.]+).*/\1/' <<<"$line")
    printf '%-38s %10s %10s %14s %14s\n' "$label" "$2" "$wall" "$cpu" "$server"
done
