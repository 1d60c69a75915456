#!/usr/bin/env bash
# A Citus coordinator and two workers on loopback (ports 54351, 54352,
# 54353), for the write-scaling experiment of docs/scaling.md. Citus is
# built from ../shared/vendor (build-citus.sh) into the machine's
# PostgreSQL 15; nothing of it is committed here.
#
#   bench/citus/cluster.sh start | stop | destroy
#
# Data under ${LEDGER_CITUS_DIR:-<repo>/.ledger/citus} (git-ignored); as
# root the nodes run as the system user "ledgerpg", like the project's
# other clusters.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
LOG_NAME=citus
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
BASE="${LEDGER_CITUS_DIR:-$REPO/.ledger/citus}"
PORTS=(54351 54352 54353)
NAMES=(coordinator worker1 worker2)
BINDIR="/usr/lib/postgresql/15/bin"
as_pg() { if [[ "$(id -u)" == 0 ]]; then (cd / && runuser -u ledgerpg -- "$@"); else "$@"; fi; }
mkd() { if [[ "$(id -u)" == 0 ]]; then install -d -m 700 -o ledgerpg -g ledgerpg "$1"; else install -d -m 700 "$1"; fi; }

start() {
  [[ -f "$("$BINDIR/pg_config" --pkglibdir)/citus.so" ]] \
    || die "citus is not installed: run ../shared/vendor/build-citus.sh"
  mkd "$BASE"; mkd "$BASE/run"
  local i dir
  for i in 0 1 2; do
    dir="$BASE/${NAMES[$i]}"
    if [[ ! -f "$dir/PG_VERSION" ]]; then
      mkd "$dir"
      as_pg "$BINDIR/initdb" -D "$dir" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
      cat >>"$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'citus'
max_connections = 200
max_prepared_transactions = 200
shared_buffers = 128MB
CONF
    fi
    as_pg "$BINDIR/pg_ctl" status -D "$dir" >/dev/null 2>&1 \
      || as_pg "$BINDIR/pg_ctl" start -D "$dir" -l "$dir/server.log" -w \
           -o "-p ${PORTS[$i]} -k $BASE/run" >/dev/null
  done
  for i in 0 1 2; do
    run_psql "postgres://postgres@127.0.0.1:${PORTS[$i]}/postgres" -c "create extension if not exists citus" >/dev/null
  done
  local coordinator="postgres://postgres@127.0.0.1:${PORTS[0]}/postgres"
  run_psql "$coordinator" -c "select citus_set_coordinator_host('127.0.0.1', ${PORTS[0]})" >/dev/null
  for i in 1 2; do
    run_psql "$coordinator" -Atc "select 1 from pg_dist_node where nodeport = ${PORTS[$i]}" | grep -q 1 \
      || run_psql "$coordinator" -c "select citus_add_node('127.0.0.1', ${PORTS[$i]})" >/dev/null
  done
  printf 'coordinator=%s\n' "$coordinator"
}

stop() {
  local i dir
  for i in 2 1 0; do
    dir="$BASE/${NAMES[$i]}"
    [[ -f "$dir/PG_VERSION" ]] || continue
    as_pg "$BINDIR/pg_ctl" status -D "$dir" >/dev/null 2>&1 || continue
    as_pg "$BINDIR/pg_ctl" stop -D "$dir" -m fast -w >/dev/null
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  destroy) stop; rm -rf "$BASE" ;;
  *) die "usage: $0 start|stop|destroy" ;;
esac
