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

reset=0
case "${1:-}" in
  "") ;;
  --reset) reset=1 ;;
  *) printf 'usage: %s [--reset]\n' "$0" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'serve: %s\n' "$*" >&2; }

# Assign and export separately: `export X="$(cmd)"` would hide a failure.
ADMIN_URL="$(scripts/ensure-postgres.sh)"
[[ -n "$ADMIN_URL" ]] || { log "ensure-postgres.sh printed no URL"; exit 1; }
DB_NAME="${LEDGER_DATABASE_NAME:-ledger}"
[[ "$DB_NAME" =~ ^[a-z_][a-z0-9_]*$ ]] || { log "LEDGER_DATABASE_NAME must be a plain lower-case identifier, got '$DB_NAME'"; exit 2; }

# The admin URL with its database name replaced (query string kept).
with_database() {
  local url="$1" name="$2" base query=""
  base="${url%%\?*}"
  [[ "$url" == *\?* ]] && query="?${url#*\?}"
  local scheme="${base%%://*}://" rest="${base#*://}"
  local authority="${rest%%/*}"
  printf '%s%s/%s%s\n' "$scheme" "$authority" "$name" "$query"
}

find_psql() {
  command -v psql 2>/dev/null && return 0
  ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n1
}
PSQL="$(find_psql)"
[[ -n "$PSQL" ]] || { log "psql not found (ensure-postgres.sh should have installed it)"; exit 1; }

if (( reset )); then
  log "dropping database $DB_NAME (--reset)"
  "$PSQL" "$ADMIN_URL" -X -w -qc "drop database if exists $DB_NAME with (force)" >&2
fi
exists="$("$PSQL" "$ADMIN_URL" -X -w -Atqc "select 1 from pg_database where datname = '$DB_NAME'")"
if [[ "$exists" != 1 ]]; then
  log "creating database $DB_NAME"
  "$PSQL" "$ADMIN_URL" -X -w -qc "create database $DB_NAME" >&2
fi

DATABASE_URL="$(with_database "$ADMIN_URL" "$DB_NAME")"
export DATABASE_URL
log "database: $DATABASE_URL"
log "building and starting the ledger (cargo run --release; the first build takes a few minutes)"
exec cargo run --release --locked -p ledger-server --bin ledger -- serve
