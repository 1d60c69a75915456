#!/usr/bin/env bash
# Peak memory of the server under concurrent large page requests (issue 9,
# item 7): the figure in the README's Reliability section.
#
#   scripts/page-rss.sh [path/to/ledger]     (default: target/release/ledger)
#
# 1. creates a fresh database on $ADMIN_URL (default: the local trust server),
#    starts the given `ledger` binary on a free loopback port against it;
# 2. writes ROWS deposits (default 1000) into one account, each with a
#    16,000-byte metadata note, through the API;
# 3. sends ROUNDS (default 3) waves of CONCURRENCY (default 30) simultaneous
#    `GET /accounts/{id}/transfers?limit=1000` over loopback, and reads the
#    server's peak resident set (VmHWM) before and after;
# 4. prints one line of figures, stops the server and drops the database.
# Bounded: every curl has a 60 s timeout; nothing leaves loopback.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=page-rss

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BINARY="${1:-target/release/ledger}"
ADMIN_URL="${ADMIN_URL:-$DEFAULT_ADMIN_URL}"
ROWS="${ROWS:-1000}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-30}"
PORT="${PORT:-$(free_port)}"
DB="ledger_rss_$$"
BASE="http://127.0.0.1:$PORT"
SERVER_LOG="target/page-rss/server-$PORT.log"

[[ -x "$BINARY" ]] || { log "no executable at $BINARY"; exit 2; }
mkdir -p "$(dirname "$SERVER_LOG")"

fresh_db "$ADMIN_URL" "$DB"
started=0
cleanup() {
  stop_server
  drop_db "$ADMIN_URL" "$DB" || true
  # The server logs at level error only: anything in its log is news.
  if (( started )) && [[ -s "$SERVER_LOG" ]]; then
    log "the server logged errors ($SERVER_LOG):"
    tail -n 20 "$SERVER_LOG" >&2
  fi
}
trap cleanup EXIT

LEDGER_RUST_LOG=error start_server "$BINARY" "$(with_database "$ADMIN_URL" "$DB")" "$PORT" "$SERVER_LOG"
started=1

hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$SERVER_PID/status"; }

ACCOUNT="$(curl -sf -X POST "$BASE/accounts" -H 'content-type: application/json' -d '{}' \
  | sed -E 's/.*"id":"([^"]+)".*/\1/')"
NOTE="$(head -c 16000 /dev/zero | tr '\0' 'x')"
BODY="{\"amount\":\"1\",\"metadata\":{\"note\":\"$NOTE\"}}"
log "writing $ROWS deposits of 16 kB metadata into $ACCOUNT"
for _ in $(seq "$ROWS"); do
  curl -sf -o /dev/null -X POST "$BASE/accounts/$ACCOUNT/deposits" \
    -H 'content-type: application/json' --data-binary "$BODY"
done

BEFORE_KB="$(hwm)"
PAGE_BYTES="$(curl -sf --max-time 60 "$BASE/accounts/$ACCOUNT/transfers?limit=1000" | wc -c)"
log "one page is $PAGE_BYTES bytes; $ROUNDS waves of $CONCURRENCY concurrent requests"
STARTED=$(date +%s.%N)
STATUSES="$(for _ in $(seq "$ROUNDS"); do
  seq "$CONCURRENCY" | xargs -P "$CONCURRENCY" -I{} \
    curl -s --max-time 60 -o /dev/null -w '%{http_code}\n' \
      "$BASE/accounts/$ACCOUNT/transfers?limit=1000" || true
done | sort | uniq -c | awk '{ printf "%s%sx%s", sep, $1, $2; sep="," }')"
ELAPSED=$(echo "$(date +%s.%N) - $STARTED" | bc)
AFTER_KB="$(hwm)"
printf 'page-rss: binary=%s rows=%s page_bytes=%s concurrency=%s rounds=%s statuses=%s peak_rss_before_pages_mb=%s peak_rss_mb=%s seconds=%s\n' \
  "$BINARY" "$ROWS" "$PAGE_BYTES" "$CONCURRENCY" "$ROUNDS" "$STATUSES" \
  "$((BEFORE_KB / 1024))" "$((AFTER_KB / 1024))" "$ELAPSED"
