#!/usr/bin/env bash
# Run one load scenario against a throwaway ledger service:
#
#   scripts/load.sh [--debug] [--pool-size N] [--keep-db] -- --scenario classic --users 50 --run-time 20s
#
# 1. builds `ledger` and `ledger-load` (release; --debug for a debug build,
#    e.g. in CI where the debug dependencies are built already);
# 2. makes PostgreSQL available (scripts/ensure-postgres.sh) and creates a
#    fresh database ledger_load_<port> (dropped afterwards unless --keep-db);
# 3. starts the service on a free loopback port, waits for /ready;
# 4. runs `ledger-load` with --host and --database-url filled in, plus the
#    arguments after `--` (see `ledger-load --help`);
# 5. stops the service (also on Ctrl-C or error) and exits with ledger-load's
#    status: non-zero on any real error or a failed ledger check.
#
# Sourced (`source scripts/load.sh`), it only defines the ll_* functions
# that scripts/bench.sh uses too.

ll_log() { printf '%s: %s\n' "${LL_NAME:-load}" "$*" >&2; }

# The admin URL with its database name replaced (query string kept).
ll_with_database() {
  local url="$1" name="$2" base query=""
  base="${url%%\?*}"
  [[ "$url" == *\?* ]] && query="?${url#*\?}"
  local scheme="${base%%://*}://" rest="${base#*://}"
  local authority="${rest%%/*}"
  printf '%s%s/%s%s\n' "$scheme" "$authority" "$name" "$query"
}

ll_find_psql() {
  command -v psql 2>/dev/null && return 0
  ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1
}

# psql quietly: no NOTICE for "does not exist, skipping".
ll_psql() {
  local psql
  psql="$(ll_find_psql)"
  PGOPTIONS='-c client_min_messages=warning' "$psql" -X -w -q -v ON_ERROR_STOP=1 "$@"
}

# A free TCP port on 127.0.0.1 (the kernel picks it; a race with another
# process taking it before the service binds is possible but unlikely).
ll_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ll_fresh_db ADMIN_URL NAME [TEMPLATE]: drop NAME if it exists, create it
# (as a copy of TEMPLATE when given).
ll_fresh_db() {
  local admin="$1" name="$2" template="${3:-}"
  [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || { ll_log "bad database name '$name'"; return 2; }
  ll_psql "$admin" -c "drop database if exists $name with (force)" >&2
  if [[ -n "$template" ]]; then
    ll_psql "$admin" -c "create database $name template $template" >&2
  else
    ll_psql "$admin" -c "create database $name" >&2
  fi
}

ll_drop_db() {
  local admin="$1" name="$2"
  ll_psql "$admin" -c "drop database if exists $name with (force)" >&2 || true
}

# ll_start_server BINARY DATABASE_URL PORT LOGFILE [POOL_SIZE]: starts the
# service in the background, sets LL_SERVER_PID, waits for /ready (60 s).
ll_start_server() {
  local binary="$1" url="$2" port="$3" logfile="$4" pool="${5:-32}" i
  DATABASE_URL="$url" LEDGER_LISTEN_ADDR="127.0.0.1:$port" LEDGER_POOL_SIZE="$pool" \
    RUST_LOG="${LEDGER_RUST_LOG:-warn}" LEDGER_LOG_FORMAT=json \
    "$binary" serve >"$logfile" 2>&1 &
  LL_SERVER_PID=$!
  for (( i = 0; i < 240; i++ )); do
    if ! kill -0 "$LL_SERVER_PID" 2>/dev/null; then
      ll_log "the service exited before it was ready; its log ($logfile):"
      tail -n 20 "$logfile" >&2
      LL_SERVER_PID=""
      return 1
    fi
    if curl -fsS -m 2 "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  ll_log "the service was not ready after 60 s; its log ($logfile):"
  tail -n 20 "$logfile" >&2
  ll_stop_server
  return 1
}

# Stops the service started by ll_start_server (SIGTERM, then SIGKILL after
# 35 s: it finishes in-flight requests within 30 s).
ll_stop_server() {
  local pid="${LL_SERVER_PID:-}" i
  [[ -n "$pid" ]] || return 0
  LL_SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < 140; i++ )); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.25
  done
  ll_log "the service did not stop within 35 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Sourced: functions only.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  return 0
fi

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LL_NAME=load

profile=release
pool_size="${LEDGER_POOL_SIZE:-32}"
keep_db=0
while (( $# > 0 )); do
  case "$1" in
    --debug) profile=debug; shift ;;
    --pool-size) pool_size="$2"; shift 2 ;;
    --keep-db) keep_db=1; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ll_log "unknown option '$1' (ledger-load's options go after --)"; exit 2 ;;
  esac
done

locked=()
[[ -f Cargo.lock ]] && locked=(--locked)
build=(cargo build ${locked[@]+"${locked[@]}"} -p ledger-server -p ledger-load)
[[ "$profile" == release ]] && build+=(--release)
ll_log "building (${build[*]})"
"${build[@]}" >&2

ADMIN_URL="$(scripts/ensure-postgres.sh)"
[[ -n "$ADMIN_URL" ]] || { ll_log "ensure-postgres.sh printed no URL"; exit 1; }
port="$(ll_free_port)"
db="ledger_load_$port"
logdir="target/load"
mkdir -p "$logdir"
server_log="$logdir/server-$port.log"

cleanup() {
  ll_stop_server
  if (( ! keep_db )); then ll_drop_db "$ADMIN_URL" "$db"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ll_fresh_db "$ADMIN_URL" "$db"
DB_URL="$(ll_with_database "$ADMIN_URL" "$db")"
ll_log "starting the service on 127.0.0.1:$port (database $db, pool $pool_size, log $server_log)"
ll_start_server "target/$profile/ledger" "$DB_URL" "$port" "$server_log" "$pool_size"

status=0
"target/$profile/ledger-load" --host "http://127.0.0.1:$port" --database-url "$DB_URL" "$@" || status=$?
if (( status != 0 )); then
  ll_log "ledger-load failed (exit $status); the service's log is $server_log"
fi
exit "$status"
