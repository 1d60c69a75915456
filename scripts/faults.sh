#!/usr/bin/env bash
# The fault suites, with what each did:
#
#   scripts/faults.sh                 crash, database loss, pool exhaustion
#   scripts/faults.sh crash           only the tests whose name matches "crash"…
#   FAULTS_SEED=<n> scripts/faults.sh replays the random choices of a run
#
# Runs crates/ledger-server/tests/faults.rs (the same tests `cargo test`
# runs in CI) one test at a time with their output shown, then repeats the
# summary line each printed:
#
# - crash: 32 writers with an Idempotency-Key per logical transfer; the
#   server is killed with SIGKILL 3-5 times at random moments and restarted
#   on the same port, each restart answering /ready within 1 s of the kill;
# - database loss: the test's own PostgreSQL cluster (under target/tmp,
#   started and stopped through scripts/ensure-postgres.sh on a free
#   loopback port) is stopped mid-load for 4 s and started again;
# - pool exhaustion: a pool of 4 behind an ACCESS EXCLUSIVE table lock,
#   50 concurrent requests per round, 5 rounds, RSS measured.
#
# Everything stays on 127.0.0.1 and stops by itself (about 40 s in all,
# after the build). PostgreSQL for the test databases: $DATABASE_URL if
# reachable, else the project's cluster (scripts/ensure-postgres.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=faults.sh

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DATABASE_URL="$(admin_url)"
export DATABASE_URL
export LEDGER_TEST_DATABASE_URL="$DATABASE_URL"
# The database-loss test needs PostgreSQL server binaries; here, missing
# ones are an error rather than a skip.
export LEDGER_FAULTS_REQUIRE_PG=1

out="$(mktemp)"
trap 'rm -f "$out"' EXIT

status=0
cargo_locked test -p ledger-server --test faults -- \
  --nocapture --test-threads=1 "$@" 2>&1 | tee "$out" || status=$?

printf '\n==> [faults.sh] summaries\n'
grep -oE '(crash|database loss|pool exhaustion|pool round [0-9]+): .*' "$out" || echo "(no summary printed)"
exit "$status"
