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
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=load
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
pool_size="${LEDGER_POOL_SIZE:-32}"
keep_db=0
while (( $# > 0 )); do
  case "$1" in
    --debug) profile=debug; shift ;;
    --pool-size) pool_size="$2"; shift 2 ;;
    --keep-db) keep_db=1; shift ;;
    --) shift; break ;;
    -h | --help) header_help; exit 0 ;;
    *) log "unknown option '$1' (ledger-load's options go after --)"; exit 2 ;;
  esac
done

build=(build -p ledger-server -p ledger-load)
[[ "$profile" == release ]] && build+=(--release)
log "building (cargo ${build[*]}${CARGO_LOCKED[*]:+ ${CARGO_LOCKED[*]}})"
cargo_locked "${build[@]}" >&2

ADMIN_URL="$(admin_url)"
port="$(free_port)"
db="ledger_load_$port"
logdir="target/load"
mkdir -p "$logdir"
server_log="$logdir/server-$port.log"

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  stop_server
  if (( ! keep_db )); then drop_db "$ADMIN_URL" "$db" || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fresh_db "$ADMIN_URL" "$db"
DB_URL="$(with_database "$ADMIN_URL" "$db")"
log "starting the service on 127.0.0.1:$port (database $db, pool $pool_size, log $server_log)"
LEDGER_POOL_SIZE="$pool_size" start_server "target/$profile/ledger" "$DB_URL" "$port" "$server_log"
# The simulated users and the setup send this key (see locust/src/auth.rs).
LEDGER_API_KEY="$(make_api_key "target/$profile/ledger" "$DB_URL" admin load)"
export LEDGER_API_KEY

status=0
"target/$profile/ledger-load" --host "http://127.0.0.1:$port" --database-url "$DB_URL" "$@" || status=$?
if (( status != 0 )); then
  log "ledger-load failed (exit $status); the service's log is $server_log"
fi
exit "$status"
