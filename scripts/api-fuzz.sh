#!/usr/bin/env bash
# Property-based API testing: schemathesis generates requests from the served OpenAPI document
# (/docs/openapi.json) and checks that no answer is a server error and every answer matches the
# documented schema. Bounded in examples and time, so CI stays fast.
#
#   bash scripts/api-fuzz.sh          (from the repository root; uses target/debug/tollgate)
#
# Knobs: FUZZ_MAX_EXAMPLES (10 per operation), FUZZ_TIMEOUT (seconds, 600), FUZZ_BIN (a built
# tollgate binary; default: build the debug one).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-10}
TIMEOUT=${FUZZ_TIMEOUT:-600}
VENV=$ROOT/target/schemathesis-venv
WORK=$(mktemp -d)
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '==> %s\n' "$*" >&2; }

if [ -z "${FUZZ_BIN:-}" ]; then
    cargo build -q -p tollgate
    FUZZ_BIN=$ROOT/target/debug/tollgate
fi

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ADMIN_PORT=$(free_port)
PROXY_PORT=$(free_port)
export TOLLGATE_DATABASE_URL="sqlite://$WORK/fuzz.db?mode=rwc"
export TOLLGATE_ADMIN_ADDR=127.0.0.1:$ADMIN_PORT
export TOLLGATE_PROXY_ADDR=127.0.0.1:$PROXY_PORT
export TOLLGATE_LOG_LEVEL=warn
export TOLLGATE_WEBHOOK_ALLOW_PRIVATE=false

"$FUZZ_BIN" migrate >/dev/null
KEY=$(printf 'a long fuzzing password\n' \
    | "$FUZZ_BIN" admin create --email fuzz@example.com --password-stdin --with-key | tail -1)
case "$KEY" in tg_admin_*) ;; *) echo "api-fuzz: no admin key from 'tollgate admin create'" >&2; exit 1 ;; esac

"$FUZZ_BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.2
done

say "schemathesis: $MAX_EXAMPLES examples per operation, checks not_a_server_error and response_schema_conformance"
# The admin key's own revoke, rotate and delete would lock the run out after a few cases; the
# Rust suite covers those three.
status=0
# Run from the scratch directory: schemathesis keeps a cache in the working directory.
(cd "$WORK" && timeout "$TIMEOUT" "$VENV/bin/schemathesis" run "http://127.0.0.1:$ADMIN_PORT/docs/openapi.json" \
    -H "Authorization: Bearer $KEY" \
    --checks not_a_server_error,response_schema_conformance \
    --exclude-operation-id delete_api_api_keys_id \
    --exclude-operation-id post_api_api_keys_id_revoke \
    --exclude-operation-id post_api_api_keys_id_rotate \
    --max-examples "$MAX_EXAMPLES" \
    --phases examples,fuzzing \
    --no-color) || status=$?
# actix logs a client's unparseable request line or header at ERROR; that is the client's fault.
if grep -E 'ERROR|panicked' "$WORK/serve.log" | grep -qv 'actix_http::h1::dispatcher'; then
    echo "api-fuzz: the server logged errors:" >&2
    grep -E 'ERROR|panicked' "$WORK/serve.log" | grep -v 'actix_http::h1::dispatcher' | head -20 >&2
    status=1
fi
# The key must still work at the end, or the run tested only 401s.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    -H 'Accept: application/vnd.api+json' "http://127.0.0.1:$ADMIN_PORT/api/users")
[ "$code" = 200 ] || { echo "api-fuzz: the admin key no longer works ($code): the run was not authenticated" >&2; status=1; }
exit "$status"
