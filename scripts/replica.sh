#!/usr/bin/env bash
# A PostgreSQL primary and a streaming hot standby of it, owned by the
# project, on loopback ports of their own (never the machine's shared server
# on 5432: other people's tests run there).
#
#   scripts/replica.sh start           # both, idempotent; prints two lines:
#                                      #   primary=postgres://…:54341/postgres
#                                      #   replica=postgres://…:54342/postgres
#   scripts/replica.sh stop            # both (fast shutdown)
#   scripts/replica.sh status          # running or not, replay position and lag
#   scripts/replica.sh stop-replica    # the standby alone (failure tests)
#   scripts/replica.sh start-replica   # the standby alone, again
#   scripts/replica.sh destroy         # stop, then delete both data folders
#
# Data: ${LEDGER_REPLICA_DIR:-<repo>/.ledger/replica}/{primary,replica}
# (git-ignored). Ports: LEDGER_REPLICA_PRIMARY_PORT (54341) and
# LEDGER_REPLICA_PORT (54342). Trust authentication, superuser postgres,
# listening on 127.0.0.1 only.
#
# The standby is made with `pg_basebackup -R` (streaming, primary_conninfo
# written for it) and runs with hot_standby_feedback = on: its queries' xmin
# reaches the primary, so vacuum of ledger.horizon_marks (rows deleted every
# 100 ms) never removes a row version a standby query may still read, and a
# replay conflict cannot cancel that query. The cost is bounded by the
# service's statement_timeout (5 s): no standby query holds the primary's
# xmin back longer. The residual conflict, a replayed relation truncation
# (AccessExclusiveLock) by vacuum, cancels a standby query with SQLSTATE
# 40001; the service reads again on the primary then (see docs/design.md).
#
# Server binaries are found as scripts/ensure-postgres.sh finds them (the
# newest /usr/lib/postgresql/*/bin, installed with apt-get if none); as root
# the clusters run as the system user "ledgerpg" that script creates.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=replica

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
BASE="${LEDGER_REPLICA_DIR:-$REPO/.ledger/replica}"
PRIMARY_PORT="${LEDGER_REPLICA_PRIMARY_PORT:-54341}"
REPLICA_PORT="${LEDGER_REPLICA_PORT:-54342}"
PG_USER=ledgerpg
IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1

as_pg() {
  if (( IS_ROOT )); then
    (cd / && runuser -u "$PG_USER" -- "$@") 9>&-
  else
    "$@" 9>&-
  fi
}

find_bindir() {
  local initdb
  if ! initdb="$(pg_bin initdb)"; then
    # The same install as the project's own cluster.
    "$LIB_DIR/ensure-postgres.sh" >/dev/null || return 1
    initdb="$(pg_bin initdb)" || return 1
  fi
  BINDIR="$(dirname "$initdb")"
}

ensure_owner() {
  (( IS_ROOT )) || return 0
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --user-group "$PG_USER" >&2 \
      || die "could not create system user '$PG_USER'"
  fi
}

# Where the data lives: BASE, or a folder under /var/tmp when the cluster's
# owner cannot reach BASE (as in ensure-postgres.sh, no parent's
# permissions are loosened).
choose_base() {
  if (( IS_ROOT )); then
    mkdir -p "$BASE"
    if ! as_pg test -x "$BASE" 2>/dev/null; then
      BASE="/var/tmp/ledger-replica-$(printf '%s' "$BASE" | sha256sum | cut -c1-12)"
    fi
  fi
  PRIMARY_DIR="$BASE/primary"
  REPLICA_DIR="$BASE/replica"
  SOCKDIR="$BASE/run"
}

make_dir() {
  if (( IS_ROOT )); then
    install -d -m 700 -o "$PG_USER" -g "$PG_USER" "$1"
  else
    install -d -m 700 "$1"
  fi
}

running() { as_pg "$BINDIR/pg_ctl" status -D "$1" >/dev/null 2>&1; }

url() { printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$1"; }

start_server() {
  local dir="$1" port="$2" out
  running "$dir" && return 0
  if ! out="$(as_pg "$BINDIR/pg_ctl" start -D "$dir" -l "$dir/server.log" -w -t 60 \
                -o "-p $port -k '$SOCKDIR'" 2>&1)"; then
    printf '%s\n' "$out" >&2
    tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
    die "could not start PostgreSQL in $dir on port $port"
  fi
}

stop_server() {
  local dir="$1"
  [[ -f "$dir/PG_VERSION" ]] || return 0
  running "$dir" || return 0
  as_pg "$BINDIR/pg_ctl" stop -D "$dir" -m fast -w -t 60 >/dev/null \
    || die "could not stop PostgreSQL in $dir"
}

init_primary() {
  [[ -f "$PRIMARY_DIR/PG_VERSION" ]] && return 0
  FRESH_PRIMARY=1
  make_dir "$PRIMARY_DIR"
  log "initialising the primary in $PRIMARY_DIR"
  as_pg "$BINDIR/initdb" -D "$PRIMARY_DIR" -U postgres --auth=trust \
    --encoding=UTF8 --no-locale >/dev/null || die "initdb failed"
  # initdb's pg_hba.conf already lets loopback replication connections in
  # (trust). wal_keep_size lets a standby that was stopped for a while catch
  # up by streaming, without a replication slot that would keep WAL forever
  # once the standby is gone.
  cat >>"$PRIMARY_DIR/postgresql.conf" <<'EOF'

# --- added by scripts/replica.sh (ledger primary) ---
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 256MB
wal_level = replica
max_wal_senders = 4
wal_keep_size = '512MB'
EOF
}

init_replica() {
  # A standby of an earlier primary (its data folder was deleted) cannot
  # stream from this one: take a new base backup.
  if (( ${FRESH_PRIMARY:-0} )) && [[ -e "$REPLICA_DIR" ]]; then
    stop_server "$REPLICA_DIR"
    rm -rf "$REPLICA_DIR"
  fi
  [[ -f "$REPLICA_DIR/PG_VERSION" ]] && return 0
  make_dir "$REPLICA_DIR"
  log "taking a base backup of the primary into $REPLICA_DIR"
  as_pg "$BINDIR/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres \
    -D "$REPLICA_DIR" -R -X stream -c fast >/dev/null || die "pg_basebackup failed"
  # postgresql.auto.conf is read after postgresql.conf: these win.
  cat >>"$REPLICA_DIR/postgresql.auto.conf" <<'EOF'
# --- added by scripts/replica.sh (ledger hot standby) ---
hot_standby = on
hot_standby_feedback = on
EOF
}

wait_ready() {
  local port="$1" i
  for (( i = 0; i < 120; i++ )); do
    "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && return 0
    sleep 0.25
  done
  die "PostgreSQL on 127.0.0.1:$port not ready after 30 s"
}

lock() {
  command -v flock >/dev/null 2>&1 || return 0
  { exec 9>"${TMPDIR:-/tmp}/ledger-replica-$(id -u)-$(printf '%s' "$BASE" | sha256sum | cut -c1-12).lock"; } 2>/dev/null || return 0
  flock -w 120 9 || die "timed out waiting for another replica.sh run"
}

setup() {
  ensure_owner
  find_bindir || die "no PostgreSQL server binaries"
  choose_base
  lock
  make_dir "$BASE"
  make_dir "$SOCKDIR"
}

cmd_start() {
  setup
  init_primary
  start_server "$PRIMARY_DIR" "$PRIMARY_PORT"
  wait_ready "$PRIMARY_PORT"
  init_replica
  start_server "$REPLICA_DIR" "$REPLICA_PORT"
  wait_ready "$REPLICA_PORT"
  printf 'primary=%s\nreplica=%s\n' "$(url "$PRIMARY_PORT")" "$(url "$REPLICA_PORT")"
}

cmd_status() {
  setup
  local name dir port
  for name in primary replica; do
    if [[ "$name" == primary ]]; then dir="$PRIMARY_DIR" port="$PRIMARY_PORT"; else dir="$REPLICA_DIR" port="$REPLICA_PORT"; fi
    if running "$dir"; then printf '%s: running on %s\n' "$name" "$(url "$port")"; else printf '%s: stopped\n' "$name"; fi
  done
  if running "$PRIMARY_DIR"; then
    run_psql "$(url "$PRIMARY_PORT")" -Atc \
      "select 'streaming to ' || client_addr || ': replayed ' || replay_lsn || ', replay lag ' || coalesce(replay_lag::text, '0')
         from pg_stat_replication" || true
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) setup; stop_server "$REPLICA_DIR"; stop_server "$PRIMARY_DIR" ;;
  status) cmd_status ;;
  stop-replica) setup; stop_server "$REPLICA_DIR" ;;
  start-replica) setup; start_server "$REPLICA_DIR" "$REPLICA_PORT"; wait_ready "$REPLICA_PORT" ;;
  destroy)
    setup
    stop_server "$REPLICA_DIR"; stop_server "$PRIMARY_DIR"
    rm -rf "$PRIMARY_DIR" "$REPLICA_DIR"
    ;;
  -h | --help) header_help >&2 ;;
  *) die "usage: $0 start|stop|status|stop-replica|start-replica|destroy" ;;
esac
