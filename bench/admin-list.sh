#!/usr/bin/env bash
# Admin API list benchmark: GET /api/users over 100,000 users on PostgreSQL, measured with wrk,
# next to a pgbench baseline of the SQL the server runs for the same page.
#
#   bash bench/admin-list.sh            (from the repository root)
#
# Knobs (environment): PG_URL (server URL, default postgres://postgres@127.0.0.1:5432),
# BENCH_USERS (100000), BENCH_DURATION (seconds, 20), BENCH_THREADS (2), BENCH_CONNECTIONS (8),
# TARGET_P99_MS (20). Raw outputs go to bench/out/admin-list-<stamp>/. See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."

PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
USERS=${BENCH_USERS:-100000}
DURATION=${BENCH_DURATION:-20}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
TARGET_P99_MS=${TARGET_P99_MS:-20}

STAMP=$(date +%Y%m%d_%H%M%S)
DB=tg_bench_${STAMP}_$$
DB_URL=$PG_URL/$DB
OUT=bench/out/admin-list-$STAMP
BIN=target/release/tollgate

LIST_PATH='/api/users?page%5Bsize%5D=100&sort=-created_at'
FILTERED_PATH='/api/users?filter%5Bstatus%5D=suspended&page%5Bsize%5D=100&sort=-created_at'

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'admin-list: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 1. Prerequisites: release binary, wrk, psql/pgbench, a reachable PostgreSQL.
# ---------------------------------------------------------------------------------------------
say "building the release binary (cargo build --release -p tollgate)"
cargo build --release -p tollgate

if ! command -v wrk >/dev/null || ! command -v jq >/dev/null; then
    say "installing wrk and jq"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq wrk jq
fi
for tool in wrk psql pgbench curl jq; do
    command -v "$tool" >/dev/null || die "$tool is required but not installed"
done

psql_admin() { psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_bench() { psql "$DB_URL" -v ON_ERROR_STOP=1 -qAt "$@"; }

psql_admin -c 'SELECT 1' >/dev/null 2>&1 \
    || die "PostgreSQL is not reachable at $PG_URL (set PG_URL=postgres://user@host:port)"

mkdir -p "$OUT"

# ---------------------------------------------------------------------------------------------
# Cleanup: always stop the server and drop the bench database.
# ---------------------------------------------------------------------------------------------
SERVER_PID=""
DB_CREATED=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$DB_CREATED" ]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 \
            || printf 'admin-list: could not drop database %s\n' "$DB" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 2. A fresh database and the server on free ports.
# ---------------------------------------------------------------------------------------------
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! ss -Hltn "sport = :$port" | grep -q .; then
            echo "$port"
            return
        fi
    done
}

say "creating database $DB"
psql_admin -c "CREATE DATABASE \"$DB\"" >/dev/null
DB_CREATED=1

ADMIN_PORT=$(free_port)
PROXY_PORT=$(free_port)
while [ "$PROXY_PORT" = "$ADMIN_PORT" ]; do PROXY_PORT=$(free_port); done
BASE=http://127.0.0.1:$ADMIN_PORT

export TOLLGATE_DATABASE_URL=$DB_URL
export TOLLGATE_LOG_LEVEL=warn

say "starting tollgate serve (admin 127.0.0.1:$ADMIN_PORT)"
"$BIN" serve --admin-addr "127.0.0.1:$ADMIN_PORT" --proxy-addr "127.0.0.1:$PROXY_PORT" \
    >"$OUT/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "$BASE/health" 2>/dev/null; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; die "the server exited"; }
    sleep 0.5
done
curl -fsS -o /dev/null "$BASE/health" || die "the server did not answer /health within 60 s"

# ---------------------------------------------------------------------------------------------
# 3. An admin and its key.
# ---------------------------------------------------------------------------------------------
say "creating the bench admin"
KEY=$(echo 'bench admin password 1234' \
    | "$BIN" admin create --email bench@example.com --password-stdin --with-key | tail -n 1)
case "$KEY" in tg_admin_*) ;; *) die "no admin key printed (got: $KEY)" ;; esac

# ---------------------------------------------------------------------------------------------
# 4. 100,000 users in one statement. Ids are real ULIDs: the 10-character time part encodes
#    created_at (so ids sort like created_at), the 16-character random part comes from md5(n).
#    created_at rises evenly over the last 30 days; 5 % suspended, 3 % pending, the rest active.
# ---------------------------------------------------------------------------------------------
say "loading $USERS users"
psql_bench -v n="$USERS" >/dev/null <<'SQL'
WITH params AS (
    SELECT (extract(epoch FROM now()) * 1000)::bigint - 30::bigint * 86400000 AS start_ms,
           30::bigint * 86400000 / :n AS step_ms,
           '0123456789ABCDEFGHJKMNPQRSTVWXYZ'::text AS b32,
           (SELECT id FROM plans LIMIT 1) AS plan_id
), generated AS (
    SELECT g AS n, p.start_ms + (g - 1) * p.step_ms AS ts, p.b32, p.plan_id
    FROM params p, generate_series(1, :n) AS g
)
INSERT INTO users (id, email, name, status, role, password_hash, last_login_at, plan_id,
                   created_at, updated_at, deleted_at)
SELECT 'usr_'
       || (SELECT string_agg(substr(b32, ((ts >> (5 * (9 - k))) & 31)::int + 1, 1), '' ORDER BY k)
           FROM generate_series(0, 9) AS k)
       || (SELECT string_agg(substr(b32, (get_byte(decode(md5(n::text), 'hex'), k) & 31) + 1, 1),
                             '' ORDER BY k)
           FROM generate_series(0, 15) AS k),
       'user' || n || '@bench.example.com',
       'Bench User ' || n,
       CASE WHEN n % 100 < 5 THEN 'suspended' WHEN n % 100 < 8 THEN 'pending' ELSE 'active' END,
       'user', NULL, NULL, plan_id, ts, ts, NULL
FROM generated;
SQL
# Steady state: what autovacuum leaves behind on a live table (visibility map set, statistics
# fresh), so index-only scans work as they will in production.
psql_bench -c "VACUUM ANALYZE users" 
psql_bench -c "SELECT status, count(*) FROM users GROUP BY status ORDER BY status" \
    >"$OUT/users-by-status.txt"
psql_bench -c "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY 1" \
    >"$OUT/users-indexes.txt"

# ---------------------------------------------------------------------------------------------
# 5. Sanity checks with curl: 200 and 100 items per page.
# ---------------------------------------------------------------------------------------------
check_page() {
    local name=$1 path=$2 code items
    code=$(curl -sS -o "$OUT/$name.json" -w '%{http_code}' \
        -H "Authorization: Bearer $KEY" -H 'Accept: application/vnd.api+json' "$BASE$path")
    [ "$code" = 200 ] || { cat "$OUT/$name.json" >&2; die "$path answered $code"; }
    items=$(jq '.data | length' "$OUT/$name.json")
    [ "$items" = 100 ] || die "$path returned $items items, expected 100"
    say "$path → 200, $items items, total $(jq '.meta.total // "?"' "$OUT/$name.json")"
}
check_page list "$LIST_PATH"
check_page filtered "$FILTERED_PATH"

# ---------------------------------------------------------------------------------------------
# 6. The SQL the server runs per request (as sea-orm issues it, bound parameters included):
#    the admin-key lookup, the key owner's row, COUNT(*) over the filtered set, the page.
# ---------------------------------------------------------------------------------------------
DIGEST=$(psql_bench -c "SELECT key_digest FROM api_keys WHERE kind = 'admin' LIMIT 1")
OWNER_ID=$(psql_bench -c "SELECT user_id FROM api_keys WHERE kind = 'admin' LIMIT 1")
COLUMNS='"users"."id", "users"."email", "users"."name", "users"."status", "users"."role"'
COLUMNS+=', "users"."password_hash", "users"."last_login_at", "users"."plan_id"'
COLUMNS+=', "users"."created_at", "users"."updated_at", "users"."deleted_at"'
NOW_MS=$(( $(date +%s) * 1000 ))

write_baseline() { # file, extra WHERE clause for the users queries
    local file=$1 where=$2
    cat >"$file" <<SQL
SELECT * FROM "api_keys" WHERE "deleted_at" IS NULL AND "revoked_at" IS NULL AND "kind" = :kind AND ("key_digest" = :digest OR ("previous_key_digest" = :digest AND "previous_key_expires_at" > :now_ms)) LIMIT 1;
SELECT $COLUMNS FROM "users" WHERE "deleted_at" IS NULL AND "id" = :owner LIMIT 1;
SELECT COUNT(*) AS num_items FROM (SELECT $COLUMNS FROM "users" WHERE "deleted_at" IS NULL$where) AS "sub_query";
SELECT $COLUMNS FROM "users" WHERE "deleted_at" IS NULL$where ORDER BY "created_at" DESC, "id" DESC LIMIT :limit OFFSET :offset;
SQL
}
write_baseline "$OUT/baseline-list.sql" ''
write_baseline "$OUT/baseline-filtered.sql" ' AND "status" = :status'

# ---------------------------------------------------------------------------------------------
# Runners and parsers.
# ---------------------------------------------------------------------------------------------
to_ms() { # wrk duration (123.45us, 1.23ms, 1.02s, 1.5m) → milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n }'
}

run_wrk() { # name, connections, threads, path
    local name=$1 conns=$2 threads=$3 path=$4 file="$OUT/wrk-$1.txt"
    say "wrk $name: -t$threads -c$conns -d${DURATION}s $path"
    wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency \
        -H "Authorization: Bearer $KEY" -H 'Accept: application/vnd.api+json' \
        "$BASE$path" >"$file"
    if grep -q 'Non-2xx\|Socket errors' "$file"; then
        say "warning: $name saw errors: $(grep 'Non-2xx\|Socket errors' "$file" | tr -s ' ')"
    fi
}
wrk_rps() { awk '/^Requests\/sec:/ { printf "%.1f", $2 }' "$OUT/wrk-$1.txt"; }
wrk_pct() { to_ms "$(awk -v p="$2%" '$1 == p { print $2 }' "$OUT/wrk-$1.txt")"; }

run_pgbench() { # name, clients, threads, script
    local name=$1 clients=$2 threads=$3 script=$4
    say "pgbench $name: -c$clients -j$threads -T$DURATION"
    rm -f "$OUT/pgbench-$name.log"*
    (cd "$OUT" && pgbench -n -M prepared -f "$(basename "$script")" -c "$clients" -j "$threads" \
        -T "$DURATION" -r -l --log-prefix="pgbench-$name.log" \
        -D kind=admin -D digest="$DIGEST" -D now_ms="$NOW_MS" -D owner="$OWNER_ID" -D status=suspended \
        -D limit=100 -D offset=0 "$DB_URL") >"$OUT/pgbench-$name.txt" 2>&1 \
        || { cat "$OUT/pgbench-$name.txt" >&2; die "pgbench $name failed"; }
    # Per-transaction latencies (µs, third column) → sorted, for percentiles.
    cat "$OUT/pgbench-$name.log"* | awk '{ print $3 }' | sort -n >"$OUT/pgbench-$name.latencies"
}
pg_tps() { awk '/^tps = .*without initial connection time/ { printf "%.1f", $3 }' "$OUT/pgbench-$1.txt"; }
pg_pct() { # nearest-rank percentile of the per-transaction latencies, in ms
    awk -v p="$2" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        i = int((p / 100) * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
        printf "%.2f", v[i] / 1000 }' "$OUT/pgbench-$1.latencies"
}
pg_stmt() { # average latency (ms) of the n-th statement of the script (pgbench -r truncates text)
    awk -v n="$2" '/^statement latencies/ { on = 1; next }
        on && $1 ~ /^[0-9.]+$/ && ++i == n { printf "%.2f", $1; exit }' "$OUT/pgbench-$1.txt"
}

# ---------------------------------------------------------------------------------------------
# 5/6. Measure: a short warm-up, then each HTTP case followed by its SQL baseline.
# ---------------------------------------------------------------------------------------------
wrk -t1 -c2 -d3s -H "Authorization: Bearer $KEY" -H 'Accept: application/vnd.api+json' \
    "$BASE$LIST_PATH" >"$OUT/wrk-warmup.txt"

run_wrk list "$CONNECTIONS" "$THREADS" "$LIST_PATH"
run_pgbench list "$CONNECTIONS" "$THREADS" "$OUT/baseline-list.sql"
run_wrk filtered "$CONNECTIONS" "$THREADS" "$FILTERED_PATH"
run_pgbench filtered "$CONNECTIONS" "$THREADS" "$OUT/baseline-filtered.sql"
run_wrk list-c1 1 1 "$LIST_PATH"
run_pgbench list-c1 1 1 "$OUT/baseline-list.sql"

# Query plans of the two page queries and counts, for the record.
{
    for where in '' " AND status = 'suspended'"; do
        echo "---- count, where deleted_at IS NULL$where"
        psql_bench -c "EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM (SELECT * FROM users WHERE deleted_at IS NULL$where) s"
        echo "---- page, where deleted_at IS NULL$where"
        psql_bench -c "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM users WHERE deleted_at IS NULL$where ORDER BY created_at DESC, id DESC LIMIT 100"
    done
} >"$OUT/explain.txt"

# ---------------------------------------------------------------------------------------------
# 7. The summary.
# ---------------------------------------------------------------------------------------------
verdict() { awk -v p="$1" -v t="$TARGET_P99_MS" 'BEGIN { print ((p + 0 < t + 0) ? "PASS" : "FAIL") }'; }
row() { printf '%-44s %10s %9s %9s  %s\n' "$@"; }

{
    echo
    echo "Tollgate admin list benchmark — $USERS users, PostgreSQL, ${DURATION}s per case"
    echo "$(date -u '+%Y-%m-%d %H:%M:%SZ')  $(nproc) cores  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    row "HTTP (wrk, full request)" "req/s" "p50 ms" "p99 ms" "p99 < ${TARGET_P99_MS} ms"
    for c in "list:GET /api/users sort=-created_at  (c$CONNECTIONS)" \
             "filtered:  + filter[status]=suspended  (c$CONNECTIONS)" \
             "list-c1:GET /api/users sort=-created_at  (c1)"; do
        name=${c%%:*}; label=${c#*:}
        p99=$(wrk_pct "$name" 99)
        row "$label" "$(wrk_rps "$name")" "$(wrk_pct "$name" 50)" "$p99" "$(verdict "$p99")"
    done
    echo
    row "BASELINE (pgbench, same SQL, no HTTP)" "tx/s" "p50 ms" "p99 ms" ""
    for c in "list:auth x2 + count + page  (c$CONNECTIONS)" \
             "filtered:auth x2 + count + page, suspended  (c$CONNECTIONS)" \
             "list-c1:auth x2 + count + page  (c1)"; do
        name=${c%%:*}; label=${c#*:}
        row "$label" "$(pg_tps "$name")" "$(pg_pct "$name" 50)" "$(pg_pct "$name" 99)" ""
    done
    echo
    echo "per-statement average latency in the baseline (ms):"
    printf '  %-12s %10s %10s %10s %10s\n' case api_key owner count page
    for name in list filtered list-c1; do
        printf '  %-12s %10s %10s %10s %10s\n' "$name" \
            "$(pg_stmt "$name" 1)" "$(pg_stmt "$name" 2)" "$(pg_stmt "$name" 3)" "$(pg_stmt "$name" 4)"
    done
    echo
    echo "target: p99 < ${TARGET_P99_MS} ms"
    echo "raw outputs: $OUT/"
} | tee "$OUT/summary.txt"
