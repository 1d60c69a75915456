#!/usr/bin/env bash
# THE benchmark: one command, one machine, one run (about 9 minutes after
# the build; the default stays under 15 minutes from a fresh clone).
#
#   scripts/bench.sh               # everything below
#   scripts/bench.sh --quick       # 20 s phases, classic at 300 users: a ~3 min check of the bench itself
#   scripts/bench.sh --find-knee   # only step 5: classic users up until p99 > 100 ms
#   scripts/bench.sh --replica     # the classic model with and without a streaming replica
#                                  # (scripts/bench-replica.sh: ~3 min, its own primary + standby)
#
# 0. builds `ledger` and `ledger-load` in release, makes PostgreSQL available
#    (scripts/ensure-postgres.sh) and seeds a database with the pool of
#    BENCH_ACCOUNTS funded accounts (opening them is timed: each is a deposit
#    from the system account). Every phase below runs on its own copy of it
#    (CREATE DATABASE … TEMPLATE), against a freshly started service;
# 1. PostgreSQL's limit for the write path: pgbench -M prepared, 64 clients,
#    running exactly the store's statements (`ledger-load pgbench-script`,
#    from ledger_store::sql). The figure is inserted rows per second;
# 2. the same work over HTTP: the throughput scenario, 64 users, no pauses;
# 3. the hot account: 64 users all transferring out of ONE account, and a
#    Zipf-skewed run over 8 accounts with small balances (where
#    insufficient_funds is an expected answer); then 64 users depositing into
#    random accounts, every deposit out of the currency's system account;
#    then BATCH_USERS (1) user posting atomic batches of BATCH_LEGS (1000)
#    transfers over the pool (`batch.transfers_per_s`, and
#    `batch_over_reference` against the reference's 100-row batches). One
#    user by default: 1,000-leg batches over the same accounts contend for
#    the same sequence numbers and retry (measured on 2,000 accounts, 20 s:
#    1 user 7.6 batches/s, 2 users 3.5/s, 4 users 2.5/s);
#    then the cards scenario: CARDS_USERS (200) users each authorizing a
#    payment (a hold), settling it at their next turn (capture 9 in 10, void
#    1 in 10) and checking their balance between, 0.2–1 s pauses, with the
#    ledger check after it like every phase;
# 4. the classic user model at 1000 users (1–3 s pauses);
# 5. (--find-knee) the classic model at 1000, 1500, 2000, … users until the
#    p99 passes 100 ms.
# Then prints one table (with the HTTP/PostgreSQL and hot/uniform ratios),
# and writes bench/out/results.json, bench/out/results.md and
# bench/out/plot.svg (throughput and latency over time), next to goose's
# HTML reports and the raw logs. The machine (cores, memory, load) is
# recorded with the figures: load generator, service and PostgreSQL share it.
#
# Before step 1, ../shared/bench-reference/run.sh (BENCH_REFERENCE) measures
# PostgreSQL's own append limit on the same server (REFERENCE_SECS, 30 s per
# script); results.json's `ratios` state the store and HTTP figures as
# fractions of it (store_over_reference, http_over_reference).
#
# Knobs (environment): BENCH_SECS (60: pgbench and HTTP throughput),
# BENCH_CLIENTS (64), BENCH_ACCOUNTS (10000), BENCH_HOT_SECS (30),
# BENCH_CLASSIC_USERS (1000), BENCH_CLASSIC_SECS (120, after a ramp-up of
# users/BENCH_CLASSIC_RATE s), BENCH_CLASSIC_RATE (100 users/s),
# BENCH_POOL_SIZE (service pool, 32), BENCH_WORKERS (actix workers, one per
# core), KNEE_START (1000), KNEE_STEP (500), KNEE_MAX (4000), KNEE_SECS (60),
# KNEE_RATE (50 users/s: each new user opens an account, and opens serialize
# on the system account; at 100/s with thousands of users already running
# they exhaust the service's pool during the ramp-up), KNEE_WARMUP (15 s
# after the ramp-up, left out of the figures while its backlog drains),
# BENCH_KEEP_DBS=1 keeps the databases for inspection.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=bench

cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=full
case "${1:-}" in
  "") ;;
  --quick) mode=quick ;;
  --find-knee) mode=knee ;;
  --replica) exec "$(dirname "${BASH_SOURCE[0]}")/bench-replica.sh" ;;
  -h | --help) header_help; exit 0 ;;
  *) log "usage: $0 [--quick|--find-knee|--replica]"; exit 2 ;;
esac

SECS="${BENCH_SECS:-60}"
CLIENTS="${BENCH_CLIENTS:-64}"
ACCOUNTS="${BENCH_ACCOUNTS:-10000}"
HOT_SECS="${BENCH_HOT_SECS:-30}"
CLASSIC_USERS="${BENCH_CLASSIC_USERS:-1000}"
CLASSIC_SECS="${BENCH_CLASSIC_SECS:-120}"
CLASSIC_RATE="${BENCH_CLASSIC_RATE:-100}"
POOL_SIZE="${BENCH_POOL_SIZE:-32}"
WORKERS="${BENCH_WORKERS:-$(nproc)}"
if [[ "$mode" == quick ]]; then
  SECS="${BENCH_SECS:-20}"; HOT_SECS="${BENCH_HOT_SECS:-15}"
  CLASSIC_USERS="${BENCH_CLASSIC_USERS:-300}"; CLASSIC_SECS="${BENCH_CLASSIC_SECS:-30}"
  ACCOUNTS="${BENCH_ACCOUNTS:-2000}"
fi
for n in SECS CLIENTS ACCOUNTS HOT_SECS CLASSIC_USERS CLASSIC_SECS CLASSIC_RATE POOL_SIZE WORKERS; do
  [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || { log "$n must be a positive whole number, got '${!n}'"; exit 2; }
done

OUT=bench/out
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.html "$OUT"/*.log "$OUT"/*.txt "$OUT"/pgbench_log.* "$OUT"/plot.svg "$OUT"/results.md
started_at="$(date +%s)"
phase() { printf '\n==> [bench %ss] %s\n' "$(( $(date +%s) - started_at ))" "$*" >&2; }

phase "build (release)"
cargo_locked build --release -p ledger-server -p ledger-load >&2
LEDGER=target/release/ledger
LOAD=target/release/ledger-load
pgbench_missing="pgbench not found (Debian: apt-get install postgresql-contrib or postgresql)"
[[ -n "${PGBENCH:-}" ]] || PGBENCH="$(pg_bin pgbench)" || { log "$pgbench_missing"; exit 1; }
[[ -x "$PGBENCH" ]] || { log "$pgbench_missing"; exit 1; }

phase "PostgreSQL"
ADMIN_URL="$(admin_url)"
PSQL="$(pg_bin psql)" || { log "psql not found (ensure-postgres.sh should have installed it)"; exit 1; }
max_connections="$(run_psql "$ADMIN_URL" -Atc 'show max_connections')"
if (( max_connections < CLIENTS + 16 )); then
  log "max_connections is $max_connections: pgbench needs $CLIENTS clients plus the service's few; lower BENCH_CLIENTS"
  exit 1
fi
if (( POOL_SIZE + 16 > max_connections )); then
  POOL_SIZE=$(( max_connections - 16 ))
  log "BENCH_POOL_SIZE lowered to $POOL_SIZE (max_connections is $max_connections)"
fi

SEED=ledger_bench_seed
DBS=("$SEED")
PORT="$(free_port)"
cleanup() {
  stop_server
  if [[ "${BENCH_KEEP_DBS:-0}" != 1 ]]; then
    for db in "${DBS[@]}"; do drop_db "$ADMIN_URL" "$db" || true; done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The machine, and whatever else is running on it (the figures are only as
# good as the box was quiet).
python3 - "$OUT/machine.json" "$ADMIN_URL" "$PSQL" <<'EOF'
import json, os, platform, subprocess, sys
def sh(cmd):
    try: return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception: return ""
mem_kib = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
psql = sys.argv[3]
settings = sh(f"{psql} '{sys.argv[2]}' -XAtc \"select string_agg(name || '=' || current_setting(name), ', ' order by name) from pg_settings where name in ('max_connections','shared_buffers','synchronous_commit','fsync','wal_sync_method','commit_delay','work_mem','max_wal_size')\"")
json.dump({
    "cores": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_kib / 1048576, 1),
    "kernel": platform.release(), "load_before": os.getloadavg(),
    "postgres": sh(f"{psql} '{sys.argv[2]}' -XAtc 'select version()'"), "postgres_settings": settings,
    "commit": sh("git rev-parse --short HEAD") + (" (dirty tree)" if sh("git status --porcelain --untracked-files=no") else ""),
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"), "rustc": sh("rustc --version"),
}, open(sys.argv[1], "w"), indent=2)
EOF
read -r load1 _ < /proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 1.0) }'; then
  log "warning: load average is $load1 before the benchmark: something else is running, figures will be low"
  ps -eo pcpu,comm --sort=-pcpu | head -n 6 >&2
fi

# run_phase NAME DB POOL CMD…: a fresh copy of the seed, the service started
# on it, CMD run while bench/cpu_sampler.py records where the CPU went, the
# service stopped.
run_phase() {
  local name="$1" db="$2" pool="$3"; shift 3
  DBS+=("$db")
  fresh_db "$ADMIN_URL" "$db" "$SEED" || return 1
  DB_URL="$(with_database "$ADMIN_URL" "$db")"
  LEDGER_WORKERS="$WORKERS" LEDGER_POOL_SIZE="$pool" \
    start_server "$LEDGER" "$DB_URL" "$PORT" "$OUT/server-$name.log" || return 1
  python3 bench/cpu_sampler.py "$OUT/cpu-$name.json" &
  local sampler=$! status=0
  "$@" || status=$?
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  stop_server
  return "$status"
}

load_run() { # load_run NAME ledger-load-args…
  local name="$1"; shift
  local status=0
  "$LOAD" --host "http://127.0.0.1:$PORT" --database-url "$DB_URL" \
    --report-file "$OUT/$name.html" --stats-json "$OUT/$name.json" --quiet "$@" \
    > "$OUT/$name.txt" 2>&1 || status=$?
  sed -n '/=== ledger-load/,$p' "$OUT/$name.txt" >&2
  return "$status"
}

failures=0
phase "seed: $ACCOUNTS funded accounts (each a deposit from the system account)"
fresh_db "$ADMIN_URL" "$SEED"
SEED_URL="$(with_database "$ADMIN_URL" "$SEED")"
LEDGER_POOL_SIZE=16 start_server "$LEDGER" "$SEED_URL" "$PORT" "$OUT/server-seed.log"
# One key for every phase: each phase's database is a copy of the seed.
LEDGER_API_KEY="$(make_api_key "$LEDGER" "$SEED_URL" admin bench)"
export LEDGER_API_KEY
"$LOAD" open-pool --host "http://127.0.0.1:$PORT" --accounts "$ACCOUNTS" --concurrency 16 \
  > "$OUT/setup.json"
stop_server
cat "$OUT/setup.json" >&2
run_psql "$SEED_URL" -c "vacuum analyze" >&2

if [[ "$mode" != knee ]]; then
  # PostgreSQL's own limit for appending a row, measured here and now, so
  # that every figure below can be stated as a ratio of it (ratios move far
  # less from run to run than absolute numbers).
  REFERENCE="${BENCH_REFERENCE:-../shared/bench-reference/run.sh}"
  if [[ -x "$REFERENCE" || -f "$REFERENCE" ]]; then
    phase "0/4 reference: $REFERENCE ($CLIENTS clients, ${REFERENCE_SECS:-30} s per script)"
    DBS+=(ledger_bench_reference)
    fresh_db "$ADMIN_URL" ledger_bench_reference
    bash "$REFERENCE" "$(with_database "$ADMIN_URL" ledger_bench_reference)" "$CLIENTS" \
        "${REFERENCE_SECS:-30}" > "$OUT/reference.jsonl" 2> "$OUT/reference.log" \
      || log "the reference run failed (see $OUT/reference.log); carrying on without it"
    cat "$OUT/reference.jsonl" >&2 || true
  else
    log "no reference script at $REFERENCE (BENCH_REFERENCE overrides): ratios to it are left out"
  fi

  phase "1/4 PostgreSQL limit: pgbench -M prepared -c $CLIENTS -j 2 -T $SECS, the store's SQL"
  "$LOAD" pgbench-script --accounts "$ACCOUNTS" > "$OUT/transfer.pgbench"
  pg_phase() {
    local rows_before rows_after
    rows_before="$(run_psql "$DB_URL" -Atc 'select count(*) from ledger.transfers')"
    # No TLS, as the service's own connections (tokio-postgres, NoTls):
    # libpq would otherwise negotiate it and spend CPU on both ends.
    (cd "$OUT" && PGSSLMODE=disable "$PGBENCH" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECS" -P 10 \
        -f transfer.pgbench --log --log-prefix=pgbench_log "$DB_URL") > "$OUT/pgbench.txt" 2>&1 \
      || { tail -n 20 "$OUT/pgbench.txt" >&2; return 1; }
    rows_after="$(run_psql "$DB_URL" -Atc 'select count(*) from ledger.transfers')"
    printf '{"rows_before": %s, "rows_after": %s, "seconds": %s, "clients": %s}\n' \
      "$rows_before" "$rows_after" "$SECS" "$CLIENTS" > "$OUT/pgbench-rows.json"
    # The same invariants as after an HTTP run (no row count: pgbench's
    # lost sequence races insert nothing and are not told apart).
    "$LOAD" check --database-url "$DB_URL" > "$OUT/pgbench-check.txt"
  }
  # The service runs, idle, for its horizon ticker: the trigger's incoming
  # checkpoints need the final horizon to advance, as in production.
  run_phase pgbench ledger_bench_pg 2 pg_phase || { failures=$((failures + 1)); log "pgbench phase failed"; }
  grep -E 'tps|latency|failed' "$OUT/pgbench.txt" >&2 || true
  tail -n 1 "$OUT/pgbench-check.txt" >&2

  phase "2/4 HTTP: throughput scenario, $CLIENTS users, no pauses, ${SECS}s"
  run_phase throughput ledger_bench_http "$POOL_SIZE" load_run throughput \
    --scenario throughput --users "$CLIENTS" --increase-rate "$CLIENTS" --run-time "${SECS}s" \
    --accounts "$ACCOUNTS" || { failures=$((failures + 1)); log "throughput phase failed"; }

  phase "3/4 hot account: $CLIENTS users transferring out of one account, ${HOT_SECS}s"
  run_phase hot ledger_bench_hot "$POOL_SIZE" load_run hot \
    --scenario hot --single-source --accounts 8 --initial-balance 1000000.00 \
    --users "$CLIENTS" --increase-rate "$CLIENTS" --run-time "${HOT_SECS}s" \
    || { failures=$((failures + 1)); log "hot phase failed"; }
  phase "3/4 hot accounts with a Zipf skew over 8 accounts of 50.00 (insufficient_funds expected), ${HOT_SECS}s"
  run_phase hotzipf ledger_bench_hotzipf "$POOL_SIZE" load_run hotzipf \
    --scenario hot --accounts 8 --users "$CLIENTS" --increase-rate "$CLIENTS" --run-time "${HOT_SECS}s" \
    || { failures=$((failures + 1)); log "hot (Zipf) phase failed"; }

  phase "3/4 deposits: $CLIENTS users depositing into random accounts (all out of the system account), ${HOT_SECS}s"
  run_phase deposits ledger_bench_deposits "$POOL_SIZE" load_run deposits \
    --scenario deposits --accounts 2000 --users "$CLIENTS" --increase-rate "$CLIENTS" \
    --run-time "${HOT_SECS}s" \
    || { failures=$((failures + 1)); log "deposits phase failed"; }

  phase "3/4 batches: ${BATCH_USERS:-1} users posting atomic batches of ${BATCH_LEGS:-1000} transfers over the pool, ${HOT_SECS}s"
  run_phase batch ledger_bench_batch "$POOL_SIZE" load_run batch \
    --scenario batch --accounts "$ACCOUNTS" --batch-legs "${BATCH_LEGS:-1000}" \
    --users "${BATCH_USERS:-1}" --increase-rate "${BATCH_USERS:-1}" --run-time "${HOT_SECS}s" \
    || { failures=$((failures + 1)); log "batch phase failed"; }

  phase "3/4 cards: ${CARDS_USERS:-200} users authorizing (holds) and settling (capture 90 %, void 10 %), ${HOT_SECS}s"
  run_phase cards ledger_bench_cards "$POOL_SIZE" load_run cards \
    --scenario cards --users "${CARDS_USERS:-200}" --increase-rate "${CARDS_RATE:-50}" \
    --run-time "${HOT_SECS}s" \
    || { failures=$((failures + 1)); log "cards phase failed"; }

  phase "4/4 classic user model: $CLASSIC_USERS users, ${CLASSIC_SECS}s after ramp-up at $CLASSIC_RATE users/s"
  run_phase classic ledger_bench_classic "$POOL_SIZE" load_run classic \
    --scenario classic --users "$CLASSIC_USERS" --increase-rate "$CLASSIC_RATE" \
    --run-time "${CLASSIC_SECS}s" || { failures=$((failures + 1)); log "classic phase failed"; }
else
  phase "find the knee: classic users from ${KNEE_START:-1000} by ${KNEE_STEP:-500} until p99 > 100 ms"
  users="${KNEE_START:-1000}"
  while (( users <= ${KNEE_MAX:-4000} )); do
    name="knee-$users"
    run_phase "$name" "ledger_bench_knee" "$POOL_SIZE" load_run "$name" \
      --scenario classic --users "$users" --increase-rate "${KNEE_RATE:-50}" \
      --run-time "$(( ${KNEE_SECS:-60} + ${KNEE_WARMUP:-15} ))s" --warmup "${KNEE_WARMUP:-15}" \
      || log "$users users: real errors or a failed check (see $OUT/$name.txt)"
    p99="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["all"]["p99_ms"])' "$OUT/$name.json" 2>/dev/null || echo 1e9)"
    log "$users users: p99 $p99 ms"
    if awk -v p="$p99" 'BEGIN { exit !(p > 100) }'; then break; fi
    users=$(( users + ${KNEE_STEP:-500} ))
  done
fi

phase "report"
python3 bench/report.py "$OUT" "$mode"
if (( failures > 0 )); then
  log "$failures phase(s) saw real errors or a failed ledger check: see $OUT/*.txt"
  exit 1
fi
