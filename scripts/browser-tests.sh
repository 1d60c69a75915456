#!/usr/bin/env bash
# The web console's scenarios in a real browser (scripts/test.sh runs it):
# headless Chromium from Debian's `chromium` package, driven by the npm
# package playwright-core (pinned in tests/browser/package-lock.json), against
# the real `ledger` service on a free loopback port and a fresh database.
#
#   scripts/browser-tests.sh            build, start, run every scenario, stop
#
# Installs what is missing, and only that: `chromium` (and node/npm) with
# apt-get, the npm packages with `npm ci`. Screenshots go to the ignored
# tests/browser/screenshots/; the service's log to target/browser/.
# Bounded: the scenarios get 300 s, the whole script about 10 minutes.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=browser-tests.sh
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[[ "${1:-}" == -h || "${1:-}" == --help ]] && { header_help; exit 0; }

# apt_install PACKAGE…: installs Debian packages (as root, or through sudo).
apt_install() {
  local sudo=()
  if (( EUID != 0 )); then
    command -v sudo >/dev/null || die "$* missing, and not root to apt-get install it"
    sudo=(sudo)
  fi
  log "installing $* with apt-get"
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2
}

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] || apt_install chromium fonts-liberation
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm

# `npm ci` installs exactly the locked versions; skipped while the lock file
# is the one last installed (a copy is kept next to the packages).
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock.json; then
  log "npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.installed-lock.json) >&2
fi

log "building the ledger binary"
cargo_locked build -p ledger-server --bin ledger >&2
BIN=target/debug/ledger

ADMIN_URL="$(admin_url)"
port="$(free_port)"
db="ledger_browser_$port"
mkdir -p target/browser
server_log="target/browser/server-$port.log"

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  stop_server
  drop_db "$ADMIN_URL" "$db" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fresh_db "$ADMIN_URL" "$db"
DB_URL="$(with_database "$ADMIN_URL" "$db")"
log "starting the service on 127.0.0.1:$port (database $db, log $server_log)"
start_server "$BIN" "$DB_URL" "$port" "$server_log"

# Assigned, then exported: `export X="$(…)"` would hide a failure.
ADMIN_KEY="$(make_api_key "$BIN" "$DB_URL" admin console-admin)"
READ_KEY="$(make_api_key "$BIN" "$DB_URL" read console-reader)"
export ADMIN_KEY READ_KEY CHROMIUM LEDGER_URL="http://127.0.0.1:$port"
timeout --signal=TERM --kill-after=10 300 node tests/browser/scenarios.mjs
