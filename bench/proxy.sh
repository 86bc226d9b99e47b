#!/usr/bin/env bash
# Proxy benchmark: the same upstream reached directly, through an nginx gateway (key check from a
# map + limit_req) and through Tollgate (1,000 keys), measured with wrk in one run.
#
#   bash bench/proxy.sh                    (from the repository root)
#   BENCH_ONLY=nginx bash bench/proxy.sh   (direct and nginx only, with generated keys; no build)
#
# Knobs (environment): BENCH_ONLY (all | nginx), BENCH_KEYS (1000, 100 per user),
# BENCH_DURATION (seconds at BENCH_CONNECTIONS, 15), BENCH_DURATION_C1 (seconds at one
# connection, 10), BENCH_ROUNDS (1; the summary shows the median), BENCH_WARMUP (3), BENCH_THREADS (2), BENCH_CONNECTIONS (64),
# BENCH_GATEWAY_WORKERS (2: nginx worker processes = TOLLGATE_WORKERS),
# BENCH_UPSTREAM_WORKERS (1), BENCH_NGINX_ACCESS_LOG (1), BENCH_TOLLGATE_BIN (a built binary to
# run instead of building target/release/tollgate), BENCH_PROFILE (0; 1 = after the rounds, one
# more run at BENCH_CONNECTIONS under `perf record` and a flame graph of Tollgate as
# tollgate-flame.svg, with inferno's tools on the PATH: `cargo install inferno`).
# Raw outputs go to bench/out/proxy-<stamp>/.
# See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

ONLY=${BENCH_ONLY:-all}
KEYS=${BENCH_KEYS:-1000}
DURATION=${BENCH_DURATION:-15}
DURATION_C1=${BENCH_DURATION_C1:-10}
ROUNDS=${BENCH_ROUNDS:-1}
WARMUP=${BENCH_WARMUP:-3}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
GATEWAY_WORKERS=${BENCH_GATEWAY_WORKERS:-2}
UPSTREAM_WORKERS=${BENCH_UPSTREAM_WORKERS:-1}
NGINX_ACCESS_LOG=${BENCH_NGINX_ACCESS_LOG:-1}
PROFILE=${BENCH_PROFILE:-0}
# Tollgate's plan limit (the maximum rate_limit_per_minute); nginx's bucket gets the same.
RATE_PER_MINUTE=1000000
KEYS_PER_USER=100

STAMP=$(date +%Y%m%d_%H%M%S)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
OUT=bench/out/proxy-$STAMP
BIN=${BENCH_TOLLGATE_BIN:-$ROOT/target/release/tollgate}
LUA=$ROOT/bench/proxy/keys.lua
CLK_TCK=$(getconf CLK_TCK)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'proxy: %s\n' "$*" >&2; exit 1; }

case "$ONLY" in all | nginx) ;; *) die "BENCH_ONLY must be all or nginx (got: $ONLY)" ;; esac
for n in "$KEYS" "$DURATION" "$DURATION_C1" "$ROUNDS" "$WARMUP" "$THREADS" "$CONNECTIONS" \
    "$GATEWAY_WORKERS" "$UPSTREAM_WORKERS"; do
    case "$n" in '' | *[!0-9]* | 0) die "the BENCH_* counts must be positive integers (got: $n)" ;; esac
done
[ "$KEYS" -le $((KEYS_PER_USER * 1000)) ] || die "BENCH_KEYS is too large"

# ---------------------------------------------------------------------------------------------
# 1. Prerequisites: nginx, wrk, curl, jq (installed with apt-get when missing); the release
#    binary unless BENCH_ONLY=nginx.
# ---------------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
for tool in wrk curl jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    # Debian starts the packaged nginx service on port 80 where it can; the bench does not use it.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in "$NGINX" wrk curl jq ss awk; do
    command -v "$tool" >/dev/null || die "$tool is required but not installed"
done

if [ "$PROFILE" = 1 ]; then
    for tool in perf inferno-collapse-perf inferno-flamegraph; do
        command -v "$tool" >/dev/null || die "BENCH_PROFILE=1 needs $tool (perf: apt-get install linux-perf; inferno: cargo install inferno)"
    done
fi

if [ "$ONLY" = all ] && [ -z "${BENCH_TOLLGATE_BIN:-}" ]; then
    say "building the release binary (cargo build --release -p tollgate)"
    cargo build --release -p tollgate
fi
if [ "$ONLY" = all ]; then
    [ -x "$BIN" ] || die "$BIN is not an executable"
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
fi

BUILT_FROM="Tollgate: not run"
if [ "$ONLY" = all ]; then
    BUILT_FROM="Tollgate: $BIN, built from commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    if ! git diff --quiet HEAD -- . ':!bench' 2>/dev/null; then BUILT_FROM+=" + uncommitted changes"; fi
    if [ -n "${BENCH_TOLLGATE_BIN:-}" ]; then BUILT_FROM="Tollgate: $BIN (BENCH_TOLLGATE_BIN)"; fi
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d /tmp/tollgate-proxy-bench.XXXXXX)

# ---------------------------------------------------------------------------------------------
# Cleanup: always stop nginx and Tollgate and remove the temporary directory; logs are copied
# to the output folder first.
# ---------------------------------------------------------------------------------------------
PIDS=()
cleanup() {
    local status=$?
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
    done
    for name in upstream gateway; do
        if [ -f "$TMP/$name/logs/error.log" ]; then
            cp "$TMP/$name/logs/error.log" "$OUT/nginx-$name-error.log" 2>/dev/null || true
        fi
    done
    rm -rf "$TMP"
    find "$OUT" -maxdepth 1 -type f -empty -delete 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        printf 'proxy: failed (exit %s); outputs so far in %s/\n' "$status" "$OUT" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USED_PORTS=""
# Ports below the ephemeral range, so that no outgoing connection (curl, wrk, the gateways'
# upstream pools) can take one between the choice and the bind.
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 12000 ] || die "the ephemeral port range starts at $EPHEMERAL_LOW; no room below it"
free_port() { # a port nothing listens on and not handed out before (callers add it to USED_PORTS)
    local port
    while :; do
        port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        case " $USED_PORTS " in *" $port "*) continue ;; esac
        if ! ss -Hltn "sport = :$port" | grep -q .; then
            echo "$port"
            return
        fi
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

wait_http() { # url, pid, name: wait up to 60 s for any HTTP answer
    local url=$1 pid=$2 name=$3
    for _ in $(seq 1 240); do
        if curl -sS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || die "$name exited at start (see $OUT/)"
        sleep 0.25
    done
    die "$name did not answer $url within 60 s"
}

# nginx instance: its own prefix under $TMP, the conf made from a template, master in the
# foreground (daemon off) so its pid is ours to stop.
start_nginx() { # name, template, port, workers
    local name=$1 template=$2 port=$3 workers=$4 dir=$TMP/$1 access_log=off
    mkdir -p "$dir/logs" "$dir/tmp"
    if [ "$name" = gateway ] && [ "$NGINX_ACCESS_LOG" = 1 ]; then
        access_log="logs/access.log usage buffer=256k flush=1s"
    fi
    sed -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$workers|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@RATE_PER_MINUTE@|$RATE_PER_MINUTE|g" -e "s|@PLAN_ID@|$PLAN_ID|g" \
        -e "s|@ACCESS_LOG@|$access_log|g" "$template" >"$dir/nginx.conf"
    cp "$dir/nginx.conf" "$OUT/nginx-$name.conf"
    # -t -q prints only problems: a warning (e.g. a key map hash built with oversized buckets)
    # would make the comparison unfair, so it stops the run too.
    "$NGINX" -t -q -p "$dir/" -c "$dir/nginx.conf" >"$OUT/nginx-$name-check.txt" 2>&1 \
        && [ ! -s "$OUT/nginx-$name-check.txt" ] \
        || { cat "$OUT/nginx-$name-check.txt" >&2; die "nginx $name: configuration problem"; }
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" >"$OUT/nginx-$name.out" 2>&1 &
    PIDS+=($!)
    eval "${name^^}_PID=$!"
    wait_http "http://127.0.0.1:$port/" "$!" "nginx $name"
}

# ---------------------------------------------------------------------------------------------
# 2. The upstream: nginx answering {"ok":true}.
# ---------------------------------------------------------------------------------------------
PLAN_ID=pln_none
say "starting the upstream (nginx, $UPSTREAM_WORKERS worker) on 127.0.0.1:$UPSTREAM_PORT"
start_nginx upstream bench/proxy/upstream.conf "$UPSTREAM_PORT" "$UPSTREAM_WORKERS"

# ---------------------------------------------------------------------------------------------
# 3. Tollgate with KEYS keys (or generated keys for BENCH_ONLY=nginx). keys.tsv holds
#    key <TAB> user id <TAB> key id; nginx's map is generated from the same file.
# ---------------------------------------------------------------------------------------------
KEYFILE=$OUT/keys.tsv
TOLLGATE_PID=""

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
        *) printf 'proxy: %s %s answered %s: %s\n' "$method" "$path" "$code" "$response" >&2; return 1 ;;
    esac
}

create_key() { # user id, number → key <TAB> user id <TAB> key id
    local user=$1 n=$2 body doc
    body=$(printf '{"data":{"type":"api_keys","attributes":{"name":"bench %s"},"relationships":{"user":{"data":{"type":"users","id":"%s"}}}}}' "$n" "$user")
    doc=$(api POST /api/api-keys "$body") || exit 255 # 255 stops xargs at once
    jq -r '[.data.meta.key, .data.relationships.user.data.id // "'"$user"'", .data.id] | @tsv' <<<"$doc"
}

if [ "$ONLY" = all ]; then
    export TOLLGATE_DATABASE_URL="sqlite://$TMP/bench.db?mode=rwc"
    export TOLLGATE_ADMIN_ADDR=127.0.0.1:$ADMIN_PORT
    export TOLLGATE_PROXY_ADDR=127.0.0.1:$PROXY_PORT
    export TOLLGATE_LOG_LEVEL=warn
    export TOLLGATE_WORKERS=$GATEWAY_WORKERS

    say "creating the bench admin"
    # From $TMP, so that no tollgate.toml of the working directory is read.
    ADMIN_KEY=$(cd "$TMP" && echo 'bench admin password 1234' \
        | "$BIN" admin create --email bench@example.com --password-stdin --with-key \
            2>"$OUT/admin-create.log" | tail -n 1) || { cat "$OUT/admin-create.log" >&2; die "admin create failed"; }
    case "$ADMIN_KEY" in tg_admin_*) ;; *) die "no admin key printed (got: $ADMIN_KEY)" ;; esac

    say "starting tollgate serve (proxy 127.0.0.1:$PROXY_PORT, admin 127.0.0.1:$ADMIN_PORT, $GATEWAY_WORKERS workers)"
    (cd "$TMP" && exec "$BIN" serve) >"$OUT/tollgate.log" 2>&1 &
    TOLLGATE_PID=$!
    PIDS+=("$TOLLGATE_PID")
    wait_http "$ADMIN_URL/health" "$TOLLGATE_PID" "tollgate"
    curl -fsS -o /dev/null "$ADMIN_URL/health" || die "tollgate: GET /health failed"

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
    started=$(date +%s)
    xargs -P 4 -n 2 bash -c 'create_key "$@"' _ <"$TMP/key-jobs" >"$KEYFILE" \
        || die "creating the keys failed"
    say "$(wc -l <"$KEYFILE") keys created in $(( $(date +%s) - started )) s"
    UPSTREAM_ID=$(api POST /api/upstreams "$(printf '{"data":{"type":"upstreams","attributes":{"name":"bench upstream","base_url":"%s"}}}' "$DIRECT_URL")" \
        | jq -r .data.id)
    api POST /api/routes "$(printf '{"data":{"type":"routes","attributes":{"name":"all","path_pattern":"/","match_type":"prefix"},"relationships":{"upstream":{"data":{"type":"upstreams","id":"%s"}}}}}' "$UPSTREAM_ID")" \
        | jq -c '{route: .data.id, path_pattern: .data.attributes.path_pattern, match_type: .data.attributes.match_type}' \
        >"$OUT/route.json"
else
    say "BENCH_ONLY=nginx: generating $KEYS keys (tg_live_ + 40 alphanumerics)"
    { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom || true; } | head -c $((KEYS * 40)) | fold -w 40 \
        | awk -v per="$KEYS_PER_USER" '{ printf "tg_live_%s\tusr_%026d\tkey_%026d\n", $0, int((NR - 1) / per) + 1, NR }' \
        >"$KEYFILE"
    PLAN_ID=pln_00000000000000000000000001
fi

[ "$(wc -l <"$KEYFILE")" -eq "$KEYS" ] || die "expected $KEYS keys in $KEYFILE, got $(wc -l <"$KEYFILE")"
[ "$(cut -f1 "$KEYFILE" | sort -u | grep -cE '^tg_live_[A-Za-z0-9]{40}$')" -eq "$KEYS" ] \
    || die "$KEYFILE does not hold $KEYS distinct well-formed keys"

# ---------------------------------------------------------------------------------------------
# 4. The nginx gateway, its key map generated from keys.tsv.
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
say "starting the nginx gateway ($GATEWAY_WORKERS workers) on 127.0.0.1:$GATEWAY_PORT"
start_nginx gateway bench/proxy/gateway.conf "$GATEWAY_PORT" "$GATEWAY_WORKERS"

# ---------------------------------------------------------------------------------------------
# 5. Checks before measuring: every target answers the bench request with 200 and the upstream's
#    body; the gateways refuse a missing and an unknown key, forward without the key and with
#    the owner's id. A gateway that answered 401 or 404 fast would otherwise "win".
# ---------------------------------------------------------------------------------------------
FIRST_KEY=$(head -n 1 "$KEYFILE" | cut -f1)
FIRST_USER=$(head -n 1 "$KEYFILE" | cut -f2)
LAST_KEY=$(tail -n 1 "$KEYFILE" | cut -f1)
UNKNOWN_KEY=tg_live_$(printf 'x%.0s' $(seq 1 40))

expect() { # name, expected status, url, [key] → body in $OUT/check-<name>.json
    local name=$1 want=$2 url=$3 key=${4:-} code
    local args=(-sS -o "$OUT/check-$name.json" -w '%{http_code}')
    if [ -n "$key" ]; then args+=(-H "X-API-Key: $key"); fi
    code=$(curl "${args[@]}" "$url") || die "check $name: $url did not answer"
    [ "$code" = "$want" ] || die "check $name: $url answered $code, expected $want: $(head -c 300 "$OUT/check-$name.json")"
}

check_target() { # name, base url, is gateway (0/1)
    local name=$1 base=$2 gateway=$3 body
    expect "$name-first" 200 "$base/bench" "$FIRST_KEY"
    body=$(cat "$OUT/check-$name-first.json")
    [ "$body" = '{"ok":true}' ] || die "check $name: unexpected body $body"
    expect "$name-last" 200 "$base/bench" "$LAST_KEY"
    if [ "$gateway" = 1 ]; then
        expect "$name-missing-key" 401 "$base/bench"
        expect "$name-unknown-key" 401 "$base/bench" "$UNKNOWN_KEY"
        expect "$name-echo" 200 "$base/echo" "$FIRST_KEY"
        jq -e --arg user "$FIRST_USER" '.x_api_key == "" and .x_user_id == $user and .x_forwarded_for != ""
            and .x_request_id != ""' "$OUT/check-$name-echo.json" >/dev/null \
            || die "check $name: the upstream got unexpected headers: $(cat "$OUT/check-$name-echo.json")"
    fi
    say "$name: 200 {\"ok\":true} with a key$([ "$gateway" = 1 ] && echo ', 401 without / with an unknown key, key removed and X-User-ID added')"
}

TARGETS=(direct nginx)
check_target direct "$DIRECT_URL" 0
check_target nginx "$NGINX_URL" 1
if [ "$ONLY" = all ]; then
    # Admin writes reach the proxy within 1 s (proxy.md §8); allow a little more.
    for _ in $(seq 1 40); do
        code=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-API-Key: $FIRST_KEY" "$TOLLGATE_URL/bench" || true)
        if [ "$code" = 200 ]; then break; fi
        sleep 0.25
    done
    check_target tollgate "$TOLLGATE_URL" 1
    TARGETS+=(tollgate)
fi

# ---------------------------------------------------------------------------------------------
# 6. Measure: per target a warm-up, then CONNECTIONS connections, then one connection.
# ---------------------------------------------------------------------------------------------
url_of() { case "$1" in direct) echo "$DIRECT_URL" ;; nginx) echo "$NGINX_URL" ;; tollgate) echo "$TOLLGATE_URL" ;; esac; }

pids_of() { # the processes of a target's gateway ("" for direct) or of the upstream
    case "$1" in
        nginx) echo "$GATEWAY_PID" $(pgrep -P "$GATEWAY_PID" || true) ;;
        upstream) echo "$UPSTREAM_PID" $(pgrep -P "$UPSTREAM_PID" || true) ;;
        tollgate) echo "$TOLLGATE_PID" ;;
    esac
}
cpu_ticks() { # user + system clock ticks of the given pids (threads included)
    local total=0 pid t
    for pid in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

thread_ticks() { # pid → "<thread name> <user+system ticks>" per thread
    local task
    for task in /proc/"$1"/task/*; do
        awk '{ match($0, /\(.*\)/); name = substr($0, RSTART + 1, RLENGTH - 2)
               split(substr($0, RSTART + RLENGTH + 1), f, " ")
               print name "\t" f[12] + f[13] }' "$task/stat" 2>/dev/null || true
    done
}
thread_cpu() { # before file, after file, requests → CPU µs/request per thread name, largest first
    awk -F '\t' -v n="$3" -v hz="$CLK_TCK" 'FNR == NR { before[$1] += $2; next } { after[$1] += $2 }
        END { for (t in after) { d = after[t] - before[t]; if (d > 0) printf "%s\t%.1f\n", t, d / hz * 1e6 / n } }' \
        "$1" "$2" | sort -t "$(printf '\t')" -k2,2 -rn | awk -F '\t' '{ printf "%-18s %8s\n", $1, $2 }'
}

field() { # file, name → value of name= in the RESULT line
    awk -v k="$2" '/^RESULT / { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print a[2] } }' "$1"
}

wait_idle() { # target, next run: wait (at most 60 s) until the target's processes use < 5 % of a
    # core, e.g. until Tollgate's usage writer has caught up with the previous run, so that it
    # does not take CPU from the next measurement
    local pids t0 t1 waited=0
    pids=$(pids_of "$1")
    [ -n "$pids" ] || return 0
    while [ "$waited" -lt 60 ]; do
        t0=$(cpu_ticks $pids); sleep 1; t1=$(cpu_ticks $pids)
        if [ $(( (t1 - t0) * 100 )) -lt $(( CLK_TCK * 5 )) ]; then break; fi
        waited=$((waited + 1))
    done
    printf '%s %s %s\n' "$1" "$2" "$waited" >>"$OUT/idle-waits.txt"
    if [ "$waited" -ge 60 ]; then say "warning: $1 still busy 60 s after the previous run"; fi
}

run_wrk() { # target, label, threads, connections, seconds
    local target=$1 label=$2 threads=$3 conns=$4 seconds=$5 file="$OUT/wrk-$1-$2.txt"
    local gw_pids up_pids gw0 up0 gw1 up1 requests bad other
    gw_pids=$(pids_of "$target"); up_pids=$(pids_of upstream)
    if [ "$label" != warmup ]; then # nothing left over from the previous run, whichever target
        for other in "${TARGETS[@]}"; do wait_idle "$other" "$target-$label"; done
    fi
    say "wrk $target $label: -t$threads -c$conns -d${seconds}s"
    if [ "$target" = tollgate ]; then thread_ticks "$TOLLGATE_PID" >"$TMP/threads-before"; fi
    gw0=$(cpu_ticks $gw_pids); up0=$(cpu_ticks $up_pids)
    wrk -t"$threads" -c"$conns" -d"${seconds}s" --timeout 5s --latency -s "$LUA" \
        "$(url_of "$target")/bench" -- "$KEYFILE" >"$file" 2>&1 \
        || { cat "$file" >&2; die "wrk $target $label failed"; }
    gw1=$(cpu_ticks $gw_pids); up1=$(cpu_ticks $up_pids)
    if [ "$target" = tollgate ]; then thread_ticks "$TOLLGATE_PID" >"$TMP/threads-after"; fi
    grep -q '^RESULT ' "$file" || { cat "$file" >&2; die "wrk $target $label: no RESULT line"; }
    requests=$(field "$file" requests)
    [ "${requests:-0}" -gt 0 ] || die "wrk $target $label: no request completed"
    printf 'CPU gateway_ticks=%s upstream_ticks=%s clk_tck=%s\n' \
        "$((gw1 - gw0))" "$((up1 - up0))" "$CLK_TCK" >>"$file"
    if [ "$target" = tollgate ]; then
        { echo "Tollgate CPU per request by thread (µs), $label"
          thread_cpu "$TMP/threads-before" "$TMP/threads-after" "$requests"; } >"$OUT/tollgate-threads-$label.txt"
    fi
    if [ "$label" != warmup ]; then
        bad=$(field "$file" bad_status)
        [ "$bad" = 0 ] || die "wrk $target $label: $bad responses with status >= 400 (see $file)"
        if grep -q 'Non-2xx\|Socket errors' "$file"; then
            say "warning: $target $label: $(grep 'Non-2xx\|Socket errors' "$file" | tr -s ' ')"
        fi
    fi
}

for target in "${TARGETS[@]}"; do
    run_wrk "$target" warmup "$THREADS" "$CONNECTIONS" "$WARMUP"
done
# Rounds: each measures every target once per connection count; the order of the targets
# rotates from round to round, so a burst of other work on the machine does not always hit the
# same target. The summary shows the median of the rounds.
for round in $(seq 1 "$ROUNDS"); do
    order=("${TARGETS[@]:$(( (round - 1) % ${#TARGETS[@]} ))}" "${TARGETS[@]:0:$(( (round - 1) % ${#TARGETS[@]} ))}")
    for target in "${order[@]}"; do
        run_wrk "$target" "c$CONNECTIONS-r$round" "$THREADS" "$CONNECTIONS" "$DURATION"
    done
    for target in "${order[@]}"; do
        run_wrk "$target" "c1-r$round" 1 1 "$DURATION_C1"
    done
done

rss_kib() { # resident memory of the given pids, summed (KiB)
    local total=0 pid r
    for pid in "$@"; do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${r:-0}))
    done
    echo "$total"
}
# Memory after the runs, loaded as they were (nginx: master and workers).
RSS_NGINX=$(rss_kib $(pids_of nginx))
RSS_TOLLGATE=-
if [ "$ONLY" = all ]; then RSS_TOLLGATE=$(rss_kib "$TOLLGATE_PID"); fi

if [ "$PROFILE" = 1 ] && [ "$ONLY" = all ]; then
    wait_idle tollgate profile
    say "profiling Tollgate: perf record (cpu-clock, call graphs) during a ${DURATION}s run at $CONNECTIONS connections"
    perf record -F 1999 -e cpu-clock --call-graph dwarf,16384 -p "$TOLLGATE_PID" -o "$TMP/perf.data" \
        -- sleep "$DURATION" >"$OUT/perf-record.txt" 2>&1 &
    perf_pid=$!
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$LUA" "$TOLLGATE_URL/bench" -- "$KEYFILE" \
        >"$OUT/wrk-tollgate-profile.txt" 2>&1 || die "wrk during the profile failed"
    wait "$perf_pid" || die "perf record failed (see $OUT/perf-record.txt)"
    perf script -i "$TMP/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/tollgate-stacks.folded"
    inferno-flamegraph --title "Tollgate proxy, $CONNECTIONS connections ($BUILT_FROM)" \
        <"$OUT/tollgate-stacks.folded" >"$OUT/tollgate-flame.svg"
    say "flame graph: ${OUT#"$ROOT"/}/tollgate-flame.svg"
fi

# The rotation really spread the load: nginx's access log names the key of every request.
KEYS_SEEN=-
if [ "$NGINX_ACCESS_LOG" = 1 ]; then
    sleep 1.5 # the log buffer is flushed every second
    KEYS_SEEN=$(awk '$6 == 200 { print $10 }' "$TMP/gateway/logs/access.log" | sort -u | wc -l)
    [ "$KEYS_SEEN" -eq "$KEYS" ] || die "the nginx gateway saw $KEYS_SEEN distinct keys, expected $KEYS"
fi

if [ "$ONLY" = all ]; then
    # For the record: Tollgate's metering of the run (if the summary is available).
    # The writer flushes every second; wait until the count stops moving (at most 30 s).
    previous=-1
    for _ in $(seq 1 30); do
        sleep 1
        api GET '/api/usage/summary?filter%5Bperiod%5D=1h' >"$OUT/tollgate-usage-summary.json" 2>/dev/null \
            || { rm -f "$OUT/tollgate-usage-summary.json"; break; }
        metered=$(jq -r '.meta.totals.requests // 0' "$OUT/tollgate-usage-summary.json")
        if [ "$metered" = "$previous" ]; then break; fi
        previous=$metered
    done
fi

# ---------------------------------------------------------------------------------------------
# 7. The summary.
# ---------------------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
res() { # target, label (c64, c1), field → median over the rounds
    local round
    for round in $(seq 1 "$ROUNDS"); do field "$OUT/wrk-$1-$2-r$round.txt" "$3"; done | median
}
cpu_per_request() { # target, label, gateway|upstream → µs of CPU per request, median over the rounds
    local round
    for round in $(seq 1 "$ROUNDS"); do
        awk -v which="$3" -v n="$(field "$OUT/wrk-$1-$2-r$round.txt" requests)" '/^CPU / {
            for (i = 2; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
            t = (which == "gateway") ? v["gateway_ticks"] : v["upstream_ticks"]
            printf "%.1f\n", t / v["clk_tck"] * 1e6 / n }' "$OUT/wrk-$1-$2-r$round.txt"
    done | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else print "-" }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
row() { printf '%-9s %6s %10s %9s %9s %8s %8s %11s %11s\n' "$@"; }

CL=c$CONNECTIONS
{
    echo
    echo "Tollgate proxy benchmark — $KEYS keys; ${DURATION}s at $CONNECTIONS connections (wrk -t$THREADS), ${DURATION_C1}s at 1$([ "$ROUNDS" = 1 ] || echo "; median of $ROUNDS rounds")"
    echo "$(date -u '+%Y-%m-%d %H:%M:%SZ')  $(nproc) cores  load average: $LOAD_AT_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo "$BUILT_FROM"
    echo "gateways: $GATEWAY_WORKERS workers each (nginx worker_processes, TOLLGATE_WORKERS); upstream: nginx, $UPSTREAM_WORKERS worker"
    echo "wrk, the upstream and the gateways share the same cores: compare figures within a run"
    echo "keys: $KEYS, rotated per request (distinct keys in nginx's access log: $KEYS_SEEN)"
    echo
    row target conns req/s "p50 ms" "p99 ms" "req/s" "p99" "gateway CPU" "upstream CPU"
    row "" "" "" "" "" "vs nginx" "vs nginx" "µs/req" "µs/req"
    for label in "$CL" c1; do
        for target in "${TARGETS[@]}"; do
            gw_cpu=-
            [ "$target" != direct ] && gw_cpu=$(cpu_per_request "$target" "$label" gateway)
            row "$target" "${label#c}" "$(res "$target" "$label" rps)" "$(res "$target" "$label" p50_ms)" \
                "$(res "$target" "$label" p99_ms)" \
                "$(ratio "$(res "$target" "$label" rps)" "$(res nginx "$label" rps)")" \
                "$(ratio "$(res "$target" "$label" p99_ms)" "$(res nginx "$label" p99_ms)")" \
                "$gw_cpu" "$(cpu_per_request "$target" "$label" upstream)"
        done
    done
    echo
    for target in "${TARGETS[@]}"; do
        [ "$target" = direct ] && continue
        name=nginx; [ "$target" = tollgate ] && name=Tollgate
        printf '%s adds %s ms p50 / %s ms p99 over direct at 1 connection\n' "$name" \
            "$(minus "$(res "$target" c1 p50_ms)" "$(res direct c1 p50_ms)")" \
            "$(minus "$(res "$target" c1 p99_ms)" "$(res direct c1 p99_ms)")"
    done
    echo
    echo "resident memory after the runs: nginx gateway $((RSS_NGINX / 1024)) MiB (master + workers), Tollgate $([ "$RSS_TOLLGATE" = - ] && echo - || echo "$((RSS_TOLLGATE / 1024)) MiB")"
    echo
    echo "target: Tollgate >= nginx in req/s, <= nginx in CPU per request, p99 and p50 added over direct"
    if [ "$ONLY" = all ]; then
        verdict=PASS
        check() { # label, ok(0/1), text
            local result=FAIL
            if [ "$2" = 1 ]; then result=PASS; else verdict=FAIL; fi
            printf '  %-22s %-52s %s\n' "$1" "$3" "$result"
        }
        t=$(res tollgate "$CL" rps); n=$(res nginx "$CL" rps)
        check "req/s, $CONNECTIONS connections" "$(ge "$t" "$n" && echo 1 || echo 0)" "Tollgate $t vs nginx $n"
        t=$(cpu_per_request tollgate "$CL" gateway); n=$(cpu_per_request nginx "$CL" gateway)
        check "CPU/req, $CONNECTIONS conns" "$(ge "$n" "$t" && echo 1 || echo 0)" "Tollgate $t µs vs nginx $n µs"
        t=$(minus "$(res tollgate c1 p50_ms)" "$(res direct c1 p50_ms)")
        n=$(minus "$(res nginx c1 p50_ms)" "$(res direct c1 p50_ms)")
        check "p50 added, 1 conn" "$(ge "$n" "$t" && echo 1 || echo 0)" "Tollgate +$t ms vs nginx +$n ms"
        for label in "$CL" c1; do
            t=$(res tollgate "$label" p99_ms); n=$(res nginx "$label" p99_ms)
            check "p99, ${label#c} connection$([ "$label" = c1 ] || echo s)" \
                "$(ge "$n" "$t" && echo 1 || echo 0)" "Tollgate $t ms vs nginx $n ms"
        done
        echo "verdict: $verdict"
        if [ -s "$OUT/tollgate-usage-summary.json" ]; then
            sent=0
            for file in "$OUT"/wrk-tollgate-*.txt; do sent=$((sent + $(field "$file" requests))); done
            echo "Tollgate metered $(jq -r '.meta.totals.requests // "?"' "$OUT/tollgate-usage-summary.json") requests; wrk completed $sent (plus the checks and requests in flight at the end of each run)"
        fi
        busy=$(awk '$1 == "tollgate" && $3 > max { max = $3 } END { print max + 0 }' "$OUT/idle-waits.txt")
        if [ "$busy" -gt 0 ]; then
            echo "Tollgate kept working up to $busy s after a run (the next run waited for it to go idle)"
        fi
        if [ -s "$OUT/tollgate-threads-$CL-r1.txt" ]; then
            echo "Tollgate CPU µs/request by thread at $CONNECTIONS connections, round 1 (top 5):"
            sed -n '2,6p' "$OUT/tollgate-threads-$CL-r1.txt" | sed 's/^/  /'
        fi
        # Start-up notices about generated secrets are expected; anything else is worth a look.
        warnings=$(grep -E '\b(WARN|ERROR)\b' "$OUT/tollgate.log" | grep -vc 'not configured: generated' || true)
        [ "$warnings" = 0 ] || echo "note: $warnings WARN/ERROR lines in tollgate.log"
    else
        echo "  (BENCH_ONLY=nginx: Tollgate not measured)"
    fi
    echo
    echo "raw outputs: ${OUT#"$ROOT"/}/"
} | tee "$OUT/summary.txt"
