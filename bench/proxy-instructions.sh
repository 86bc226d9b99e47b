#!/usr/bin/env bash
# Proxy instruction count: user-space instructions per proxied request, for Tollgate and for the
# nginx gateway of bench/proxy.sh, each run under valgrind's callgrind on the same request mix.
# Instruction counts do not depend on how busy the machine is, unlike the req/s, p99 and CPU
# figures of bench/proxy.sh; they leave the kernel out (see bench/README.md).
#
#   bash bench/proxy-instructions.sh                                  (from the repository root)
#   BENCH_TOLLGATE_BIN=/path/to/tollgate bash bench/proxy-instructions.sh   (no build)
#
# Knobs (environment): BENCH_KEYS (1000, 100 per user), BENCH_EXTRA_KEYS (0: keys added
# straight into the database after the set-up, e.g. 99000 for a run with 100,000 keys), BENCH_DURATION (seconds of the measured
# run per gateway, 20), BENCH_WARMUP (seconds of warm-up per gateway, 5), BENCH_CONNECTIONS (8,
# one wrk thread), BENCH_IDLE (seconds of the idle measurement per gateway, 5; 0 = none),
# BENCH_NGINX_ACCESS_LOG (1), BENCH_TOLLGATE_BIN (a built binary to run instead of building
# target/release/tollgate).
# Raw outputs go to bench/out/proxy-instructions-<stamp>/.
#
# The set-up is bench/proxy.sh's: the same upstream (bench/proxy/upstream.conf, not under
# valgrind), the same nginx gateway (bench/proxy/gateway.conf: key map, limit_req, access log),
# Tollgate with the same plan, users, keys, upstream and route created through the admin API, and
# wrk with bench/proxy/keys.lua. Those files are used as they are. The shell pieces (free ports,
# starting nginx from a template, the admin API calls, the key map, the checks) are copied from
# bench/proxy.sh in reduced form rather than shared, so that bench/proxy.sh stays as it is; a fix
# to one of them may be wanted in both scripts. What differs:
#   - one worker each: nginx with `worker_processes 1`, plus `-g 'master_process off;'` so that
#     the one process valgrind runs is the one that serves; TOLLGATE_WORKERS=1;
#   - Tollgate is set up (admin, plan, users, keys, route) by a normal run of the binary, which is
#     then stopped and started again on the same database under callgrind: creating 1,000 keys
#     under valgrind would take minutes and is not what is measured;
#   - per gateway: a warm-up, then callgrind_control -z (zero the counters), a wrk run of
#     BENCH_DURATION seconds, a wait until the gateway is idle (Tollgate's usage writer and
#     nginx's access log flush the run's records), callgrind_control -d (dump). Instructions per
#     request = the dump's total Ir / the requests wrk completed. Then, optionally, the same
#     zero/dump around BENCH_IDLE seconds without requests: what the gateway spends on its own
#     (timers, polling), to show how much of the per-request figure is time- rather than
#     request-driven.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

KEYS=${BENCH_KEYS:-1000}
# Keys added straight into the database after the set-up (bench/proxy/bulk_keys.py), for runs
# with far more keys than the admin API creates in reasonable time (100,000: BENCH_EXTRA_KEYS=99000).
EXTRA_KEYS=${BENCH_EXTRA_KEYS:-0}
DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-5}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
IDLE=${BENCH_IDLE:-5}
NGINX_ACCESS_LOG=${BENCH_NGINX_ACCESS_LOG:-1}
# Tollgate's plan limit (the maximum rate_limit_per_minute); nginx's bucket gets the same.
RATE_PER_MINUTE=1000000
KEYS_PER_USER=100

STAMP=$(date +%Y%m%d_%H%M%S)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
OUT=bench/out/proxy-instructions-$STAMP
BIN=${BENCH_TOLLGATE_BIN:-$ROOT/target/release/tollgate}
LUA=$ROOT/bench/proxy/keys.lua
CLK_TCK=$(getconf CLK_TCK)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'proxy-instructions: %s\n' "$*" >&2; exit 1; }

for n in "$KEYS" "$DURATION" "$WARMUP" "$CONNECTIONS"; do
    case "$n" in '' | *[!0-9]* | 0) die "the BENCH_* counts must be positive integers (got: $n)" ;; esac
done
case "$IDLE" in '' | *[!0-9]*) die "BENCH_IDLE must be a non-negative integer (got: $IDLE)" ;; esac
[ "$KEYS" -le $((KEYS_PER_USER * 1000)) ] || die "BENCH_KEYS is too large"

# ---------------------------------------------------------------------------------------------
# 1. Prerequisites: valgrind, nginx, wrk, curl, jq (installed with apt-get when missing); the
#    release binary.
# ---------------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || missing+=(valgrind)
for tool in wrk curl jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in "$NGINX" valgrind callgrind_control callgrind_annotate wrk curl jq ss awk; do
    command -v "$tool" >/dev/null || die "$tool is required but not installed"
done

if [ -z "${BENCH_TOLLGATE_BIN:-}" ]; then
    say "building the release binary (cargo build --release -p tollgate)"
    cargo build --release -p tollgate
fi
[ -x "$BIN" ] || die "$BIN is not an executable"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
BUILT_FROM="Tollgate: $BIN, built from commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if ! git diff --quiet HEAD -- . ':!bench' 2>/dev/null; then BUILT_FROM+=" + uncommitted changes"; fi
if [ -n "${BENCH_TOLLGATE_BIN:-}" ]; then BUILT_FROM="Tollgate: $BIN (BENCH_TOLLGATE_BIN)"; fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d /tmp/tollgate-proxy-instr.XXXXXX)

# ---------------------------------------------------------------------------------------------
# Cleanup: always stop nginx and Tollgate and remove the temporary directory.
# ---------------------------------------------------------------------------------------------
PIDS=()
cleanup() {
    local status=$?
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "${PIDS[@]}"; do
        # valgrind writes its last dump on the way out: give it time
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
    done
    for name in upstream gateway; do
        if [ -f "$TMP/$name/logs/error.log" ]; then
            cp "$TMP/$name/logs/error.log" "$OUT/nginx-$name-error.log" 2>/dev/null || true
        fi
    done
    # (the dumps valgrind writes at exit, in $TMP, cover the time after the measurements: not kept)
    rm -rf "$TMP"
    find "$OUT" -maxdepth 1 -type f -empty -delete 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        printf 'proxy-instructions: failed (exit %s); outputs so far in %s/\n' "$status" "$OUT" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USED_PORTS=""
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 12000 ] || die "the ephemeral port range starts at $EPHEMERAL_LOW; no room below it"
free_port() {
    local port
    while :; do
        port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        case " $USED_PORTS " in *" $port "*) continue ;; esac
        if ! ss -Hltn "sport = :$port" | grep -q .; then echo "$port"; return; fi
    done
}
UPSTREAM_PORT=$(free_port); USED_PORTS+=" $UPSTREAM_PORT"
GATEWAY_PORT=$(free_port); USED_PORTS+=" $GATEWAY_PORT"
PROXY_PORT=$(free_port); USED_PORTS+=" $PROXY_PORT"
ADMIN_PORT=$(free_port); USED_PORTS+=" $ADMIN_PORT"
DIRECT_URL=http://127.0.0.1:$UPSTREAM_PORT
NGINX_URL=http://127.0.0.1:$GATEWAY_PORT
TOLLGATE_URL=http://127.0.0.1:$PROXY_PORT
ADMIN_URL=http://127.0.0.1:$ADMIN_PORT

wait_http() { # url, pid, name, seconds: wait for any HTTP answer
    local url=$1 pid=$2 name=$3 seconds=${4:-60}
    for _ in $(seq 1 $((seconds * 4))); do
        if curl -sS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || die "$name exited at start (see $OUT/)"
        sleep 0.25
    done
    die "$name did not answer $url within $seconds s"
}

VALGRIND=(valgrind --tool=callgrind --trace-children=no --fair-sched=yes)

start_nginx() { # name, template, port, under callgrind (0/1)
    local name=$1 template=$2 port=$3 cg=$4 dir=$TMP/$1 access_log=off
    mkdir -p "$dir/logs" "$dir/tmp"
    if [ "$name" = gateway ] && [ "$NGINX_ACCESS_LOG" = 1 ]; then
        access_log="logs/access.log usage buffer=256k flush=1s"
    fi
    sed -e "s|@PORT@|$port|g" -e "s|@WORKERS@|1|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@RATE_PER_MINUTE@|$RATE_PER_MINUTE|g" -e "s|@PLAN_ID@|$PLAN_ID|g" \
        -e "s|@ACCESS_LOG@|$access_log|g" "$template" >"$dir/nginx.conf"
    cp "$dir/nginx.conf" "$OUT/nginx-$name.conf"
    local cmd=("$NGINX" -p "$dir/" -c "$dir/nginx.conf")
    if [ "$cg" = 1 ]; then cmd+=(-g 'master_process off;'); fi
    "${cmd[@]}" -t -q >"$OUT/nginx-$name-check.txt" 2>&1 && [ ! -s "$OUT/nginx-$name-check.txt" ] \
        || { cat "$OUT/nginx-$name-check.txt" >&2; die "nginx $name: configuration problem"; }
    if [ "$cg" = 1 ]; then
        "${VALGRIND[@]}" --callgrind-out-file="$TMP/cg-nginx" "${cmd[@]}" >"$OUT/nginx-$name.out" 2>&1 &
    else
        "${cmd[@]}" >"$OUT/nginx-$name.out" 2>&1 &
    fi
    PIDS+=($!)
    eval "${name^^}_PID=$!"
    wait_http "http://127.0.0.1:$port/" "$!" "nginx $name" 120
}

# ---------------------------------------------------------------------------------------------
# 2. The upstream: nginx answering {"ok":true}, 1 worker, not under valgrind.
# ---------------------------------------------------------------------------------------------
PLAN_ID=pln_none
say "starting the upstream (nginx, 1 worker) on 127.0.0.1:$UPSTREAM_PORT"
start_nginx upstream bench/proxy/upstream.conf "$UPSTREAM_PORT" 0

# ---------------------------------------------------------------------------------------------
# 3. Tollgate: set up by a normal run (admin, plan, users, KEYS keys, upstream, route), stopped,
#    then started again on the same SQLite database under callgrind.
# ---------------------------------------------------------------------------------------------
KEYFILE=$OUT/keys.tsv

api() { # method, path, [body] → response body on stdout; fails unless 2xx
    local method=$1 path=$2 body=${3:-} response code
    local args=(-sS -X "$method" -w '\n%{http_code}' -H "Authorization: Bearer $ADMIN_KEY"
        -H 'Accept: application/vnd.api+json')
    if [ -n "$body" ]; then
        args+=(-H 'Content-Type: application/vnd.api+json' --data-binary "$body")
    fi
    response=$(curl "${args[@]}" "$ADMIN_URL$path") || { echo "curl failed: $method $path" >&2; return 1; }
    code=${response##*$'\n'}
    response=${response%$'\n'*}
    case "$code" in
        2??) printf '%s\n' "$response" ;;
        *) printf 'proxy-instructions: %s %s answered %s: %s\n' "$method" "$path" "$code" "$response" >&2; return 1 ;;
    esac
}

create_key() { # user id, number → key <TAB> user id <TAB> key id
    local user=$1 n=$2 body doc
    body=$(printf '{"data":{"type":"api_keys","attributes":{"name":"bench %s"},"relationships":{"user":{"data":{"type":"users","id":"%s"}}}}}' "$n" "$user")
    doc=$(api POST /api/api-keys "$body") || exit 255 # 255 stops xargs at once
    jq -r '[.data.meta.key, .data.relationships.user.data.id // "'"$user"'", .data.id] | @tsv' <<<"$doc"
}

stop_pid() { # pid: TERM, wait up to 15 s, then KILL
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

export TOLLGATE_DATABASE_URL="sqlite://$TMP/bench.db?mode=rwc"
export TOLLGATE_ADMIN_ADDR=127.0.0.1:$ADMIN_PORT
export TOLLGATE_PROXY_ADDR=127.0.0.1:$PROXY_PORT
export TOLLGATE_LOG_LEVEL=warn
export TOLLGATE_WORKERS=1

say "creating the bench admin"
ADMIN_KEY=$(cd "$TMP" && echo 'bench admin password 1234' \
    | "$BIN" admin create --email bench@example.com --password-stdin --with-key \
        2>"$OUT/admin-create.log" | tail -n 1) || { cat "$OUT/admin-create.log" >&2; die "admin create failed"; }
case "$ADMIN_KEY" in tg_admin_*) ;; *) die "no admin key printed (got: $ADMIN_KEY)" ;; esac

say "set-up run of tollgate serve (not measured)"
(cd "$TMP" && exec "$BIN" serve) >"$OUT/tollgate-setup.log" 2>&1 &
SETUP_PID=$!
PIDS+=("$SETUP_PID")
wait_http "$ADMIN_URL/health" "$SETUP_PID" "tollgate (set-up run)"

say "creating a plan, $(( (KEYS + KEYS_PER_USER - 1) / KEYS_PER_USER )) users, $KEYS keys, an upstream and a route"
PLAN_ID=$(api POST /api/plans "$(printf '{"data":{"type":"plans","attributes":{"name":"bench","rate_limit_per_minute":%s,"requests_per_month":-1}}}' "$RATE_PER_MINUTE")" \
    | jq -r .data.id)
: >"$TMP/key-jobs"
for u in $(seq 1 $(( (KEYS + KEYS_PER_USER - 1) / KEYS_PER_USER ))); do
    user=$(api POST /api/users "$(printf '{"data":{"type":"users","attributes":{"email":"user%s@bench.example.com","name":"Bench user %s"},"relationships":{"plan":{"data":{"type":"plans","id":"%s"}}}}}' "$u" "$u" "$PLAN_ID")" \
        | jq -r .data.id)
    for k in $(seq 1 "$KEYS_PER_USER"); do
        if [ $(( (u - 1) * KEYS_PER_USER + k )) -le "$KEYS" ]; then echo "$user $k"; fi
    done >>"$TMP/key-jobs"
done
export ADMIN_KEY ADMIN_URL
export -f api create_key
xargs -P 4 -n 2 bash -c 'create_key "$@"' _ <"$TMP/key-jobs" >"$KEYFILE" || die "creating the keys failed"
UPSTREAM_ID=$(api POST /api/upstreams "$(printf '{"data":{"type":"upstreams","attributes":{"name":"bench upstream","base_url":"%s"}}}' "$DIRECT_URL")" \
    | jq -r .data.id)
api POST /api/routes "$(printf '{"data":{"type":"routes","attributes":{"name":"all","path_pattern":"/","match_type":"prefix"},"relationships":{"upstream":{"data":{"type":"upstreams","id":"%s"}}}}}' "$UPSTREAM_ID")" \
    | jq -c '{route: .data.id, path_pattern: .data.attributes.path_pattern, match_type: .data.attributes.match_type}' \
    >"$OUT/route.json"
[ "$(wc -l <"$KEYFILE")" -eq "$KEYS" ] || die "expected $KEYS keys in $KEYFILE, got $(wc -l <"$KEYFILE")"
[ "$(cut -f1 "$KEYFILE" | sort -u | grep -cE '^tg_live_[A-Za-z0-9]{40}$')" -eq "$KEYS" ] \
    || die "$KEYFILE does not hold $KEYS distinct well-formed keys"
stop_pid "$SETUP_PID"
case "$EXTRA_KEYS" in '' | *[!0-9]*) die "BENCH_EXTRA_KEYS must be a number (got: $EXTRA_KEYS)" ;; esac
if [ "$EXTRA_KEYS" -gt 0 ]; then
    say "adding $EXTRA_KEYS keys straight into the database (bench/proxy/bulk_keys.py)"
    python3 "$ROOT/bench/proxy/bulk_keys.py" "$TMP/bench.db" "$EXTRA_KEYS" >>"$KEYFILE" \
        || die "adding keys to the database failed"
    KEYS=$((KEYS + EXTRA_KEYS))
    [ "$(cut -f1 "$KEYFILE" | sort -u | wc -l)" -eq "$KEYS" ] || die "$KEYFILE does not hold $KEYS distinct keys"
fi

say "starting tollgate serve under callgrind (TOLLGATE_WORKERS=1)"
(cd "$TMP" && exec "${VALGRIND[@]}" --callgrind-out-file="$TMP/cg-tollgate" "$BIN" serve) \
    >"$OUT/tollgate.log" 2>&1 &
TOLLGATE_PID=$!
PIDS+=("$TOLLGATE_PID")
wait_http "$ADMIN_URL/health" "$TOLLGATE_PID" "tollgate (callgrind)" 180

# ---------------------------------------------------------------------------------------------
# 4. The nginx gateway under callgrind, its key map generated from keys.tsv.
# ---------------------------------------------------------------------------------------------
mkdir -p "$TMP/gateway"
awk -F '\t' '
    { user[NR] = $2; id[NR] = $3; key[NR] = $1 }
    END {
        print "map $http_x_api_key $key_user {\n    default \"\";"
        for (i = 1; i <= NR; i++) printf "    \"%s\" \"%s\";\n", key[i], user[i]
        print "}\nmap $http_x_api_key $key_id {\n    default \"\";"
        for (i = 1; i <= NR; i++) printf "    \"%s\" \"%s\";\n", key[i], id[i]
        print "}"
    }' "$KEYFILE" >"$TMP/gateway/keys-map.conf"
say "starting the nginx gateway under callgrind (1 process, master_process off) on 127.0.0.1:$GATEWAY_PORT"
start_nginx gateway bench/proxy/gateway.conf "$GATEWAY_PORT" 1

# ---------------------------------------------------------------------------------------------
# 5. Checks before measuring (as in bench/proxy.sh): 200 and the upstream's body with the first
#    and the last key, 401 without a key and with an unknown one, the key removed and the
#    owner's id added.
# ---------------------------------------------------------------------------------------------
FIRST_KEY=$(head -n 1 "$KEYFILE" | cut -f1)
FIRST_USER=$(head -n 1 "$KEYFILE" | cut -f2)
LAST_KEY=$(tail -n 1 "$KEYFILE" | cut -f1)
UNKNOWN_KEY=tg_live_$(printf 'x%.0s' $(seq 1 40))

expect() { # name, expected status, url, [key] → body in $OUT/check-<name>.json
    local name=$1 want=$2 url=$3 key=${4:-} code
    local args=(-sS --max-time 30 -o "$OUT/check-$name.json" -w '%{http_code}')
    if [ -n "$key" ]; then args+=(-H "X-API-Key: $key"); fi
    code=$(curl "${args[@]}" "$url") || die "check $name: $url did not answer"
    [ "$code" = "$want" ] || die "check $name: $url answered $code, expected $want: $(head -c 300 "$OUT/check-$name.json")"
}

check_gateway() { # name, base url
    local name=$1 base=$2 body
    expect "$name-first" 200 "$base/bench" "$FIRST_KEY"
    body=$(cat "$OUT/check-$name-first.json")
    [ "$body" = '{"ok":true}' ] || die "check $name: unexpected body $body"
    expect "$name-last" 200 "$base/bench" "$LAST_KEY"
    expect "$name-missing-key" 401 "$base/bench"
    expect "$name-unknown-key" 401 "$base/bench" "$UNKNOWN_KEY"
    expect "$name-echo" 200 "$base/echo" "$FIRST_KEY"
    jq -e --arg user "$FIRST_USER" '.x_api_key == "" and .x_user_id == $user and .x_forwarded_for != ""
        and .x_request_id != ""' "$OUT/check-$name-echo.json" >/dev/null \
        || die "check $name: the upstream got unexpected headers: $(cat "$OUT/check-$name-echo.json")"
    say "$name: 200 {\"ok\":true} with a key, 401 without / with an unknown key, key removed and X-User-ID added"
}

check_gateway nginx "$NGINX_URL"
# The proxy loads its configuration from the database at start; allow for valgrind's slowness.
for _ in $(seq 1 120); do
    code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H "X-API-Key: $FIRST_KEY" "$TOLLGATE_URL/bench" || true)
    if [ "$code" = 200 ]; then break; fi
    sleep 0.5
done
check_gateway tollgate "$TOLLGATE_URL"

# ---------------------------------------------------------------------------------------------
# 6. Measure each gateway: warm-up, zero, wrk, wait until idle, dump; then the idle figure.
# ---------------------------------------------------------------------------------------------
url_of() { case "$1" in nginx) echo "$NGINX_URL" ;; tollgate) echo "$TOLLGATE_URL" ;; esac; }
pid_of() { case "$1" in nginx) echo "$GATEWAY_PID" ;; tollgate) echo "$TOLLGATE_PID" ;; esac; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
field() { # file, name → value of name= in the RESULT line
    awk -v k="$2" '/^RESULT / { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print a[2] } }' "$1"
}
now() { date +%s.%N; }

wait_idle() { # pid: wait (at least 3 s, at most 60 s) until it uses less than half a core.
    # Under valgrind an idle Tollgate still takes 15-30 % of a core (valgrind's own work while
    # its threads sleep and wake), so "idle" is "no longer busy with requests": well below the
    # 100 % of a core it uses while serving. The usage writer and nginx's access log flush every
    # second; the Tollgate check below (metered count stable at the first reading after the
    # dump) confirms the run's records were written before the dump.
    local pid=$1 t0 t1 waited=0
    sleep 2
    while [ "$waited" -lt 60 ]; do
        t0=$(cpu_ticks "$pid"); sleep 1; t1=$(cpu_ticks "$pid")
        if [ $(( (t1 - t0) * 100 )) -lt $(( CLK_TCK * 50 )) ]; then return 0; fi
        waited=$((waited + 1))
    done
    die "pid $pid still busy 60 s after the run"
}

served_count() { # target → the gateway's own count of the requests it answered with 200
    case "$1" in
        nginx)
            if [ "$NGINX_ACCESS_LOG" = 1 ]; then
                sleep 1.5 # the log buffer is flushed every second
                awk '$6 == 200' "$TMP/gateway/logs/access.log" | wc -l
            else
                echo -
            fi ;;
        tollgate) # the usage summary of the last hour, once it has stopped moving; a
            # trailing "+" marks a count that still moved after the first reading
            local previous=-1 current moved=""
            for _ in $(seq 1 30); do
                current=$(api GET '/api/usage/summary?filter%5Bperiod%5D=1h' 2>/dev/null \
                    | jq -r '.meta.totals.requests // empty') || { echo -; return; }
                [ -n "$current" ] || { echo -; return; }
                if [ "$current" = "$previous" ]; then echo "$current$moved"; return; fi
                [ "$previous" = -1 ] || moved=+
                previous=$current
                sleep 1
            done
            echo - ;;
    esac
}

dump() { # target, label → path of the dump callgrind_control -d wrote
    local target=$1 label=$2 pid before after file
    pid=$(pid_of "$target")
    before=$(find "$TMP" -maxdepth 1 -name "cg-$target.*" | wc -l)
    callgrind_control -d "$label" "$pid" >"$TMP/cgc.txt" 2>&1 && grep -q OK "$TMP/cgc.txt" \
        || { cat "$TMP/cgc.txt" >&2; die "callgrind_control -d $target failed"; }
    for _ in $(seq 1 100); do
        after=$(find "$TMP" -maxdepth 1 -name "cg-$target.*" | wc -l)
        [ "$after" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$after" -gt "$before" ] || die "no new callgrind dump for $target"
    file=$(ls -t "$TMP/cg-$target".* | head -n 1)
    sleep 0.5 # the dump is written before callgrind_control returns; be safe
    mv "$file" "$OUT/callgrind-$target-$label.out"
    echo "$OUT/callgrind-$target-$label.out"
}
zero() { # target
    callgrind_control -z "$(pid_of "$1")" >"$TMP/cgc.txt" 2>&1 && grep -q OK "$TMP/cgc.txt" \
        || { cat "$TMP/cgc.txt" >&2; die "callgrind_control -z $1 failed"; }
}
total_ir() { # dump file → its total Ir (the summary: line)
    local ir
    ir=$(awk '/^summary:/ { print $2 }' "$1")
    case "$ir" in '' | *[!0-9]*) die "no summary line in $1" ;; esac
    [ "$ir" -gt 0 ] || die "zero instructions in $1"
    echo "$ir"
}

run_wrk() { # target, label, seconds → checks the run; requests in the RESULT line
    local target=$1 label=$2 seconds=$3 file="$OUT/wrk-$1-$2.txt" requests bad
    say "wrk $target $label: -t1 -c$CONNECTIONS -d${seconds}s"
    wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --timeout 10s --latency -s "$LUA" \
        "$(url_of "$target")/bench" -- "$KEYFILE" >"$file" 2>&1 \
        || { cat "$file" >&2; die "wrk $target $label failed"; }
    grep -q '^RESULT ' "$file" || { cat "$file" >&2; die "wrk $target $label: no RESULT line"; }
    requests=$(field "$file" requests)
    [ "${requests:-0}" -gt 0 ] || die "wrk $target $label: no request completed"
    bad=$(field "$file" bad_status)
    [ "$bad" = 0 ] || die "wrk $target $label: $bad responses with status >= 400 (see $file)"
    if grep -q 'Non-2xx\|Socket errors' "$file"; then
        die "wrk $target $label: $(grep 'Non-2xx\|Socket errors' "$file" | tr -s ' ') (see $file)"
    fi
}

for target in nginx tollgate; do
    pid=$(pid_of "$target")
    run_wrk "$target" warmup "$WARMUP"
    wait_idle "$pid"
    served_before=$(served_count "$target")
    wait_idle "$pid"
    zero "$target"
    t0=$(now)
    run_wrk "$target" run "$DURATION"
    wait_idle "$pid" # the run's usage records and access-log lines are written before the dump
    file=$(dump "$target" run)
    t1=$(now)
    served_after=$(served_count "$target")
    ir=$(total_ir "$file")
    requests=$(field "$OUT/wrk-$target-run.txt" requests)
    served=-
    case "$served_after" in
        *+) die "$target: requests were still being metered after the dump (count ${served_after%+}); raise the wait" ;;
    esac
    served_before=${served_before%+}
    if [ "$served_before" != - ] && [ "$served_after" != - ]; then
        served=$((served_after - served_before))
        # wrk does not count the requests in flight when it stops (at most one per connection)
        [ "$served" -ge "$requests" ] && [ "$served" -le $((requests + CONNECTIONS)) ] \
            || die "$target counted $served requests answered with 200 during the run, wrk $requests"
    fi
    idle_ir=-
    if [ "$IDLE" -gt 0 ]; then
        wait_idle "$pid"
        zero "$target"
        i0=$(now); sleep "$IDLE"
        idle_file=$(dump "$target" idle); i1=$(now)
        idle_ir=$(total_ir "$idle_file")
        idle_ir=$(awk -v ir="$idle_ir" -v a="$i0" -v b="$i1" 'BEGIN { printf "%.0f", ir / (b - a) }')
    fi
    printf '%s ir=%s totals_ir=%s requests=%s served=%s window_s=%.1f idle_ir_per_s=%s rps=%s\n' "$target" "$ir" \
        "$(awk '/^totals:/ { print $2 }' "$file")" "$requests" "$served" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$idle_ir" \
        "$(field "$OUT/wrk-$target-run.txt" rps)" >>"$OUT/results.txt"
done

# The functions of each run's dump: self cost (bench/proxy/callgrind-self.awk: callgrind_annotate
# 3.19 shows inclusive figures even with --inclusive=no) and inclusive cost (callgrind_annotate).
for target in nginx tollgate; do
    { printf 'self Ir\tfunction [object]  (%s, run; TOTAL = the sum of the self costs)\n' "$target"
      awk -f bench/proxy/callgrind-self.awk "$OUT/callgrind-$target-run.out" | sort -t "$(printf '\t')" -k1,1 -rn
    } >"$OUT/$target-functions-self.txt" || die "reading the self costs of $target failed"
    callgrind_annotate --inclusive=yes --threshold=100 "$OUT/callgrind-$target-run.out" \
        >"$OUT/$target-functions-inclusive.txt" 2>&1 || die "callgrind_annotate failed for $target"
done

# ---------------------------------------------------------------------------------------------
# 7. The summary.
# ---------------------------------------------------------------------------------------------
get() { # target, name → value from results.txt
    awk -v t="$1" -v k="$2" '$1 == t { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print a[2] } }' "$OUT/results.txt"
}
per_request() { awk -v ir="$(get "$1" ir)" -v n="$(get "$1" requests)" 'BEGIN { printf "%.0f", ir / n }'; }
net_per_request() { # target → (Ir - the idle rate over the run's window) / requests
    local rate
    rate=$(get "$1" idle_ir_per_s)
    [ "$rate" = - ] && { echo -; return; }
    awk -v r="$rate" -v w="$(get "$1" window_s)" -v ir="$(get "$1" ir)" -v n="$(get "$1" requests)" \
        'BEGIN { printf "%.0f", (ir - r * w) / n }'
}
idle_share() { # target → the idle rate over the run's window, per request, as a share of the figure
    local rate
    rate=$(get "$1" idle_ir_per_s)
    [ "$rate" = - ] && { echo -; return; }
    awk -v r="$rate" -v w="$(get "$1" window_s)" -v ir="$(get "$1" ir)" 'BEGIN { printf "%.1f %%", 100 * r * w / ir }'
}
top_functions() { # self-cost file, n → the n largest functions with their share, shortened
    awk -F '\t' -v n="$2" 'NR == 2 { total = $1; next } NR > 2 && NR <= n + 2 {
        printf "%14s %5.1f %%  %s\n", $1, 100 * $1 / total, substr($2, 1, 130) }' "$1"
}
row() { printf '%-9s %13s %9s %9s %13s %11s %11s %10s\n' "$@"; }
NGINX_PER=$(per_request nginx)
TOLLGATE_PER=$(per_request tollgate)
{
    echo
    echo "Tollgate proxy instruction count — $KEYS keys; ${DURATION}s per gateway at $CONNECTIONS connections (wrk -t1), under callgrind"
    echo "$(date -u '+%Y-%m-%d %H:%M:%SZ')  $(nproc) cores  load average: $LOAD_AT_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo "$BUILT_FROM"
    echo "$(valgrind --version); gateways: 1 process each (nginx master_process off, TOLLGATE_WORKERS=1); upstream: nginx, 1 worker, not under valgrind"
    echo "user-space instructions only (callgrind Ir): no kernel, no upstream, no wrk"
    echo
    row gateway "Ir (run)" requests "gateway" "Ir per" "idle share" "Ir per req" "req/s"
    row "" "" "(wrk)" "counted" "request" "of the run" "net of idle" "(valgrind)"
    for target in nginx tollgate; do
        row "$target" "$(get "$target" ir)" "$(get "$target" requests)" "$(get "$target" served)" \
            "$(per_request "$target")" "$(idle_share "$target")" "$(net_per_request "$target")" \
            "$(get "$target" rps)"
    done
    echo
    awk -v t="$TOLLGATE_PER" -v n="$NGINX_PER" 'BEGIN { printf "Tollgate / nginx: %.2fx instructions per request (%d vs %d)\n", t / n, t, n }'
    echo
    echo "Tollgate, top 15 functions by self Ir, share of the run (all: tollgate-functions-self.txt; inclusive: tollgate-functions-inclusive.txt):"
    top_functions "$OUT/tollgate-functions-self.txt" 15 | sed 's/^/  /'
    echo
    echo "nginx, top 5 functions by self Ir, share of the run (nginx-functions-self.txt):"
    top_functions "$OUT/nginx-functions-self.txt" 5 | sed 's/^/  /'
    echo
    echo "raw outputs: ${OUT#"$ROOT"/}/"
} | tee "$OUT/summary.txt"
