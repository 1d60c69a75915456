#!/usr/bin/env bash
# The replica suite (tests/replica): starts the project's own primary and
# streaming standby (scripts/replica.sh, loopback ports 54341/54342, never
# the shared server), runs the suite against them one test at a time (the
# tests pause the standby's replay, which the whole standby shares), and
# stops them. Bounded: the suite is killed after 10 minutes.
#
#   scripts/replica-tests.sh            (scripts/test.sh runs it)
#   scripts/replica-tests.sh NAME       only the tests whose name has NAME
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=replica-tests
cd "$(dirname "${BASH_SOURCE[0]}")/.."

urls="$(scripts/replica.sh start)"
trap 'scripts/replica.sh stop || true' EXIT
primary="$(sed -n 's/^primary=//p' <<<"$urls")"
replica="$(sed -n 's/^replica=//p' <<<"$urls")"
[[ -n "$primary" && -n "$replica" ]] || die "replica.sh start printed no URLs"

LEDGER_TEST_DATABASE_URL="$primary" DATABASE_URL="$primary" \
LEDGER_TEST_REPLICA_URL="$replica" LEDGER_TEST_REPLICA_CTL="$PWD/scripts/replica.sh" \
LEDGER_TEST_REPLICA_REQUIRED=1 \
  timeout --signal=TERM --kill-after=30 600 \
  cargo test ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} -p ledger-api-tests --test replica -- \
    --test-threads=1 --nocapture "$@"
