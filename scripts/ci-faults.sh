#!/usr/bin/env bash
# The part of the reliability suites that `cargo test` does not run, in its
# CI size: a short schemathesis run (about 600 generated requests, one
# worker, ~20 s after the first install of the locked Python environment
# into target/; a crash of schemathesis itself is retried once, a failure
# never: see scripts/schemathesis.sh).
#
#   scripts/ci-faults.sh
#
# The fault tests (crates/ledger-server/tests/faults.rs) and the
# hostile-input tests (tests/hostile_input.rs) are ordinary cargo tests and
# already run in `cargo test --workspace`. The full runs are
# scripts/faults.sh and scripts/schemathesis.sh (≥ 5,000 requests).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCHEMATHESIS_MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-10}" \
  SCHEMATHESIS_MIN_REQUESTS="${SCHEMATHESIS_MIN_REQUESTS:-300}" \
  scripts/schemathesis.sh
