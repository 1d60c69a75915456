#!/usr/bin/env bash
# The Citus experiment of docs/scaling.md, on bench/citus/cluster.sh's
# coordinator + two workers. Prints what worked and what did not; its
# output of 2026-11-30 is quoted in docs/scaling.md.
#
#   bench/citus/cluster.sh start && bench/citus/try.sh
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
LOG_NAME=citus-try
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
COORDINATOR="postgres://postgres@127.0.0.1:54351/postgres"
psql_c() { PGOPTIONS='-c client_min_messages=warning' "$(pg_bin psql)" -X -w "$@"; }

# make_db NAME: a fresh database NAME on every node, with the extension,
# and the workers registered in its metadata (Citus's metadata is per
# database).
make_db() {
  local name="$1" port
  for port in 54351 54352 54353; do
    psql_c "postgres://postgres@127.0.0.1:$port/postgres" -q \
      -c "drop database if exists $name with (force)" -c "create database $name"
    psql_c "postgres://postgres@127.0.0.1:$port/$name" -qc "create extension citus"
    # V1 grants to this role; Citus sends the grants to the workers, which
    # need the role (roles are per node, and this one predates the cluster).
    psql_c "postgres://postgres@127.0.0.1:$port/postgres" -qc \
      "do \$\$ begin if not exists (select from pg_roles where rolname = 'ledger_app') then create role ledger_app nologin; end if; end \$\$"
  done
  psql_c "postgres://postgres@127.0.0.1:54351/$name" -qAt \
    -c "select citus_set_coordinator_host('127.0.0.1', 54351)" \
    -c "select citus_add_node('127.0.0.1', 54352)" \
    -c "select citus_add_node('127.0.0.1', 54353)" >/dev/null
}

echo "=== step 1: today's schema, distributed as it stands"
make_db ledger_as_is
AS_IS="$(with_database "$COORDINATOR" ledger_as_is)"
DATABASE_URL="$AS_IS" RUST_LOG=error target/debug/ledger migrate || die "migrate failed"
psql_c "$AS_IS" -f bench/citus/distribute-as-is.sql 2>&1

echo
echo "=== step 2: the proposed schema step"
make_db ledger_split
SPLIT="$(with_database "$COORDINATOR" ledger_split)"
psql_c "$SPLIT" -q -f bench/citus/schema.sql 2>&1 | grep -v '^$' | head -20
for port in 54352 54353; do
  psql_c "postgres://postgres@127.0.0.1:$port/ledger_split" -q -f bench/citus/horizon.sql
done
psql_c "$SPLIT" -f bench/citus/transfer.sql 2>&1
