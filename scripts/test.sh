#!/usr/bin/env bash
# THE one command that runs every test: formatting, lints, the workspace test
# suite against a real PostgreSQL, then optional extra CI checks.
#
#   scripts/test.sh          (CI runs it via `bash .ci/run`)
#
# PostgreSQL: $DATABASE_URL if reachable, else a project-owned cluster; see
# scripts/ensure-postgres.sh. Exits non-zero at the first failing stage.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

stage() { printf '\n==> [test.sh] %s\n' "$*" >&2; }

stage "ensure PostgreSQL"
# Assign and export separately: `export X="$(cmd)"` would hide a failure of cmd.
DATABASE_URL="$(scripts/ensure-postgres.sh)"
[[ -n "$DATABASE_URL" ]] || { echo "test.sh: ensure-postgres.sh printed no URL" >&2; exit 1; }
export DATABASE_URL
export LEDGER_TEST_DATABASE_URL="$DATABASE_URL"
printf 'using DATABASE_URL=%s\n' "$DATABASE_URL" >&2

# --locked (when a lock file is committed) makes a stale Cargo.lock an error
# instead of being silently rewritten. Applied to clippy too, otherwise clippy
# would update the lock file before `cargo test --locked` gets to check it.
locked=()
[[ -f Cargo.lock ]] && locked=(--locked)

stage "cargo fmt --all -- --check"
cargo fmt --all -- --check

stage "cargo clippy ${locked[*]:-}${locked[*]:+ }--workspace --all-targets -- -D warnings"
cargo clippy ${locked[@]+"${locked[@]}"} --workspace --all-targets -- -D warnings

stage "cargo test ${locked[*]:-}${locked[*]:+ }--workspace --all-targets"
cargo test ${locked[@]+"${locked[@]}"} --workspace --all-targets

# Suites that need a running service: the load smoke test (ci-extra.sh) and
# the short schemathesis run (ci-faults.sh).
for suite in scripts/ci-extra.sh scripts/ci-faults.sh; do
  if [[ -x "$suite" ]]; then
    stage "$suite"
    "$suite"
  elif [[ -e "$suite" ]]; then
    echo "test.sh: $suite exists but is not executable" >&2
    exit 1
  fi
done

stage "all tests passed"
