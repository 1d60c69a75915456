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
log "building the ledger (cargo build --release; the first build takes a few minutes)"
cargo build --release --locked -p ledger-server --bin ledger
LEDGER_BIN="${CARGO_TARGET_DIR:-target}/release/ledger"

# Every API call needs a key (LEDGER_AUTH=off aside). On the first start,
# make an admin key and show it once; keep it in an ignored file so that the
# README's walk-through (and you) can find it again.
KEY_FILE=".ledger/admin-key"
new_key="$(RUST_LOG=error "$LEDGER_BIN" keys bootstrap | grep '^lk_' || true)"
if [[ -n "$new_key" ]]; then
  mkdir -p "$(dirname "$KEY_FILE")"
  (umask 077 && printf '%s\n' "$new_key" > "$KEY_FILE")
  log "made an admin API key (shown once here; also saved in $KEY_FILE, git-ignored):"
  printf '\n    %s\n\n' "$new_key" >&2
elif [[ -f "$KEY_FILE" ]]; then
  log "an admin API key exists; the one made on the first start is in $KEY_FILE"
else
  log "an admin API key exists (make more with: $LEDGER_BIN keys create --scope …)"
fi
exec "$LEDGER_BIN" serve
