#!/usr/bin/env python3
"""Turns one scripts/bench.sh run into a table, results.json and plot.svg.

    python3 bench/report.py bench/out [full|quick|knee]

Reads what bench.sh left in the folder (machine.json, setup.json, pgbench's
per-transaction logs and row counts, each ledger-load --stats-json file, the
CPU samples) and writes results.json, results.md (the table also printed)
and plot.svg: throughput and p99 latency per second of each phase, drawn by
hand so that no plotting package is needed.
"""

import glob
import json
import math
import os
import re
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def percentile(sorted_values, pct):
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def pgbench(out):
    """PostgreSQL's limit: inserted rows per second, and pgbench's latencies."""
    rows = load(os.path.join(out, "pgbench-rows.json"))
    if rows is None:
        return None
    latencies, per_second = [], {}
    for path in glob.glob(os.path.join(out, "pgbench_log.*")):
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6:
                    continue
                latencies.append(int(fields[2]) / 1000.0)
                second = int(fields[4])
                per_second.setdefault(second, []).append(int(fields[2]) / 1000.0)
    latencies.sort()
    text = open(os.path.join(out, "pgbench.txt")).read()
    tps = re.search(r"tps = ([0-9.]+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    seconds = rows["seconds"]
    inserted = rows["rows_after"] - rows["rows_before"]
    start = min(per_second) if per_second else 0
    series = []
    for second in sorted(per_second):
        values = sorted(per_second[second])
        series.append({"t": second - start, "rate": len(values),
                       "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99)})
    check = open(os.path.join(out, "pgbench-check.txt")).read().strip().splitlines()
    return {
        "clients": rows["clients"],
        "seconds": seconds,
        "transactions": len(latencies),
        "tps": float(tps.group(1)) if tps else None,
        "rows_inserted": inserted,
        "rows_per_s": inserted / seconds,
        "lost_races": len(latencies) - inserted,
        "failed_transactions": int(failed.group(1)) if failed else None,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "ledger_check": check[-1] if check else "",
        "cpu": load(os.path.join(out, "cpu-pgbench.json")),
        "series": series,
    }


def http(out, name):
    run = load(os.path.join(out, name + ".json"))
    if run is None:
        return None
    summary = run["summary"]
    transfers = summary["by_kind"].get("transfer", {})
    return {
        "scenario": run["scenario"],
        "users": run["users"],
        "run_time_s": run["run_time_s"],
        "requests_per_s": summary["all"]["rate_per_s"],
        "transfers_201_per_s": transfers.get("ok_per_s", 0.0),
        "p50_ms": summary["all"]["p50_ms"],
        "p99_ms": summary["all"]["p99_ms"],
        "transfer_p50_ms": transfers.get("p50_ms"),
        "transfer_p99_ms": transfers.get("p99_ms"),
        "by_kind": summary["by_kind"],
        # Real errors in the steady window, and over the whole run (ramp-up
        # and ramp-down included).
        "real_errors": summary["all"]["errors"],
        "real_errors_whole_run": sum(summary["errors_by_kind"].values()),
        "errors_by_kind": summary["errors_by_kind"],
        "expected": summary["whole_run"]["expected"],
        "expected_by_code": summary["expected_by_code"],
        "window": summary["window"],
        "wait_ms": run.get("wait_ms"),
        "batch_legs": run.get("batch_legs"),
        "mean_ms": summary["all"]["mean_ms"],
        "setup": run.get("setup"),
        "ledger_check": (run.get("check") or {}).get("passed"),
        "ledger_check_failures": (run.get("check") or {}).get("failures"),
        "cpu": load(os.path.join(out, "cpu-" + name + ".json")),
        "series": [
            {"t": s["t"], "rate": s["requests"], "transfers_ok": s["transfers_ok"],
             "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "errors": s["errors"]}
            for s in summary["series"]
        ],
    }


def failures(run):
    """Real errors in the steady state, and those outside it, by label."""
    outside = run["real_errors_whole_run"] - run["real_errors"]
    text = str(run["real_errors"])
    if outside > 0:
        labels = ", ".join(f"{k}: {v}" for k, v in run["errors_by_kind"].items())
        text += f" (+{outside} during ramp-up/down: {labels})"
    return text


def cpu_note(cpu):
    if not cpu:
        return ""
    total = cpu["box_capacity_cpu_s"] or 1
    parts = [("service", cpu["service_cpu_s"]), ("driver", cpu["driver_cpu_s"]),
             ("PostgreSQL", cpu["postgres_cpu_s"]), ("other", cpu["other_cpu_s"])]
    return "CPU " + f"{cpu['box_busy_pct']:.0f}% busy: " + ", ".join(
        f"{label} {100 * value / total:.0f}%" for label, value in parts)


def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def verdict(ok):
    return "met" if ok else "MISSED"


def batch_run(results):
    """The batch phase's run and its `batch` requests, with the run's
    `transfers_per_s` (legs × batches that succeeded per second) filled in;
    (None, None) when the phase did not run."""
    batch = results.get("batch")
    if not (batch and batch.get("batch_legs")):
        return None, None
    batches = batch["by_kind"].get("batch", {})
    batch["transfers_per_s"] = batches.get("ok_per_s", 0.0) * batch["batch_legs"]
    return batch, batches


def table(results):
    lines = [
        "| measurement | conditions | throughput | p50 ms | p99 ms | real errors (steady state) | CPU split (2 cores = 100%) |",
        "|---|---|---|---|---|---|---|",
    ]
    pg, tp, hot, zipf, classic = (results.get(k) for k in ("pgbench", "throughput", "hot", "hotzipf", "classic"))
    if pg:
        lines.append(
            f"| PostgreSQL limit (pgbench, the store's SQL) | {pg['clients']} clients, -M prepared, {pg['seconds']} s "
            f"| **{fmt(pg['rows_per_s'], 0)} transfers/s** ({fmt(pg['tps'], 0)} tps, {pg['lost_races']} lost races) "
            f"| {fmt(pg['p50_ms'], 2)} | {fmt(pg['p99_ms'], 2)} | {pg['failed_transactions']} | {cpu_note(pg['cpu'])} |")
    if tp:
        lines.append(
            f"| HTTP transfers (throughput scenario) | {tp['users']} users, no pauses, {tp['run_time_s']} s, "
            f"10k accounts | **{fmt(tp['transfers_201_per_s'], 0)} transfers/s** | {fmt(tp['p50_ms'], 2)} "
            f"| {fmt(tp['p99_ms'], 2)} | {failures(tp)} | {cpu_note(tp['cpu'])} |")
    if hot:
        lines.append(
            f"| Hot account: every transfer out of ONE account | {hot['users']} users, no pauses, "
            f"{hot['run_time_s']} s | **{fmt(hot['transfers_201_per_s'], 0)} transfers/s** | {fmt(hot['p50_ms'], 2)} "
            f"| {fmt(hot['p99_ms'], 2)} | {failures(hot)} | {cpu_note(hot['cpu'])} |")
    if zipf:
        expected = ", ".join(f"{k}: {v}" for k, v in zipf["expected_by_code"].items()) or "none"
        lines.append(
            f"| Hot accounts, Zipf s=1.1 over 8 accounts of 50.00 | {zipf['users']} users, no pauses, "
            f"{zipf['run_time_s']} s | {fmt(zipf['requests_per_s'], 0)} requests/s, "
            f"{fmt(zipf['transfers_201_per_s'], 0)} transfers/s | {fmt(zipf['p50_ms'], 2)} | {fmt(zipf['p99_ms'], 2)} "
            f"| {failures(zipf)} (expected answers: {expected}) | {cpu_note(zipf['cpu'])} |")
    batch, batches = batch_run(results)
    if batch:
        lines.append(
            f"| Atomic batches of {batch['batch_legs']} transfers over the pool | {batch['users']} users, "
            f"no pauses, {batch['run_time_s']} s | **{fmt(batch['transfers_per_s'], 0)} "
            f"transfers/s** ({fmt(batches.get('ok_per_s', 0.0), 1)} batches/s) | {fmt(batch['p50_ms'], 2)} "
            f"| {fmt(batch['p99_ms'], 2)} | {failures(batch)} | {cpu_note(batch['cpu'])} |")
    deposits = results.get("deposits")
    if deposits:
        lines.append(
            f"| Deposits into random accounts (all out of the system account) | {deposits['users']} users, "
            f"no pauses, {deposits['run_time_s']} s, 2,000 accounts | "
            f"**{fmt(deposits['transfers_201_per_s'], 0)} deposits/s** | {fmt(deposits['p50_ms'], 2)} "
            f"| {fmt(deposits['p99_ms'], 2)} | {failures(deposits)} | {cpu_note(deposits['cpu'])} |")
    cards = results.get("cards")
    if cards:
        kinds = cards["by_kind"]
        per_s = {kind: kinds.get(kind, {}).get("ok_per_s", 0.0) for kind in ("hold", "capture", "void")}
        lines.append(
            f"| Cards: authorize (hold), then capture 90 % / void 10 %, balance checks between | "
            f"{cards['users']} users, 0.2–1 s pauses, {cards['run_time_s']} s after ramp-up | "
            f"**{fmt(cards['requests_per_s'], 0)} requests/s** ({fmt(per_s['hold'], 0)} holds/s, "
            f"{fmt(per_s['capture'], 0)} captures/s, {fmt(per_s['void'], 0)} voids/s); ledger check "
            f"{'passed' if cards['ledger_check'] else 'FAILED'} | {fmt(cards['p50_ms'], 2)} "
            f"| {fmt(cards['p99_ms'], 2)} | {failures(cards)} | {cpu_note(cards['cpu'])} |")
    for name in ["classic"] + sorted((k for k in results if k.startswith("knee-")), key=lambda k: int(k[5:])):
        run = results.get(name)
        if not run:
            continue
        lines.append(
            f"| Classic user model | {run['users']} users, 1–3 s pauses, {run['run_time_s']} s after ramp-up "
            f"| **{fmt(run['requests_per_s'], 0)} requests/s** ({fmt(run['transfers_201_per_s'], 0)} transfers/s) "
            f"| {fmt(run['p50_ms'], 2)} | {fmt(run['p99_ms'], 2)} | {failures(run)} | {cpu_note(run['cpu'])} |")
    return lines


def reference(out):
    """PostgreSQL's own append limit (../shared/bench-reference/run.sh), by script."""
    path = os.path.join(out, "reference.jsonl")
    if not os.path.exists(path):
        return None
    lines = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    return {line["reference"]: line for line in lines} or None


def targets(results):
    lines = []
    pg, tp, hot, classic = (results.get(k) for k in ("pgbench", "throughput", "hot", "classic"))
    ref = (results.get("reference") or {}).get("append")
    if ref and ref.get("rows_per_s"):
        limit = ref["rows_per_s"]
        if pg:
            ratio = pg["rows_per_s"] / limit
            results["ratios"]["store_over_reference"] = ratio
            lines.append(f"- Store's SQL / reference append ({limit:,.0f} rows/s): **{ratio:.2f}×** "
                         f"(target ≥ 0.5: {verdict(ratio >= 0.5)})")
        if tp:
            ratio = tp["transfers_201_per_s"] / limit
            results["ratios"]["http_over_reference"] = ratio
            lines.append(f"- HTTP uniform / reference append: **{ratio:.2f}×** "
                         f"(target ≥ 0.3: {verdict(ratio >= 0.3)})")
    else:
        lines.append("- No reference run: store_over_reference and http_over_reference left out")
    if pg and tp:
        ratio = tp["transfers_201_per_s"] / pg["rows_per_s"] if pg["rows_per_s"] else 0
        results["ratios"]["http_over_postgres"] = ratio
        lines.append(f"- HTTP / PostgreSQL limit: **{100 * ratio:.0f}%** (target ≥ 80%: {verdict(ratio >= 0.8)})")
    if hot and tp:
        ratio = hot["transfers_201_per_s"] / tp["transfers_201_per_s"] if tp["transfers_201_per_s"] else 0
        results["ratios"]["hot_over_uniform"] = ratio
        fivexx = sum(v for k, v in hot["errors_by_kind"].items() if k[:1] == "5")
        p99 = hot.get("transfer_p99_ms") or hot["p99_ms"]
        lines.append(
            f"- Hot (one source) / uniform: **{ratio:.2f}×** (target ≥ 0.8 and p99 ≤ 100 ms: "
            f"{verdict(ratio >= 0.8 and p99 <= 100)}; p99 {fmt(p99, 1)} ms); "
            f"5xx: {fivexx}, real errors: {hot['real_errors_whole_run']}")
    batch, batches = batch_run(results)
    if batch:
        reference_batch = (results.get("reference") or {}).get("batch")
        if reference_batch and reference_batch.get("rows_per_s"):
            ratio = batch["transfers_per_s"] / reference_batch["rows_per_s"]
            results["ratios"]["batch_over_reference"] = ratio
            lines.append(
                f"- Batches of {batch['batch_legs']} / reference 100-row batches "
                f"({reference_batch['rows_per_s']:,.0f} rows/s): **{ratio:.2f}×** "
                f"({fmt(batch['transfers_per_s'], 0)} transfers/s, batch p99 "
                f"{fmt(batches.get('p99_ms'), 0)} ms; target ≥ 0.5: {verdict(ratio >= 0.5)}); "
                f"real errors: {batch['real_errors_whole_run']}")
    deposits = results.get("deposits")
    if deposits and tp:
        ratio = (deposits["transfers_201_per_s"] / tp["transfers_201_per_s"]
                 if tp["transfers_201_per_s"] else 0)
        results["ratios"]["deposits_over_uniform"] = ratio
        lines.append(
            f"- Deposits (all out of the system account) / uniform: **{ratio:.2f}×** "
            f"({fmt(deposits['transfers_201_per_s'], 0)}/s, p99 {fmt(deposits['p99_ms'], 1)} ms; "
            f"target ≥ 0.8: {verdict(ratio >= 0.8)}); real errors: {deposits['real_errors_whole_run']}")
    if classic:
        ok = (classic["requests_per_s"] >= 500 and classic["real_errors_whole_run"] == 0
              and classic["p99_ms"] <= 25)
        offered = ""
        if classic.get("wait_ms"):
            # Each user sends one request, then pauses: it offers one request
            # per (mean pause + mean response time).
            cycle_s = sum(classic["wait_ms"]) / 2 / 1000 + classic["mean_ms"] / 1000
            rate = classic["users"] / cycle_s
            results["ratios"]["classic_served_over_offered"] = classic["requests_per_s"] / rate
            offered = (f"; the model offers {rate:,.1f}/s ({classic['users']} users / "
                       f"({cycle_s * 1000:,.0f} ms mean pause + response)), "
                       f"{100 * classic['requests_per_s'] / rate:.1f}% of it served")
        lines.append(
            f"- Classic, {classic['users']} users: {fmt(classic['requests_per_s'], 1)} requests/s, "
            f"{classic['real_errors_whole_run']} failures, p99 {fmt(classic['p99_ms'], 2)} ms "
            f"(target ≥ 500/s, 0 failures, p99 ≤ 25 ms: {verdict(ok)}{offered})")
    knees = sorted((k for k in results if k.startswith("knee-")), key=lambda k: int(k[5:]))
    for name in knees:
        run = results[name]
        if run["p99_ms"] > 100:
            lines.append(f"- Knee: p99 passes 100 ms at **{run['users']} users** "
                         f"({fmt(run['requests_per_s'], 0)} requests/s, p99 {fmt(run['p99_ms'], 1)} ms)")
            break
    else:
        if knees:
            last = results[knees[-1]]
            lines.append(f"- Knee: p99 stayed ≤ 100 ms up to {last['users']} users "
                         f"({fmt(last['requests_per_s'], 0)} requests/s)")
    checks = [(k, v.get("ledger_check")) for k, v in results.items()
              if isinstance(v, dict) and "ledger_check" in v]
    checks.sort(key=lambda kv: (not kv[0].startswith("knee-"), int(kv[0][5:]) if kv[0].startswith("knee-") else 0))
    lines.append("- Ledger checks after each phase: " + ", ".join(
        f"{k} {'PASS' if v is True or (isinstance(v, str) and 'PASS' in v) else 'FAIL'}" for k, v in checks))
    return lines


def svg(results, path):
    """Two panels (rate, p99) sharing a time axis; one line per phase."""
    phases = [(k, label, colour) for k, label, colour in (
        ("pgbench", "pgbench (PostgreSQL limit), tx/s", "#1b9e77"),
        ("throughput", "HTTP throughput, 64 users", "#d95f02"),
        ("hot", "hot: one source, 64 users", "#7570b3"),
        ("classic", "classic model", "#e7298a"),
    ) if results.get(k) and results[k]["series"]]
    for name in sorted(k for k in results if k.startswith("knee-")):
        phases.append((name, f"classic, {results[name]['users']} users", "#666666"))
    if not phases:
        return
    width, height, left, right, top, gap, panel = 1000, 560, 70, 280, 30, 60, 210
    t_max = max(s["t"] for k, _, _ in phases for s in results[k]["series"]) or 1
    rate_max = max(s["rate"] for k, _, _ in phases for s in results[k]["series"]) or 1
    p99_max = max(s["p99_ms"] for k, _, _ in phases for s in results[k]["series"]) or 1
    p99_top = 10 ** math.ceil(math.log10(max(p99_max, 1)))

    def x(t):
        return left + (width - left - right) * t / t_max

    def y_rate(v):
        return top + panel * (1 - v / rate_max)

    def y_p99(v):
        # Log scale from 0.1 ms to the next power of ten above the maximum.
        v = max(v, 0.1)
        return top + panel + gap + panel * (1 - (math.log10(v) + 1) / (math.log10(p99_top) + 1))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']
    for y0, title in ((top, "requests (or pgbench transactions) per second"),
                      (top + panel + gap, "p99 latency per second, ms (log scale)")):
        out.append(f'<rect x="{left}" y="{y0}" width="{width - left - right}" height="{panel}" '
                   f'fill="none" stroke="#999"/>')
        out.append(f'<text x="{left}" y="{y0 - 8}" font-weight="bold">{title}</text>')
    for i in range(5):
        v = rate_max * i / 4
        out.append(f'<text x="{left - 6}" y="{y_rate(v) + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    decade = 0.1
    while decade <= p99_top:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y_p99(decade):.1f}" y2="{y_p99(decade):.1f}" '
                   f'stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{y_p99(decade) + 4:.1f}" text-anchor="end">{decade:g}</text>')
        decade *= 10
    for i in range(6):
        t = t_max * i / 5
        out.append(f'<text x="{x(t):.1f}" y="{top + 2 * panel + gap + 16}" text-anchor="middle">{t:.0f} s</text>')
    for row, (name, label, colour) in enumerate(phases):
        series = results[name]["series"]
        rate = " ".join(f"{x(s['t']):.1f},{y_rate(s['rate']):.1f}" for s in series)
        p99 = " ".join(f"{x(s['t']):.1f},{y_p99(s['p99_ms']):.1f}" for s in series if s["rate"])
        out.append(f'<polyline points="{rate}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        out.append(f'<polyline points="{p99}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        ly = top + 16 * row + 8
        out.append(f'<line x1="{width - right + 12}" x2="{width - right + 32}" y1="{ly}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{width - right + 38}" y="{ly + 4}">{label}</text>')
    out.append(f'<text x="{left + (width - left - right) / 2}" y="{height - 12}" text-anchor="middle" '
               f'fill="#555">seconds since the phase began (ramp-up included)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    out = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "full"
    results = {"mode": mode, "machine": load(os.path.join(out, "machine.json")),
               "setup": load(os.path.join(out, "setup.json")), "ratios": {}}
    pg = pgbench(out)
    if pg:
        results["pgbench"] = pg
    ref = reference(out)
    if ref:
        results["reference"] = ref
    for name in ["throughput", "hot", "hotzipf", "deposits", "batch", "cards", "classic"] + [
            os.path.basename(p)[:-5] for p in glob.glob(os.path.join(out, "knee-*.json"))]:
        run = http(out, name)
        if run:
            results[name] = run
    machine = results["machine"] or {}
    setup = results["setup"] or {}
    lines = [
        f"Machine: {machine.get('cores')} cores ({machine.get('cpu_model')}), {machine.get('memory_gib')} GiB; "
        f"load generator, service and PostgreSQL on the same box. {machine.get('postgres', '')[:16]} "
        f"({machine.get('postgres_settings')}). Commit {machine.get('commit')}, {machine.get('date')}; "
        f"load average before: {', '.join(f'{v:.2f}' for v in machine.get('load_before', []))}.",
        "",
    ]
    if setup:
        lines.append(
            f"Seed: {setup.get('accounts')} accounts opened with a balance in {setup.get('seconds', 0):.1f} s "
            f"({setup.get('per_s', 0):.0f}/s at {setup.get('concurrency')} concurrent requests: each is a deposit "
            f"from the system account, serialized on its sequence).")
        lines.append("")
    lines += table(results) + [""] + targets(results)
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    svg(results, os.path.join(out, "plot.svg"))
    print(f"\nwrote {out}/results.json, {out}/results.md, {out}/plot.svg and goose's {out}/*.html")


if __name__ == "__main__":
    main()
