# shellcheck shell=bash
# Helpers shared by every script in scripts/: each lives here once.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # before any `cd`
#
# Sourcing only defines functions and a few constants: it changes no shell
# option and no directory, and starts nothing. The scripts set
# `set -euo pipefail` themselves; every helper here behaves the same with or
# without it (a helper that cannot do its job says why and returns non-zero,
# it never relies on `set -e` to stop half-way).
#
# LOG_NAME (default: the script's file name) prefixes every message.

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# The admin URL tried first: a local server with trust authentication.
# shellcheck disable=SC2034 # read by the scripts that source this file
DEFAULT_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
# `cargo --locked` when a lock file is committed: a stale Cargo.lock is then
# an error instead of being silently rewritten.
CARGO_LOCKED=()
[[ -f "$LIB_DIR/../Cargo.lock" ]] && CARGO_LOCKED=(--locked)

# --- messages ---------------------------------------------------------------

# log MESSAGE…: one line on stderr, prefixed with the script's name.
log() { printf '%s: %s\n' "${LOG_NAME:-${0##*/}}" "$*" >&2; }

# die MESSAGE…: log "error: MESSAGE" and exit 1.
die() { log "error: $*"; exit 1; }

# Prints the comment block at the top of the script (line 2 down to its
# `set -euo pipefail`), without the leading "# ": the script's --help.
header_help() { sed -n '2,/^set -euo pipefail/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

# --- PostgreSQL -------------------------------------------------------------

# pg_bin NAME: prints the path of the PostgreSQL program NAME (psql,
# pgbench, initdb, …): the newest Debian install
# (/usr/lib/postgresql/<major>/bin/NAME) first, so that every server-side
# program comes from one directory, else NAME on PATH. Prints nothing and
# returns 1 when there is none, so a caller can say so:
#   PSQL="$(pg_bin psql)" || die "psql not found"
pg_bin() {
  local name="$1" candidate found=()
  for candidate in /usr/lib/postgresql/*/bin/"$name"; do
    # An unmatched glob stays literal and fails this test.
    [[ -x "$candidate" ]] && found+=("$candidate")
  done
  if (( ${#found[@]} > 0 )); then
    printf '%s\n' "${found[@]}" | sort -V | tail -n 1
    return 0
  fi
  command -v "$name" 2>/dev/null || return 1
}

# admin_url: prints the admin URL of a reachable PostgreSQL server
# (scripts/ensure-postgres.sh: $DATABASE_URL if reachable, else the
# project's own cluster, installed and started if need be).
#   ADMIN_URL="$(admin_url)"   # assign, then export: `export X="$(…)"` hides a failure
admin_url() {
  local url
  url="$("$LIB_DIR/ensure-postgres.sh")" || return 1
  [[ -n "$url" ]] || { log "ensure-postgres.sh printed no URL"; return 1; }
  printf '%s\n' "$url"
}

# with_database URL NAME: the postgres URL with its database name replaced
# by NAME (user, host, port and query string kept), e.g.
#   postgres://u@h:5432/postgres?sslmode=disable -> postgres://u@h:5432/NAME?sslmode=disable
with_database() {
  local url="$1" name="$2" base query=""
  base="${url%%\?*}"
  [[ "$url" == *\?* ]] && query="?${url#*\?}"
  local scheme="${base%%://*}://" rest="${base#*://}"
  local authority="${rest%%/*}"
  printf '%s%s/%s%s\n' "$scheme" "$authority" "$name" "$query"
}

# run_psql URL ARGS…: psql (PSQL, else pg_bin's) without prompting for a
# password, without ~/.psqlrc, stopping at the first error, and without
# NOTICEs such as "does not exist, skipping".
run_psql() {
  local psql="${PSQL:-}"
  if [[ -z "$psql" ]]; then
    psql="$(pg_bin psql)" || { log "psql not found (Debian: apt-get install postgresql-client)"; return 1; }
  fi
  PGOPTIONS='-c client_min_messages=warning' "$psql" -X -w -q -v ON_ERROR_STOP=1 "$@"
}

# A database name these scripts put into SQL unquoted.
is_plain_identifier() { [[ "$1" =~ ^[a-z_][a-z0-9_]*$ ]]; }

# fresh_db ADMIN_URL NAME [TEMPLATE]: drops NAME if it exists and creates it
# (as a copy of TEMPLATE when given).
fresh_db() {
  local admin="$1" name="$2" template="${3:-}"
  is_plain_identifier "$name" || { log "bad database name '$name'"; return 2; }
  drop_db "$admin" "$name" || return 1
  if [[ -n "$template" ]]; then
    run_psql "$admin" -c "create database $name template $template" >&2
  else
    run_psql "$admin" -c "create database $name" >&2
  fi
}

# drop_db ADMIN_URL NAME: drops NAME if it exists, closing its connections.
drop_db() {
  local admin="$1" name="$2"
  is_plain_identifier "$name" || { log "bad database name '$name'"; return 2; }
  run_psql "$admin" -c "drop database if exists $name with (force)" >&2
}

# --- the service ------------------------------------------------------------

# A free TCP port on 127.0.0.1 (the kernel picks it; a race with another
# process taking it before the service binds is possible but unlikely).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_server BINARY DATABASE_URL PORT LOGFILE: starts `BINARY serve` in
# the background on 127.0.0.1:PORT, logging JSON to LOGFILE, sets SERVER_PID
# and waits (at most 60 s) until GET /ready answers 2xx. On failure it says
# why, shows the tail of LOGFILE, stops the service and returns 1.
# The service's RUST_LOG is LEDGER_RUST_LOG (default warn); any other
# LEDGER_* variable (LEDGER_POOL_SIZE, LEDGER_WORKERS, …) set in the
# environment, or before the call (`LEDGER_POOL_SIZE=8 start_server …`),
# reaches it too.
start_server() {
  local binary="$1" url="$2" port="$3" logfile="$4" ready_timeout_s=60 deadline
  DATABASE_URL="$url" LEDGER_LISTEN_ADDR="127.0.0.1:$port" LEDGER_LOG_FORMAT=json \
    RUST_LOG="${LEDGER_RUST_LOG:-warn}" "$binary" serve >"$logfile" 2>&1 &
  SERVER_PID=$!
  deadline=$(( SECONDS + ready_timeout_s ))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      log "the service exited before it was ready; the end of its log ($logfile):"
      tail -n 20 "$logfile" >&2
      return 1
    fi
    if curl -fsS -m 2 "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  log "the service was not ready after $ready_timeout_s s; the end of its log ($logfile):"
  tail -n 20 "$logfile" >&2
  stop_server
  return 1
}

# Stops the service started by start_server, if any (SIGTERM, then SIGKILL
# after 35 s: it finishes in-flight requests within 30 s).
stop_server() {
  local pid="${SERVER_PID:-}" i
  [[ -n "$pid" ]] || return 0
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < 140; i++ )); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.25
  done
  log "the service did not stop within 35 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# cargo_locked SUBCOMMAND ARGS…: cargo SUBCOMMAND, with --locked when
# Cargo.lock is committed (see CARGO_LOCKED).
cargo_locked() {
  local subcommand="$1"; shift
  cargo "$subcommand" ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} "$@"
}

# make_api_key BINARY DATABASE_URL [SCOPE] [NAME]: makes an API key on that
# database (`ledger keys create`) and prints its secret. The secret is the one
# stdout line that starts with lk_; logs are kept out of the way.
make_api_key() {
  local binary="$1" url="$2" scope="${3:-admin}" name="${4:-scripts}" key
  key="$(DATABASE_URL="$url" RUST_LOG=error "$binary" keys create --scope "$scope" --name "$name" \
           2>/dev/null | grep -m1 '^lk_')" || die "could not make an API key (ledger keys create failed)"
  printf '%s\n' "$key"
}
