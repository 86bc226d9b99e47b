#!/usr/bin/env bash
# Webhook latency benchmark: time from the committing admin response to the receiver getting
# the event, p50/p99 over 1,000 events (target p50 < 50 ms).
#
#   bash bench/webhook-latency.sh            (from the repository root)
#
# Knobs (environment): BENCH_BACKEND (sqlite | postgres, default sqlite), PG_URL (server URL,
# default postgres://postgres@127.0.0.1:5432), EVENTS (1000). See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."

BACKEND=${BENCH_BACKEND:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
export EVENTS=${EVENTS:-1000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release/tollgate
STAMP=$(date +%Y%m%d_%H%M%S)
DB=tg_bench_${STAMP}_$$
WORK=$(mktemp -d)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'webhook-latency: %s\n' "$*" >&2; exit 1; }

for tool in python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is required but not installed"
done

say "building the release binary (cargo build --release -p tollgate)"
cargo build --release -p tollgate

if [ "$BACKEND" = postgres ]; then
    command -v psql >/dev/null || die "psql is required for BENCH_BACKEND=postgres"
    psql "$PG_URL/postgres" -qAt -c "CREATE DATABASE $DB" >/dev/null
    DB_URL=$PG_URL/$DB
else
    DB_URL="sqlite://$WORK/bench.db?mode=rwc"
fi

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ "$BACKEND" = postgres ]; then
        psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

export TOLLGATE_DATABASE_URL=$DB_URL
export TOLLGATE_WEBHOOK_ALLOW_PRIVATE=true
export TOLLGATE_LOG_LEVEL=warn
export TOLLGATE_LOG_FORMAT=json

say "creating an admin with a key"
KEY=$(printf 'a long benchmark password\n' |
    "$BIN" admin create --email bench@example.com --password-stdin --with-key | tail -n 1)
export KEY

ADMIN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROXY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "starting tollgate serve ($BACKEND) on 127.0.0.1:$ADMIN_PORT"
"$BIN" serve --admin-addr "127.0.0.1:$ADMIN_PORT" --proxy-addr "127.0.0.1:$PROXY_PORT" \
    2>"$WORK/server.log" &
SERVER_PID=$!
export ADMIN=http://127.0.0.1:$ADMIN_PORT
for _ in $(seq 1 100); do
    curl -fs "$ADMIN/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$ADMIN/health" >/dev/null || die "the server did not start: $(cat "$WORK/server.log")"

say "measuring $EVENTS events"
python3 bench/webhook_latency.py
