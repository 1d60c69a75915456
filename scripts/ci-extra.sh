#!/usr/bin/env bash
# CI smoke of the load scenarios (scripts/test.sh runs it last): the classic
# user model, 50 users for 20 s, against the real service on a free loopback
# port and a fresh database. Fails on any failed request (in the classic
# model every non-2xx is a real error) or a failed ledger check (balances
# sum to zero, none negative, one log row per 201 seen). scripts/load.sh
# waits for /ready and stops the service on exit, whatever happens.
#
# Debug build: `cargo test` has built its dependencies already, so this
# costs seconds, not the minutes of a release build.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mkdir -p target/load
exec timeout --signal=TERM --kill-after=60 600 \
  scripts/load.sh --debug -- \
  --scenario classic --users 50 --increase-rate 25 --run-time 20s \
  --report-file target/load/ci-classic.html --stats-json target/load/ci-classic.json \
  --quiet --no-print-metrics
