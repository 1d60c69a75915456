//! `ledger`: the ledger service.
//!
//! ```text
//! ledger [serve]    migrate, then serve HTTP (the default)
//! ledger migrate    apply pending migrations and exit
//! ledger verify     recompute every hash chain and invariant from the log;
//!                   exit 0 when all agree, 1 and the first disagreement if not
//! ```
//! Configuration comes from environment variables; see the README.

use std::net::TcpListener;
use std::process::ExitCode;

use actix_web::dev::Server;
use anyhow::Context;
use ledger_server::config::Config;
use ledger_server::AppState;
use ledger_store::Ledger;

const USAGE: &str = "usage: ledger [serve|migrate|verify]\n\
    \n  serve    apply pending migrations, then serve the HTTP API (default)\
    \n  migrate  apply pending migrations and exit\
    \n  verify   recompute every hash chain and invariant from the log (exit 1 on any violation)\
    \n\nConfiguration is read from environment variables (DATABASE_URL, LEDGER_LISTEN_ADDR, …); see the README.";

enum Command {
    Serve,
    Migrate,
    Verify,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => Command::Serve,
        ["migrate"] => Command::Migrate,
        ["verify"] => Command::Verify,
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ledger: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    ledger_server::telemetry::init(config.log_format);
    let result = actix_web::rt::System::new().block_on(async move {
        match command {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(&config).await.map(drop),
            Command::Verify => verify(&config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "ledger stopped");
            eprintln!("ledger: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config) -> anyhow::Result<Ledger> {
    let ledger = Ledger::connect(config.store()).context("Failed to set up the database pool")?;
    ledger.migrate().await.with_context(|| {
        format!(
            "Failed to migrate the database at {}",
            redact(&config.database_url)
        )
    })?;
    tracing::info!("database migrated");
    Ok(ledger)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let ledger = migrate(&config).await?;
    tokio::spawn(ledger.clone().run_horizon_ticker(config.horizon_interval));

    let listener = TcpListener::bind(config.listen_addr)
        .with_context(|| format!("Failed to listen on {}", config.listen_addr))?;
    let address = listener
        .local_addr()
        .context("Failed to read the listening address")?;
    let store = ledger.clone();
    let state = AppState::new(ledger, config.api.clone());
    let metrics_server = match config.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .with_context(|| format!("Failed to listen on {addr} for /metrics"))?;
            let address = listener
                .local_addr()
                .context("Failed to read the metrics listening address")?;
            let server = ledger_server::metrics_server(state.clone(), listener)
                .context("Failed to start the metrics server")?;
            tracing::info!("metrics served on http://{address}/metrics");
            Some(server)
        }
        None => None,
    };
    let server = ledger_server::serve(state, listener, config.workers)
        .context("Failed to start the HTTP server")?;
    tracing::info!(
        workers = config.workers,
        "listening on http://{address} (API docs at http://{address}/docs/)"
    );
    let metrics_handle = metrics_server.as_ref().map(Server::handle);
    if let Some(metrics_server) = metrics_server {
        actix_web::rt::spawn(metrics_server);
    }
    // actix stops on SIGTERM/SIGINT, finishing in-flight requests first.
    let served = server.await.context("HTTP server failed");
    if let Some(handle) = metrics_handle {
        handle.stop(true).await;
    }
    served?;
    // The group commit's totals, also on /metrics: logged for benchmarks.
    tracing::info!(
        group_commit = %store.group_commit_metrics().snapshot(),
        "shut down"
    );
    Ok(())
}

/// Recomputes the journal and prints what it found; fails on any violation.
async fn verify(config: &Config) -> anyhow::Result<()> {
    let ledger = Ledger::connect(config.store()).context("Failed to set up the database pool")?;
    let report = ledger
        .verify()
        .await
        .context("Failed to read the ledger for verification")?;
    println!(
        "verify: {} rows, {} chains, {} accounts checked; violations: {}",
        report.rows_checked,
        report.chains_checked,
        report.accounts_checked,
        report.violations.len()
    );
    for violation in &report.violations {
        let place = match (violation.row, &violation.subject) {
            (Some((source, seq, transfer)), _) => {
                format!("transfer {transfer} (source {source}, seq {seq})")
            }
            (None, Some(subject)) => subject.clone(),
            (None, None) => "ledger".to_owned(),
        };
        println!("  {}: {place}: {}", violation.rule, violation.detail);
    }
    match report.violations.first() {
        None => Ok(()),
        Some(first) => anyhow::bail!(
            "the ledger does not verify: first violation is {}",
            first.rule
        ),
    }
}

/// The database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
