#!/usr/bin/env bash
# Make a PostgreSQL server available for development and tests.
#
#   export DATABASE_URL="$(scripts/ensure-postgres.sh)"   # ensure running, print admin URL
#   scripts/ensure-postgres.sh stop                       # stop the project-owned cluster
#
# Stdout carries ONLY the admin URL; every diagnostic goes to stderr. The script
# is idempotent and silent when everything is already in place.
#
# 1. If $DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) is
#    reachable, print it and exit. It is an *admin* URL: the tests create one
#    database per test through it, so its role needs CREATEDB (we warn if not).
# 2. Otherwise run a cluster owned by the project:
#      data dir  ${LEDGER_PGDATA:-<repo>/.pgdata}   (git-ignored)
#      port      ${LEDGER_PG_PORT:-54329}, listening on 127.0.0.1 only
#      socket    <data dir>/run
#      auth      trust (local + loopback), superuser "postgres"
#    installing the Debian "postgresql" package first if no server binaries
#    are present, and print postgres://postgres@127.0.0.1:<port>/postgres.
#
# initdb/postgres refuse to run as root. When invoked as root the cluster is
# owned by a system user "ledgerpg" (created on demand) and every server-side
# command runs through runuser. If that user cannot traverse the path to the
# data dir (e.g. the checkout lives under a 0700 home directory) we do NOT
# loosen permissions on the parent directories; the data dir moves to
# /var/tmp/ledger-pgdata-<hash of the intended data dir path> instead (a note
# is printed the first time).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=ensure-postgres

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PORT="${LEDGER_PG_PORT:-54329}"
PG_USER="ledgerpg"                       # OS user owning the cluster when run as root
REPO_HASH="$(printf '%s' "$REPO" | sha256sum | cut -c1-12)"
FALLBACK_URL="postgres://postgres@127.0.0.1:${PORT}/postgres"

IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1

check_port() {
  if [[ "$PORT" =~ ^[0-9]+$ ]] && (( PORT > 0 && PORT < 65536 )); then
    return 0
  fi
  die "LEDGER_PG_PORT must be a TCP port number, got '$PORT'"
}

# Run a command as the OS user owning the cluster (from / so that an
# unreadable current directory cannot trip initdb/pg_ctl).
as_pg() {
  if (( IS_ROOT )); then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u "$PG_USER" -- "$@") 9>&-
    else
      (cd / && su "$PG_USER" -s /bin/sh -c "$(printf '%q ' "$@")") 9>&-
    fi
  else
    "$@" 9>&-   # fd 9 is our lock; the postmaster must not inherit it
  fi
}

# ---------------------------------------------------------------------------
# Step 1: is the requested server reachable?
# ---------------------------------------------------------------------------
# Prints "t"/"f" (can the role create databases?) when reachable; fails otherwise.
probe_url() {
  local psql
  psql="$(pg_bin psql)" || return 1
  # -w: never prompt for a password (a prompt would hang callers doing $(...)).
  PGCONNECT_TIMEOUT=3 "$psql" "$1" -X -w -Atqc \
    "select rolsuper or rolcreatedb from pg_roles where rolname = current_user" 2>/dev/null
}

# ---------------------------------------------------------------------------
# Step 2 helpers: project-owned cluster
# ---------------------------------------------------------------------------
BINDIR=""
find_bindir() {
  # Prefer the binaries matching an existing cluster's major version.
  local ver
  if [[ -n "${PGDATA_DIR:-}" && -f "$PGDATA_DIR/PG_VERSION" ]]; then
    ver="$(cat "$PGDATA_DIR/PG_VERSION")"
    if [[ -x "/usr/lib/postgresql/$ver/bin/initdb" ]]; then
      BINDIR="/usr/lib/postgresql/$ver/bin"
      return 0
    fi
  fi
  local initdb
  initdb="$(pg_bin initdb)" || return 1
  BINDIR="$(dirname "$initdb")"
}

install_server() {
  command -v apt-get >/dev/null 2>&1 \
    || die "PostgreSQL server binaries (initdb) not found and apt-get is unavailable; install PostgreSQL server manually"
  local -a sudo=(env)
  if (( ! IS_ROOT )); then
    command -v sudo >/dev/null 2>&1 \
      || die "PostgreSQL server binaries not found; not root and sudo is missing. Run as root: apt-get install postgresql"
    if [[ -t 0 ]]; then sudo=(sudo env); else sudo=(sudo -n env); fi
  fi
  log "PostgreSQL server binaries not found; installing Debian package 'postgresql' (apt-get)..."
  # apt output must never reach stdout (stdout is reserved for the URL).
  { "${sudo[@]}" apt-get update -qq \
      && "${sudo[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2 \
    || die "apt-get install postgresql failed (needs root or passwordless sudo)"
  find_bindir || die "installed 'postgresql' but still cannot find initdb under /usr/lib/postgresql/*/bin"
}

ensure_pg_user() {
  (( IS_ROOT )) || return 0
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    log "creating system user '$PG_USER' to own the project cluster (postgres refuses to run as root)"
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --user-group "$PG_USER" >&2 \
      || die "could not create system user '$PG_USER'"
  fi
}

# Decide where the cluster lives; sets PGDATA_DIR. Creates nothing.
choose_pgdata() {
  local cand="${LEDGER_PGDATA:-$REPO/.pgdata}"
  [[ "$cand" == /* ]] || cand="$PWD/$cand"
  PGDATA_DIR="$cand"
  (( IS_ROOT )) || return 0
  # As root, the cluster runs as $PG_USER, who must be able to reach the data
  # dir. `test -x DIR` as that user succeeds only if every ancestor of DIR is
  # traversable and DIR itself is searchable.
  if ! as_pg test -x "$(dirname "$cand")" 2>/dev/null; then
    PGDATA_DIR="/var/tmp/ledger-pgdata-$(printf '%s' "$cand" | sha256sum | cut -c1-12)"
    if [[ ! -e "$PGDATA_DIR" ]]; then
      log "note: user '$PG_USER' cannot traverse $(dirname "$cand"); using $PGDATA_DIR instead"
    fi
  fi
}

# Make sure PGDATA_DIR exists and is writable by the cluster owner.
prepare_pgdata() {
  if (( IS_ROOT )); then
    if [[ ! -e "$PGDATA_DIR" ]]; then
      mkdir -p "$PGDATA_DIR"
      chown "$PG_USER:" "$PGDATA_DIR"
      chmod 700 "$PGDATA_DIR"
    elif [[ "$(stat -c %U "$PGDATA_DIR")" != "$PG_USER" ]]; then
      if [[ ! -f "$PGDATA_DIR/PG_VERSION" && -z "$(ls -A "$PGDATA_DIR")" ]]; then
        chown "$PG_USER:" "$PGDATA_DIR"
        chmod 700 "$PGDATA_DIR"
      else
        die "$PGDATA_DIR exists but is owned by $(stat -c %U "$PGDATA_DIR"), not '$PG_USER'; remove it or set LEDGER_PGDATA"
      fi
    fi
    as_pg test -w "$PGDATA_DIR" || die "user '$PG_USER' cannot write $PGDATA_DIR"
  else
    mkdir -p "$PGDATA_DIR"
    chmod 700 "$PGDATA_DIR"
    [[ -w "$PGDATA_DIR" ]] || die "cannot write $PGDATA_DIR"
  fi
}

# Unix socket paths are limited to ~107 bytes; fall back to a short dir.
choose_sockdir() {
  SOCKDIR="$PGDATA_DIR/run"
  if (( ${#SOCKDIR} + 20 > 100 )); then
    SOCKDIR="/tmp/ledger-pgsock-$REPO_HASH"
  fi
}

cluster_running() {
  # pg_ctl status: 0 = running, 3 = not running, 4 = no usable data dir.
  as_pg "$BINDIR/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

running_port() {
  # Line 4 of postmaster.pid is the port the postmaster listens on.
  sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true
}

init_cluster() {
  if [[ -n "$(ls -A "$PGDATA_DIR")" ]]; then
    die "$PGDATA_DIR has no PG_VERSION but is not empty; remove it (or set LEDGER_PGDATA) and retry"
  fi
  log "initialising project cluster in $PGDATA_DIR ($("$BINDIR/postgres" --version))"
  local out
  if ! out="$(as_pg "$BINDIR/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust \
                --encoding=UTF8 --no-locale 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "initdb failed for $PGDATA_DIR"
  fi
  # Port and socket dir are passed at start time (-p/-k) so they follow
  # LEDGER_PG_PORT and the checkout location; the rest is fixed here.
  cat >>"$PGDATA_DIR/postgresql.conf" <<'EOF'

# --- added by scripts/ensure-postgres.sh (ledger project cluster) ---
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 512MB
fsync = on
synchronous_commit = on
EOF
}

start_cluster() {
  [[ "$SOCKDIR" != *"'"* ]] || die "socket directory path contains a single quote: $SOCKDIR"
  if (( IS_ROOT )); then
    install -d -m 700 -o "$PG_USER" -g "$PG_USER" "$SOCKDIR"
  else
    install -d -m 700 "$SOCKDIR"
  fi
  local logfile="$PGDATA_DIR/server.log" out
  log "$REQUESTED_URL is not reachable; starting project cluster on 127.0.0.1:$PORT (data: $PGDATA_DIR)"
  if ! out="$(as_pg "$BINDIR/pg_ctl" start -D "$PGDATA_DIR" -l "$logfile" -w -t 60 \
                -o "-p $PORT -k '$SOCKDIR'" 2>&1)"; then
    printf '%s\n' "$out" >&2
    log "last lines of $logfile:"
    tail -n 20 "$logfile" >&2 2>/dev/null || true
    die "could not start PostgreSQL in $PGDATA_DIR on port $PORT"
  fi
}

wait_ready() {
  local i
  for (( i = 0; i < 60; i++ )); do
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres; then
      return 0
    fi
    sleep 0.5
  done
  tail -n 20 "$PGDATA_DIR/server.log" >&2 2>/dev/null || true
  die "PostgreSQL on 127.0.0.1:$PORT not ready after 30 s"
}

lock() {
  # Serialise concurrent invocations (e.g. parallel CI steps on one checkout).
  # Best effort: no flock or an unusable lock file just means no locking.
  command -v flock >/dev/null 2>&1 || return 0
  { exec 9>"${TMPDIR:-/tmp}/ledger-ensure-postgres-$(id -u)-$REPO_HASH.lock"; } 2>/dev/null || return 0
  flock -w 120 9 || die "timed out waiting for another ensure-postgres.sh run"
}

# ---------------------------------------------------------------------------
cmd_stop() {
  if (( IS_ROOT )) && ! id -u "$PG_USER" >/dev/null 2>&1; then
    return 0                                  # never set up -> nothing to stop
  fi
  choose_pgdata
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] || return 0
  find_bindir || return 0
  lock
  cluster_running || return 0
  local out
  if ! out="$(as_pg "$BINDIR/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 60 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "could not stop PostgreSQL in $PGDATA_DIR"
  fi
  log "stopped project cluster in $PGDATA_DIR"
}

cmd_ensure() {
  local url="${DATABASE_URL:-$DEFAULT_ADMIN_URL}" can_create
  if can_create="$(probe_url "$url")" && [[ -n "$can_create" ]]; then
    if [[ "$can_create" != t ]]; then
      log "warning: $url is reachable but its role lacks CREATEDB; tests that create databases will fail"
    fi
    printf '%s\n' "$url"
    return 0
  fi

  # Fallback: project-owned cluster. Silent unless something has to be done.
  REQUESTED_URL="$url"
  check_port
  lock
  ensure_pg_user
  choose_pgdata
  find_bindir || install_server
  choose_sockdir

  if [[ -f "$PGDATA_DIR/PG_VERSION" ]] && cluster_running; then
    local rport
    rport="$(running_port)"
    if [[ -n "$rport" && "$rport" != "$PORT" ]]; then
      die "project cluster in $PGDATA_DIR is already running on port $rport, not $PORT; run '$0 stop' or set LEDGER_PG_PORT=$rport"
    fi
  else
    prepare_pgdata
    [[ -f "$PGDATA_DIR/PG_VERSION" ]] || init_cluster
    start_cluster
  fi
  wait_ready
  printf '%s\n' "$FALLBACK_URL"
}

case "${1:-}" in
  "" | start) cmd_ensure ;;
  stop) cmd_stop ;;
  -h | --help) header_help >&2 ;;
  *) die "usage: $0 [start|stop]" ;;
esac
