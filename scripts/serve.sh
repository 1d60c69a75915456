#!/usr/bin/env bash
# THE one command that brings the whole service up on a fresh machine:
#
#   scripts/serve.sh
#
# 1. makes PostgreSQL available (scripts/ensure-postgres.sh: $DATABASE_URL if
#    reachable, else a project-owned cluster), which yields an admin URL;
# 2. creates the database `ledger` on that server unless it exists
#    (LEDGER_DATABASE_NAME overrides the name);
# 3. builds and runs `ledger serve` (release) against it: the server migrates
#    the database, then logs `listening on http://…`.
#
# Every LEDGER_* variable in the environment is passed through (see the
# README's Configuration section), e.g. LEDGER_LISTEN_ADDR=0.0.0.0:8080.
#
#   scripts/serve.sh --reset   drops the development database first. Needed
#   once when `ledger` says the database "was created by an older development
#   schema": before the first release the migrations were reshaped in place
#   (from then on they only move forward).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=serve

reset=0
case "${1:-}" in
  "") ;;
  --reset) reset=1 ;;
  *) printf 'usage: %s [--reset]\n' "$0" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ADMIN_URL="$(admin_url)"
DB_NAME="${LEDGER_DATABASE_NAME:-ledger}"
is_plain_identifier "$DB_NAME" || { log "LEDGER_DATABASE_NAME must be a plain lower-case identifier, got '$DB_NAME'"; exit 2; }
PSQL="$(pg_bin psql)" || { log "psql not found (ensure-postgres.sh should have installed it)"; exit 1; }

if (( reset )); then
  log "dropping database $DB_NAME (--reset)"
  drop_db "$ADMIN_URL" "$DB_NAME"
fi
exists="$(run_psql "$ADMIN_URL" -Atc "select 1 from pg_database where datname = '$DB_NAME'")"
if [[ "$exists" != 1 ]]; then
  log "creating database $DB_NAME"
  run_psql "$ADMIN_URL" -c "create database $DB_NAME" >&2
fi

DATABASE_URL="$(with_database "$ADMIN_URL" "$DB_NAME")"
export DATABASE_URL
log "database: $DATABASE_URL"
log "building and starting the ledger (cargo run --release; the first build takes a few minutes)"
exec cargo run --release --locked -p ledger-server --bin ledger -- serve
