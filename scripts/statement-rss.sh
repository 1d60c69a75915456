#!/usr/bin/env bash
# Peak memory of the server while it streams a statement of 1,000,000
# lines (issue 14): the figure in docs/design.md, "Finding transfers, and
# statements".
#
#   scripts/statement-rss.sh <fixture database URL> [path/to/ledger]
#
# The database must hold bench/transfer-queries-fixture.sql (run it on a
# PostgreSQL of its own: see that file). Starts the given `ledger` binary
# (default target/release/ledger) on a free loopback port with
# LEDGER_AUTH=off, reads its VmHWM, downloads the CSV statement of the
# fixture's account S over its whole history up to the final horizon,
# sampling VmRSS every 0.5 s, checks that the statement is complete (its
# last line is the `closing` record), and prints one line of figures.
# Bounded: the download has a 15-minute timeout; nothing leaves loopback.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=statement-rss

cd "$(dirname "${BASH_SOURCE[0]}")/.."

URL="${1:?usage: scripts/statement-rss.sh <fixture database URL> [path/to/ledger]}"
BINARY="${2:-target/release/ledger}"
PORT="${PORT:-$(free_port)}"
ACCOUNT=40000000-0000-4000-8000-000000000001
OUT="target/statement-rss/statement-$PORT.csv"
SERVER_LOG="target/statement-rss/server-$PORT.log"

[[ -x "$BINARY" ]] || { log "no executable at $BINARY"; exit 2; }
mkdir -p "$(dirname "$OUT")"
SAMPLER=""
cleanup() {
  [[ -n "$SAMPLER" ]] && kill "$SAMPLER" 2>/dev/null || true
  stop_server
  rm -f "$OUT"
}
trap cleanup EXIT

LEDGER_AUTH=off LEDGER_RUST_LOG=error start_server "$BINARY" "$URL" "$PORT" "$SERVER_LOG"
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$SERVER_PID/status"; }
TO="$(psql "$URL" -XAtc "select to_char(ledger.final_horizon() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")"
BEFORE_KB="$(hwm)"
( while kill -0 "$SERVER_PID" 2>/dev/null; do
    awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; sleep 0.5
  done ) > "$OUT.rss" &
SAMPLER=$!
STARTED=$(date +%s.%N)
STATUS="$(curl -s --max-time 900 -o "$OUT" -w '%{http_code}' \
  "http://127.0.0.1:$PORT/accounts/$ACCOUNT/statement?from=2000-01-01T00:00:00Z&to=$TO")"
ELAPSED=$(echo "$(date +%s.%N) - $STARTED" | bc)
kill "$SAMPLER"; SAMPLER=""
AFTER_KB="$(hwm)"
LINES="$(wc -l < "$OUT")"
BYTES="$(wc -c < "$OUT")"
LAST="$(tail -n 1 "$OUT" | cut -d, -f1)"
MAX_SAMPLED_KB="$(sort -n "$OUT.rss" | tail -n 1)"
rm -f "$OUT.rss"
printf 'statement-rss: binary=%s status=%s lines=%s bytes=%s last_record=%s peak_rss_before_kb=%s peak_rss_after_kb=%s max_sampled_rss_kb=%s seconds=%s\n' \
  "$BINARY" "$STATUS" "$LINES" "$BYTES" "$LAST" "$BEFORE_KB" "$AFTER_KB" "$MAX_SAMPLED_KB" "$ELAPSED"
[[ "$STATUS" == 200 && "$LAST" == closing ]]
