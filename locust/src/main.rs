//! `ledger-load`: goose load scenarios for the ledger service.
//!
//! ```text
//! ledger-load --scenario classic|hot|throughput|asof --host http://127.0.0.1:8080 \
//!             --database-url postgres://…/ledger [--users N] [--run-time 60s] [goose options]
//! ledger-load pgbench-script [--accounts 10000]      the write path's SQL for pgbench
//! ledger-load open-pool --host … [--accounts 10000]  open the throughput pool, then exit
//! ledger-load check --database-url …                 check the ledger's invariants, then exit
//! ```
//!
//! A run opens the scenario's accounts, runs goose (its HTML report with
//! `--report-file`, its summary on the terminal), prints its own figures for
//! the steady state, then checks the ledger in PostgreSQL. It exits non-zero
//! on any real error (5xx, timeout, unexpected 4xx) or a failed check;
//! expected domain answers (a hot account's `insufficient_funds`) are counted
//! apart and do not fail it.

mod auth;
mod check;
mod cli;
mod pgbench;
mod scenarios;
mod setup;
mod state;
mod stats;

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use goose::GooseAttack;
use serde_json::json;

use crate::cli::{Cli, Command, RunArgs, ScenarioKind};
use crate::state::{pool_account_id, Shared, Zipf};
use crate::stats::Summary;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = auth::init() {
        eprintln!("ledger-load: {err:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Some(Command::PgbenchScript(args)) => {
            print!("{}", pgbench::script(args.accounts, &args.amount));
            Ok(true)
        }
        Some(Command::OpenPool(args)) => open_pool(args).await,
        Some(Command::Check(args)) => check_only(args).await,
        None => run(cli.run).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("ledger-load: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// One load test; `Ok(false)` when it saw real errors or the check failed.
async fn run(mut args: RunArgs) -> anyhow::Result<bool> {
    let bounds = cli::bounded(&mut args)?;
    let scenario = args.scenario;
    let ledger = match (&args.database_url, args.no_check) {
        (_, true) => None,
        (Some(url), false) => Some(check::LedgerCheck::connect(url)?),
        (None, false) => anyhow::bail!(
            "--database-url is required for the ledger check after the run (or --no-check)"
        ),
    };
    let rows_before = match &ledger {
        Some(ledger) => Some(ledger.transfer_rows().await?),
        None => None,
    };

    let initial_balance = args
        .initial_balance
        .clone()
        .unwrap_or_else(|| scenario.default_initial_balance().to_owned());
    let accounts = args.accounts.unwrap_or(scenario.default_accounts());
    if !matches!(scenario, ScenarioKind::Classic | ScenarioKind::Cards) && accounts < 2 {
        anyhow::bail!("--accounts must be at least 2 for transfers between them");
    }
    // As-of reads pick times from a little before the accounts existed.
    let history_from = Utc::now() - chrono::Duration::seconds(2);
    let ids: Vec<Option<uuid::Uuid>> = match scenario {
        // One account before the users start, the first destination they
        // can pay, opened alone: the first funded open creates the
        // currency's system account (see setup::open_accounts).
        ScenarioKind::Classic | ScenarioKind::Cards => vec![None],
        ScenarioKind::Throughput | ScenarioKind::Deposits | ScenarioKind::Batch => {
            (0..accounts).map(|i| Some(pool_account_id(i))).collect()
        }
        ScenarioKind::Hot | ScenarioKind::Asof | ScenarioKind::Journal => vec![None; accounts],
    };
    let opened = if ids.is_empty() {
        None
    } else {
        println!(
            "ledger-load: opening {} accounts with {initial_balance} each ({} concurrent requests)…",
            ids.len(),
            args.setup_concurrency
        );
        let opened =
            setup::open_accounts(&bounds.url, ids, &initial_balance, args.setup_concurrency)
                .await
                .context("Failed to open the scenario's accounts")?;
        println!(
            "ledger-load: opened {} accounts ({} new, {} already there) in {:.1} s: {:.0} per second",
            opened.ids.len(),
            opened.created,
            opened.existing,
            opened.seconds,
            opened.per_s
        );
        Some(opened)
    };

    let zipf = (scenario == ScenarioKind::Hot).then(|| Zipf::new(accounts, args.zipf));
    if let Some(zipf) = &zipf {
        let shares: Vec<String> = (0..accounts.min(4))
            .map(|rank| format!("{:.0}%", 100.0 * zipf.probability(rank)))
            .collect();
        println!(
            "ledger-load: hot accounts drawn with Zipf s={}: the first ones {} of the draws{}",
            args.zipf,
            shares.join(", "),
            if args.single_source {
                "; every transfer leaves the first"
            } else {
                ""
            }
        );
    }
    let shared = state::install(
        Shared::new(
            scenario,
            args.amount.clone(),
            initial_balance.clone(),
            bounds.users,
            opened.as_ref().map(|o| o.ids.clone()).unwrap_or_default(),
            zipf,
            args.single_source,
            history_from,
        )
        .with_batch_legs(args.batch_legs),
    )?;
    if let Some(opened) = &opened {
        if setup::is_positive(&initial_balance) {
            for _ in 0..opened.created {
                shared.recorder.created_row();
            }
        }
    }

    let wait = args.wait.or(scenario.default_wait());
    println!(
        "ledger-load: {} scenario, {} users, {} s after ramp-up, against {}",
        scenario.name(),
        bounds.users,
        bounds.run_time.as_secs(),
        bounds.url
    );
    GooseAttack::initialize_with_config(args.goose)?
        .register_scenario(scenarios::scenario(scenario, wait)?)
        .execute()
        .await
        .context("goose failed")?;

    let summary = shared.recorder.summarize(bounds.run_time, bounds.warmup);
    print_summary(scenario, bounds.users, &summary);
    let report = match &ledger {
        Some(ledger) => {
            let rows = rows_before.map(|before| (before, shared.recorder.created_rows()));
            let report = ledger.check(rows).await?;
            report.print();
            Some(report)
        }
        None => {
            println!("LEDGER CHECK: SKIPPED (--no-check)");
            None
        }
    };

    if let Some(path) = &args.stats_json {
        let document = json!({
            "scenario": scenario.name(),
            "users": bounds.users,
            "run_time_s": bounds.run_time.as_secs(),
            "warmup_s": bounds.warmup.as_secs(),
            "host": bounds.url.as_str(),
            "amount": args.amount,
            "initial_balance": initial_balance,
            "accounts": accounts,
            "single_source": args.single_source,
            "wait_ms": wait.map(|w| [w.min.as_millis(), w.max.as_millis()]),
            "zipf": (scenario == ScenarioKind::Hot).then_some(args.zipf),
            "batch_legs": (scenario == ScenarioKind::Batch).then_some(args.batch_legs),
            "setup": opened,
            "summary": summary,
            "check": report,
        });
        std::fs::write(path, serde_json::to_string_pretty(&document)?)
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }

    // Every real error was counted once, by label (a 201 without an id too).
    let real_errors = shared.recorder.error_count();
    let passed = report.as_ref().is_none_or(|r| r.passed);
    println!(
        "ledger-load: {} real errors, {} expected domain answers; ledger check {}",
        real_errors,
        summary.whole_run.expected,
        match &report {
            Some(r) if r.passed => "PASS",
            Some(_) => "FAIL",
            None => "skipped",
        }
    );
    Ok(real_errors == 0 && passed)
}

fn print_summary(scenario: ScenarioKind, users: usize, summary: &Summary) {
    println!();
    println!(
        "=== ledger-load: {} with {users} users; steady state {:.1} s from t={:.1} s{} ===",
        scenario.name(),
        summary.window.seconds,
        summary.window.start_s,
        if summary.window.steady {
            ""
        } else {
            " (not every user started: whole run)"
        }
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "requests",
        "count",
        "per s",
        "2xx",
        "expected",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    let rows = std::iter::once(("all", &summary.all))
        .chain(summary.by_kind.iter().map(|(k, f)| (k.as_str(), f)));
    for (label, f) in rows {
        println!(
            "{:<12} {:>9} {:>9.1} {:>9} {:>9} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            label,
            f.requests,
            f.rate_per_s,
            f.ok,
            f.expected,
            f.errors,
            f.p50_ms,
            f.p90_ms,
            f.p99_ms,
            f.p999_ms,
            f.max_ms
        );
    }
    println!(
        "whole run: {} requests, {} 2xx, {} expected domain answers, {} real errors",
        summary.whole_run.requests,
        summary.whole_run.ok,
        summary.whole_run.expected,
        summary.whole_run.errors
    );
    for (label, n) in &summary.expected_by_code {
        println!("  expected: {label}: {n}");
    }
    for (label, n) in &summary.errors_by_kind {
        println!("  REAL ERROR: {label}: {n}");
    }
}

/// `open-pool`: the throughput pool, before pgbench or a throughput run.
async fn open_pool(args: cli::OpenPoolArgs) -> anyhow::Result<bool> {
    let url = cli::loopback_url(&args.host)?;
    let ids = (0..args.accounts)
        .map(|i| Some(pool_account_id(i)))
        .collect();
    let opened = setup::open_accounts(&url, ids, &args.initial_balance, args.concurrency).await?;
    println!(
        "{}",
        serde_json::to_string(&json!({
            "accounts": args.accounts,
            "created": opened.created,
            "existing": opened.existing,
            "seconds": opened.seconds,
            "per_s": opened.per_s,
            "concurrency": args.concurrency,
        }))?
    );
    Ok(true)
}

/// `check`: the invariants alone (no row count).
async fn check_only(args: cli::CheckArgs) -> anyhow::Result<bool> {
    let ledger = check::LedgerCheck::connect(&args.database_url)?;
    let report = ledger.check(None).await?;
    report.print();
    Ok(report.passed)
}
