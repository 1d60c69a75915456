#!/usr/bin/env bash
# Schemathesis against the service's own OpenAPI document.
#
#   scripts/schemathesis.sh                                 (the full run: ≥ 5,000 requests)
#   SCHEMATHESIS_MAX_EXAMPLES=10 scripts/schemathesis.sh    (a short run, as CI does)
#
# 1. installs schemathesis and every package it needs at the versions and
#    hashes of scripts/requirements/schemathesis.txt (pip --require-hashes)
#    into a virtualenv under target/schemathesis/; the virtualenv is made
#    anew when that lock file or python3 changes, and reused otherwise;
#    prints the versions used (python3, pip, schemathesis, hypothesis, psql,
#    the PostgreSQL server): Debian's packages are not pinned, so the output
#    records them;
# 2. makes PostgreSQL available (scripts/ensure-postgres.sh), creates a
#    throwaway database, builds `ledger` (the debug build cargo test shares);
# 3. serves it on a free 127.0.0.1 port and runs every schemathesis phase
#    (examples, coverage, fuzzing, stateful) with the checks
#    not_a_server_error and response_schema_conformance, at most
#    SCHEMATHESIS_MAX_EXAMPLES cases per operation and phase (default 1000:
#    about 7,000 requests; fewer examples than that fall short of 5,000
#    because hypothesis exhausts the inputs of some operations early);
#    SCHEMATHESIS_CHECKS=all runs every check; SCHEMATHESIS_WORKERS threads
#    (default 1: with 2, CPython < 3.11.8 can crash inside hypothesis, see
#    README "Schemathesis");
# 4. prints the requests sent by status, and every failure with its request;
#    exits non-zero on any 5xx, any schema violation, any other failure, or
#    fewer requests than SCHEMATHESIS_MIN_REQUESTS (default: 5,000 for the
#    full run, 1 when SCHEMATHESIS_MAX_EXAMPLES is set);
# 5. tells a crash of schemathesis itself from a finding about the API. An
#    exception raised inside schemathesis or hypothesis (a Python built-in
#    one such as KeyError or SystemError, or hypothesis's FlakyFailure
#    around one that did not recur: schemathesis prints it as "Runtime
#    Error" and exits 1, as it does for a failed check), or
#    schemathesis dying before it finished, with no failure of the API, is
#    reported as "schemathesis itself crashed: ..." and the run is repeated
#    once with a fresh database and server. A second crash fails. A real
#    failure (5xx, schema violation, network error, too few requests) fails
#    at once and is never retried.
#
# Generated POSTs do create accounts and transfers: the database is thrown
# away at the end (as are the server and its log, kept under target/).
# SCHEMATHESIS_SEED=<n> replays a run (the seed is printed).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=schemathesis.sh

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

LOCK_REL="scripts/requirements/schemathesis.txt"
LOCK="$REPO/$LOCK_REL"
if [[ -n "${SCHEMATHESIS_MAX_EXAMPLES:-}" ]]; then
  MAX_EXAMPLES="$SCHEMATHESIS_MAX_EXAMPLES"
  MIN_REQUESTS="${SCHEMATHESIS_MIN_REQUESTS:-1}"
else
  MAX_EXAMPLES=1000
  MIN_REQUESTS="${SCHEMATHESIS_MIN_REQUESTS:-5000}"
fi
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
WORKDIR="${CARGO_TARGET_DIR:-$REPO/target}/schemathesis"
VENV="$WORKDIR/venv"
STAMP="$VENV/.ledger-lock-stamp"
REPORT="$WORKDIR/report.ndjson"
SERVER_LOG="$WORKDIR/server.log"
CRASH_NOTE="$WORKDIR/crash.txt"

[[ "$MAX_EXAMPLES" =~ ^[1-9][0-9]*$ ]] || die "SCHEMATHESIS_MAX_EXAMPLES must be a positive number, got '$MAX_EXAMPLES'"
[[ "$MIN_REQUESTS" =~ ^[0-9]+$ ]] || die "SCHEMATHESIS_MIN_REQUESTS must be a number, got '$MIN_REQUESTS'"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "SCHEMATHESIS_WORKERS must be a positive number, got '$WORKERS'"
[[ -z "${SCHEMATHESIS_VERSION:-}" ]] \
  || die "SCHEMATHESIS_VERSION is no longer read: versions are pinned in $LOCK_REL (README, Schemathesis, says how to change them)"
[[ -f "$LOCK" ]] || die "$LOCK_REL is missing"
mkdir -p "$WORKDIR"

# --- 1. the locked Python environment, once ---------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 is required"
# The venv is valid for one lock file and one python3: both go into its stamp.
want_stamp="$(sha256sum <"$LOCK" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.executable, sys.version.split()[0])')"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want_stamp" ]] || ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "python3's venv module is missing; install python3-venv"
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo -n)
    log "installing python3-venv (apt-get)"
    { "${sudo[@]}" apt-get update -qq \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } >&2 \
      || die "apt-get install python3-venv failed"
  fi
  log "installing $LOCK_REL into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # --require-hashes: every package, dependencies included, must be in the
  # lock with its hash; --no-deps: nothing outside the lock gets in.
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --require-hashes --no-deps -r "$LOCK" >&2 \
    || die "pip install -r $LOCK_REL failed"
  "$VENV/bin/pip" check >&2 || die "the packages of $LOCK_REL do not fit together (pip check)"
  printf '%s\n' "$want_stamp" >"$STAMP"
fi

# --- 2. database and binary -------------------------------------------------
ADMIN_URL="$(admin_url)"
PSQL="$(pg_bin psql)" || die "psql not found"

# What this run used. The Python packages come from the lock; Debian's
# (python3 itself, psql, the server) can change under us, so say which.
python_versions="$("$VENV/bin/python" - <<'EOF'
import importlib.metadata as m, os, sys
print(f"python {sys.version.split()[0]} ({os.path.realpath(sys.executable)}), pip {m.version('pip')}, "
      f"schemathesis {m.version('schemathesis')}, hypothesis {m.version('hypothesis')}")
EOF
)"
psql_version="$("$PSQL" --version | sed 's/^psql (PostgreSQL) //')"
server_version="$(run_psql "$ADMIN_URL" -Atc 'show server_version' 2>/dev/null || echo unknown)"
log "versions: $python_versions (from $LOCK_REL, sha256 ${want_stamp:0:12}); psql $psql_version; PostgreSQL server $server_version"
if (( WORKERS > 1 )) && ! "$VENV/bin/python" -c '
import sys
v = sys.version_info[:3]
sys.exit(1 if (v[:2] == (3, 11) and v < (3, 11, 8)) or (v[:2] == (3, 12) and v < (3, 12, 2)) else 0)'; then
  log "note: $WORKERS workers on this Python: concurrent ast.parse calls can fail with 'SystemError: AST constructor recursion depth mismatch' (CPython gh-106905, fixed in 3.11.8 and 3.12.2); such a crash is retried once"
fi

log "building ledger (debug)"
cargo_locked build --quiet -p ledger-server --bin ledger
BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/ledger"

SERVER_PID=""
DB_NAME=""
stop_attempt() {
  stop_server
  if [[ -n "$DB_NAME" ]]; then
    drop_db "$ADMIN_URL" "$DB_NAME" 2>/dev/null || true
  fi
  DB_NAME=""
}
cleanup() {
  local status=$?
  stop_attempt
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 3. + 4. one attempt: fresh database and server, run, judge -------------
# Sets VERDICT: 0 passed, 1 a real failure, 3 schemathesis itself crashed
# (the reason is in $CRASH_NOTE).
run_attempt() {
  local attempt="$1"
  DB_NAME="ledger_schemathesis_$(date +%s)_$$_$attempt"
  local database_url port address
  database_url="$(with_database "$ADMIN_URL" "$DB_NAME")"
  fresh_db "$ADMIN_URL" "$DB_NAME"

  port="$(free_port)"
  address="http://127.0.0.1:$port"
  LEDGER_RUST_LOG="${RUST_LOG:-warn}" start_server "$BIN" "$database_url" "$port" "$SERVER_LOG" \
    || die "the service did not come up"
  local api_key
  api_key="$(make_api_key "$BIN" "$database_url" admin schemathesis)"
  log "attempt $attempt: service up at $address (database $DB_NAME); $MAX_EXAMPLES examples per operation, $WORKERS worker(s)"

  local seed=()
  [[ -n "${SCHEMATHESIS_SEED:-}" ]] && seed=(--seed "$SCHEMATHESIS_SEED")
  rm -f "$REPORT" "$CRASH_NOTE"
  local schemathesis_status=0
  (cd "$WORKDIR" && "$VENV/bin/schemathesis" run "$address/openapi.json" \
    --checks "${SCHEMATHESIS_CHECKS:-not_a_server_error,response_schema_conformance}" \
    --max-examples "$MAX_EXAMPLES" \
    --phases examples,coverage,fuzzing,stateful \
    --request-timeout 15 \
    --workers "$WORKERS" \
    --generation-database none \
    --header "Authorization: Bearer $api_key" \
    --report ndjson --report-ndjson-path "$REPORT" \
    --no-color ${seed[@]+"${seed[@]}"}) || schemathesis_status=$?

  local created
  created="$(run_psql "$database_url" -Atc \
    "select (select count(*) from ledger.accounts where not is_system) || ' accounts, '
         || (select count(*) from ledger.transfers) || ' transfers'" 2>/dev/null || echo "unknown")"
  VERDICT=0
  "$VENV/bin/python" - "$REPORT" "$created" "$MIN_REQUESTS" "$schemathesis_status" "$CRASH_NOTE" <<'EOF' || VERDICT=$?
import base64, builtins, collections, json, sys

report, created, min_requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
schemathesis_status, crash_note = int(sys.argv[4]), sys.argv[5]


# hypothesis's own words for "an exception that did not happen again when
# the same input was replayed". A flaky answer of the API is a failed check
# or a 5xx, which this summary counts as a real failure before any of these.
HYPOTHESIS_FLAKY = {"Flaky", "FlakyFailure", "FlakyStrategyDefinition"}


def is_tool_error(exception):
    """A Python built-in exception (KeyError, SystemError, ...) is a bug of
    schemathesis or hypothesis; so is hypothesis's "Flaky" wrapped around one
    that did not recur. OSError's family is left out: requests'
    ConnectionError shares the name of the built-in one, and is about the
    API (refused, reset) as are every other error type schemathesis names
    (network errors, unresponsive or unhealthy API, schema errors)."""
    name = (exception or {}).get("type") or ""
    if name in HYPOTHESIS_FLAKY:
        return True
    kind = getattr(builtins, name, None)
    return isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, OSError)


statuses = collections.Counter()
requests = 0
failures = []
tool_errors, api_errors = [], []
finished = False
try:
    lines = open(report, encoding="utf-8").readlines()
except FileNotFoundError:
    lines = []
for line in lines:
    try:
        event = json.loads(line)
    except ValueError:
        continue  # a line cut short by a crash
    for kind, body in event.items():
        if kind == "EngineFinished":
            finished = True
        elif kind in ("NonFatalError", "FatalError"):
            exception = body.get("value") if kind == "NonFatalError" else body.get("exception")
            where = (f"{body.get('phase')} phase, {body.get('label')}" if kind == "NonFatalError"
                     else "outside the test phases")
            text = f"{where}: {(exception or {}).get('type')}: {(exception or {}).get('message')}"
            (tool_errors if is_tool_error(exception) else api_errors).append(text[:300])
    finished_scenario = event.get("ScenarioFinished")
    if not finished_scenario:
        continue
    recorder = finished_scenario.get("recorder") or {}
    interactions = recorder.get("interactions") or {}
    for case_id, interaction in interactions.items():
        requests += 1
        response = interaction.get("response")
        statuses[response["status_code"] if response else "no response"] += 1
    for case_id, checks in (recorder.get("checks") or {}).items():
        for check in checks:
            if check.get("status") == "success":
                continue
            interaction = interactions.get(case_id) or {}
            request = interaction.get("request") or {}
            body = request.get("body") or {}
            if "$base64" in body:
                body = base64.b64decode(body["$base64"]).decode("utf-8", "replace")
            response = interaction.get("response") or {}
            failures.append((check.get("name"), request.get("method"), request.get("uri"),
                             str(body)[:500], response.get("status_code"),
                             json.dumps(check)[:1500]))

server_errors = sum(n for status, n in statuses.items() if isinstance(status, int) and status >= 500)
print(f"schemathesis: requests sent {requests}; by status: "
      + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=lambda kv: str(kv[0]))))
print(f"schemathesis: 5xx responses {server_errors}, failed checks {len(failures)}, "
      f"errors about the API {len(api_errors)}, errors of schemathesis itself {len(tool_errors)}; "
      f"data the generated requests created: {created}")
for name, method, uri, body, status, detail in failures[:50]:
    print(f"FAILED {name}: {method} {uri} -> {status}\n  body: {body}\n  check: {detail}")
for text in api_errors[:20]:
    print(f"FAILED with an error about the API: {text}")

crashes = list(tool_errors)
if not finished:
    crashes.append(f"it stopped before the end of the run (exit {schemathesis_status}, "
                   f"{'no report' if not lines else 'report incomplete'})")
elif schemathesis_status not in (0, 1, 2):
    crashes.append(f"it exited {schemathesis_status}")
too_few = requests < max(min_requests, 1)

if server_errors or failures or api_errors:
    if crashes:
        print("schemathesis also crashed (not the reason for this failure): " + "; ".join(crashes))
    sys.exit(1)  # a finding about the API: never retried
if crashes:
    note = "; ".join(crashes)
    if too_few:
        note += f" (after {requests} requests)"
    print(f"schemathesis itself crashed: {note}")
    with open(crash_note, "w", encoding="utf-8") as out:
        out.write(note)
    sys.exit(3)
if too_few:
    print(f"FAILED: only {requests} requests were sent, fewer than {max(min_requests, 1)}")
    sys.exit(1)
if schemathesis_status != 0:
    print(f"FAILED: schemathesis exited {schemathesis_status} for a reason this summary does not "
          "recognise; its own output above says which")
    sys.exit(1)
EOF

  if grep -q '"level":"ERROR"' "$SERVER_LOG"; then
    log "the server logged errors (actix_http's 'request parse error' is a request that was not valid HTTP/1.1, refused with a bare 400 before the application saw it):"
    grep '"level":"ERROR"' "$SERVER_LOG" | head -n 20 >&2
  fi
  stop_attempt
  case "$VERDICT" in
    0 | 3) ;;
    1) die "failed (schemathesis exit $schemathesis_status); report: $REPORT, server log: $SERVER_LOG" ;;
    *) die "the summary of $REPORT failed (exit $VERDICT)" ;;
  esac
}

run_attempt 1
if (( VERDICT == 3 )); then
  first_crash="$(cat "$CRASH_NOTE")"
  mv -f "$REPORT" "$WORKDIR/report.attempt1.ndjson" 2>/dev/null || true
  mv -f "$SERVER_LOG" "$WORKDIR/server.attempt1.log" 2>/dev/null || true
  log "schemathesis itself crashed, which says nothing about the API: $first_crash"
  log "retrying once with a fresh database and server (first attempt kept as $WORKDIR/report.attempt1.ndjson)"
  run_attempt 2
  if (( VERDICT == 3 )); then
    die "schemathesis itself crashed again, so this run shows nothing about the API either way: $(cat "$CRASH_NOTE"); reports: $WORKDIR/report.attempt1.ndjson, $REPORT"
  fi
  log "passed on the retry (the first attempt crashed, see above)"
  exit 0
fi
log "passed"
