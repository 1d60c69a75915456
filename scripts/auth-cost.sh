#!/usr/bin/env bash
# The cost of API keys: the same load against the service with
# authentication on and off, alternated (on, off, on, off, ...) so that
# drift of the machine falls on both sides alike.
#
#   scripts/auth-cost.sh [ROUNDS] [-- ledger-load options]
#
# Defaults: 2 rounds of each, `--scenario throughput --users 32 --run-time 20s`
# (no pauses: what a request costs shows as throughput and latency). Each run
# is scripts/load.sh (a fresh database, the release build, a key sent in both
# modes); `LEDGER_AUTH=off` only stops the service from checking it. Prints one
# line per run and the means.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_NAME=auth-cost
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds="${1:-2}"
[[ "$rounds" =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1 to 99, got '$rounds'"
shift $(( $# > 0 ? 1 : 0 ))
[[ "${1:-}" == "--" ]] && shift
load_args=("$@")
(( ${#load_args[@]} > 0 )) || load_args=(--scenario throughput --users 32 --run-time 20s)

out="target/auth-cost"
mkdir -p "$out"
results=()
for (( round = 1; round <= rounds; round++ )); do
  for mode in on off; do
    log "round $round, LEDGER_AUTH=$mode: ${load_args[*]}"
    file="$out/round-$round-$mode.txt"
    LEDGER_AUTH="$mode" scripts/load.sh -- "${load_args[@]}" > "$file" 2>&1 \
      || { tail -20 "$file" >&2; die "the load run failed (log: $file)"; }
    # The summary's "all" row: label, count, per s, 2xx, expected, errors,
    # p50, p90, p99, p99.9, max.
    read -r _ _ rps _ _ _ _ _ p99 _ _ < <(grep -m1 -E '^all ' "$file" || echo "all 0 0 0 0 0 0 0 0 0 0")
    log "  $mode: ${rps:-?} requests/s, p99 ${p99:-?} ms"
    results+=("$mode ${rps:-0} ${p99:-0}")
  done
done
printf '%s\n' "${results[@]}" | awk '
  { n[$1]++; rps[$1] += $2; p99[$1] += $3; line[NR] = $0 }
  END {
    for (m in n) printf "auth %-3s  mean %.0f requests/s, mean p99 %.2f ms over %d runs\n",
      m, rps[m] / n[m], p99[m] / n[m], n[m]
    if (n["off"] && rps["off"]) printf "on/off throughput: %.3f\n", (rps["on"] / n["on"]) / (rps["off"] / n["off"])
  }'
