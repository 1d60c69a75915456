#!/usr/bin/env bash
# THE one command that runs every test: formatting, lints, the workspace test
# suite against a real PostgreSQL, then optional extra CI checks.
#
#   scripts/test.sh          (CI runs it via `bash .ci/run`)
#
# PostgreSQL: $DATABASE_URL if reachable, else a project-owned cluster; see
# scripts/ensure-postgres.sh. Exits non-zero at the first failing stage.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=test.sh

cd "$(dirname "${BASH_SOURCE[0]}")/.."

stage() { printf '\n==> [test.sh] %s\n' "$*" >&2; }

stage "ensure PostgreSQL"
# Assign and export separately: `export X="$(cmd)"` would hide a failure of cmd.
DATABASE_URL="$(admin_url)"
export DATABASE_URL
export LEDGER_TEST_DATABASE_URL="$DATABASE_URL"
printf 'using DATABASE_URL=%s\n' "$DATABASE_URL" >&2

stage "cargo fmt --all -- --check"
cargo fmt --all -- --check

# cargo_locked (scripts/lib.sh) passes --locked when a lock file is committed,
# to clippy too: otherwise clippy would update the lock file before
# `cargo test --locked` gets to check it.
stage "cargo clippy ${CARGO_LOCKED[*]:-}${CARGO_LOCKED[*]:+ }--workspace --all-targets -- -D warnings"
cargo_locked clippy --workspace --all-targets -- -D warnings

stage "cargo test ${CARGO_LOCKED[*]:-}${CARGO_LOCKED[*]:+ }--workspace --all-targets"
cargo_locked test --workspace --all-targets

# Suites that need a running service: the load smoke test (ci-extra.sh),
# the short schemathesis run (ci-faults.sh), reads on a real streaming
# replica (replica-tests.sh: its own primary and standby, about 30 s) and the
# web console's scenarios in headless Chromium (browser-tests.sh, about a
# minute once installed).
for suite in scripts/ci-extra.sh scripts/ci-faults.sh scripts/replica-tests.sh scripts/browser-tests.sh; do
  if [[ -x "$suite" ]]; then
    stage "$suite"
    "$suite"
  elif [[ -e "$suite" ]]; then
    log "$suite exists but is not executable"
    exit 1
  fi
done

stage "all tests passed"
