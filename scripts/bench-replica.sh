#!/usr/bin/env bash
# `scripts/bench.sh --replica`: what one streaming replica adds to the
# classic user model. Two arms on the same primary (scripts/replica.sh: the
# project's own primary and hot standby on loopback, never the shared
# server), each on a fresh database, each the classic model with balance
# reads sending the user's last Ledger-Position (ledger-load
# --read-your-writes):
#
#   A  no replica: every read goes to the primary (the standby still
#      replays, so both arms pay for replication);
#   B  LEDGER_REPLICA_URLS set to the standby.
#
# Reports, per arm: requests/s, p50/p99 of all requests and of balance
# reads, and (B) the share of balance reads the replica served, from the
# service's /metrics (ledger_replica_reads_total / fallbacks). Writes
# bench/out/replica.json and bench/out/replica.md.
#
# Knobs: BENCH_REPLICA_USERS (1000), BENCH_REPLICA_SECS (60 per arm, after
# a ramp-up at BENCH_REPLICA_RATE = 100 users/s and a warm-up of
# BENCH_REPLICA_WARMUP = 10 s left out of the figures), BENCH_POOL_SIZE (32),
# BENCH_WORKERS (one per core), BENCH_PROFILE (release; `debug` reuses the
# test build when a release build is too dear, and the figures say so).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=bench-replica
cd "$(dirname "${BASH_SOURCE[0]}")/.."

USERS="${BENCH_REPLICA_USERS:-1000}"
SECS="${BENCH_REPLICA_SECS:-60}"
RATE="${BENCH_REPLICA_RATE:-100}"
WARMUP="${BENCH_REPLICA_WARMUP:-10}"
POOL_SIZE="${BENCH_POOL_SIZE:-32}"
WORKERS="${BENCH_WORKERS:-$(nproc)}"
for n in USERS SECS RATE WARMUP POOL_SIZE WORKERS; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || die "$n must be a whole number, got '${!n}'"
done
OUT=bench/out
mkdir -p "$OUT"

PROFILE="${BENCH_PROFILE:-release}"
case "$PROFILE" in
  release) cargo_locked build --release -p ledger-server -p ledger-load >&2 ;;
  debug) cargo_locked build -p ledger-server -p ledger-load >&2 ;;
  *) die "BENCH_PROFILE must be release or debug, got '$PROFILE'" ;;
esac
LEDGER="target/$PROFILE/ledger"
LOAD="target/$PROFILE/ledger-load"

urls="$(scripts/replica.sh start)"
PRIMARY="$(sed -n 's/^primary=//p' <<<"$urls")"
REPLICA="$(sed -n 's/^replica=//p' <<<"$urls")"
PORT="$(free_port)"
DBS=()
cleanup() {
  stop_server
  for db in "${DBS[@]}"; do drop_db "$PRIMARY" "$db" || true; done
  scripts/replica.sh stop || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The seed: migrated, with one admin key; each arm copies it.
SEED=ledger_bench_replica_seed
DBS+=("$SEED")
fresh_db "$PRIMARY" "$SEED"
SEED_URL="$(with_database "$PRIMARY" "$SEED")"
LEDGER_POOL_SIZE=4 start_server "$LEDGER" "$SEED_URL" "$PORT" "$OUT/server-replica-seed.log"
stop_server
LEDGER_API_KEY="$(make_api_key "$LEDGER" "$SEED_URL" admin bench)"
export LEDGER_API_KEY

metric() { # metric FILE NAME LABEL-FILTER: the sum of the matching samples
  awk -v name="$1" -v filter="$2" '$1 ~ "^"name"[{]" && $1 ~ filter { sum += $2 } END { print sum + 0 }' "$3"
}

arm() { # arm NAME REPLICA_URLS
  local name="$1" replicas="$2" db="ledger_bench_replica_$1" status=0 i
  DBS+=("$db")
  fresh_db "$PRIMARY" "$db" "$SEED"
  DB_URL="$(with_database "$PRIMARY" "$db")"
  # The new database reaches the standby by replay: wait for it there.
  for (( i = 0; i < 100; i++ )); do
    run_psql "$(with_database "$REPLICA" "$db")" -c 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  LEDGER_REPLICA_URLS="$replicas" LEDGER_WORKERS="$WORKERS" LEDGER_POOL_SIZE="$POOL_SIZE" \
    start_server "$LEDGER" "$DB_URL" "$PORT" "$OUT/server-replica-$name.log" || return 1
  log "arm $name: classic, $USERS users, ${SECS}s after a ${WARMUP}s warm-up, replicas: ${replicas:-none}"
  "$LOAD" --host "http://127.0.0.1:$PORT" --database-url "$DB_URL" \
    --scenario classic --read-your-writes --users "$USERS" --increase-rate "$RATE" \
    --run-time "$(( SECS + WARMUP ))s" --warmup "$WARMUP" \
    --report-file "$OUT/replica-$name.html" --stats-json "$OUT/replica-$name.json" --quiet \
    > "$OUT/replica-$name.txt" 2>&1 || status=$?
  curl -fsS -m 5 -H "Authorization: Bearer $LEDGER_API_KEY" \
    "http://127.0.0.1:$PORT/metrics" > "$OUT/replica-$name.metrics" || true
  stop_server
  sed -n '/=== ledger-load/,$p' "$OUT/replica-$name.txt" >&2
  printf '%s %s\n' \
    "$(metric ledger_replica_reads_total 'read="min_position"' "$OUT/replica-$name.metrics")" \
    "$(metric ledger_replica_fallbacks_total 'read="min_position"' "$OUT/replica-$name.metrics")" \
    > "$OUT/replica-$name.routed"
  return "$status"
}

failures=0
arm primary "" || failures=$((failures + 1))
arm replica "$(with_database "$REPLICA" "ledger_bench_replica_replica")" || failures=$((failures + 1))

python3 - "$OUT" "$USERS" "$SECS" "$WORKERS" "$POOL_SIZE" "$PROFILE" <<'EOF'
import json, os, sys
out, users, secs, workers, pool, profile = sys.argv[1:]
rows, result = [], {"profile": profile, "users": int(users), "seconds_per_arm": int(secs), "workers": int(workers),
                     "pool_size": int(pool), "cores": os.cpu_count(), "load_before": os.getloadavg(), "arms": {}}
for arm in ("primary", "replica"):
    s = json.load(open(f"{out}/replica-{arm}.json"))["summary"]
    by_replica, fallbacks = (int(float(x)) for x in open(f"{out}/replica-{arm}.routed").read().split())
    balance = s["by_kind"].get("balance", {})
    share = by_replica / (by_replica + fallbacks) if by_replica + fallbacks else 0.0
    figures = {
        "requests_per_s": s["all"].get("rate_per_s"), "p50_ms": s["all"].get("p50_ms"), "p99_ms": s["all"].get("p99_ms"),
        "balance_p50_ms": balance.get("p50_ms"), "balance_p99_ms": balance.get("p99_ms"),
        "balance_reads_by_replica": by_replica, "balance_reads_by_primary_after_trying": fallbacks,
        "replica_share": share, "errors": sum(s["errors_by_kind"].values()),
    }
    result["arms"][arm] = figures
    rows.append(f"| {arm} | {figures['requests_per_s']} | {figures['p50_ms']} | {figures['p99_ms']} | "
                f"{figures['balance_p99_ms']} | {100 * share:.1f} % ({by_replica}) | {figures['errors']} |")
a, b = result["arms"]["primary"], result["arms"]["replica"]
if a["p99_ms"] and b["p99_ms"]:
    result["p99_change"] = b["p99_ms"] / a["p99_ms"] - 1
json.dump(result, open(f"{out}/replica.json", "w"), indent=2)
table = "\n".join(["| arm | req/s | p50 ms | p99 ms | balance p99 ms | balance reads by the replica | errors |",
                   "| --- | --- | --- | --- | --- | --- | --- |", *rows])
open(f"{out}/replica.md", "w").write(table + "\n")
print(table)
if "p99_change" in result:
    print(f"p99 with the replica vs without: {100 * result['p99_change']:+.1f} %")
EOF
(( failures == 0 )) || die "$failures arm(s) saw real errors or a failed ledger check: see $OUT/replica-*.txt"
