//! `ledger`: the ledger service.
//!
//! ```text
//! ledger [serve]    migrate, then serve HTTP (the default)
//! ledger migrate    apply pending migrations and exit
//! ledger verify     recompute every hash chain and invariant from the log;
//!                   exit 0 when all agree, 1 and the first disagreement if not
//! ledger keys …     make, list and revoke API keys (see `ledger help`)
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
    \n  keys create [--scope read|write|treasury|admin|metrics] [--account ID]... [--name NAME]\
    \n           make an API key and print its secret (shown this once)\
    \n  keys list           list the keys (never a secret)\
    \n  keys revoke ID      revoke a key, for good\
    \n  keys bootstrap      make an admin key if no valid one exists, and print it\
    \n\nConfiguration is read from environment variables (DATABASE_URL, LEDGER_LISTEN_ADDR, …); see the README.";

enum Command {
    Serve,
    Migrate,
    Verify,
    Keys(Vec<String>),
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
        ["keys", ..] => Command::Keys(args[1..].to_vec()),
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
            Command::Keys(args) => keys(&config, &args).await,
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
    if !config.api.auth_required {
        tracing::warn!(
            "LEDGER_AUTH=off: EVERY REQUEST IS ALLOWED WITHOUT A KEY. Anyone who reaches this \
             port can move any money. For local experiments only."
        );
    }
    tokio::spawn(ledger.clone().run_horizon_ticker(config.horizon_interval));
    tokio::spawn(
        ledger
            .clone()
            .run_journal_sequencer(config.horizon_interval),
    );
    tokio::spawn(ledger.clone().run_hold_expiry(config.hold_expiry_interval));

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
        "verify: {} rows, {} chains, {} journal leaves, {} accounts checked; violations: {}",
        report.rows_checked,
        report.chains_checked,
        report.leaves_checked,
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

/// `ledger keys …`: the command line twin of `/keys`.
async fn keys(config: &Config, args: &[String]) -> anyhow::Result<()> {
    let ledger = migrate(config).await?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["list"] => {
            for key in ledger.list_api_keys().await? {
                println!("{}", describe_key(&key));
            }
            Ok(())
        }
        ["revoke", id] => {
            let id = uuid::Uuid::parse_str(id).context("the key id must be a UUID")?;
            let key = ledger.revoke_api_key(id).await?;
            println!("{}", describe_key(&key));
            Ok(())
        }
        ["bootstrap"] => {
            if !ledger.has_admin_key().await? {
                let new = ledger_store::NewApiKey {
                    scope: Some(ledger_domain::Scope::Admin),
                    accounts: None,
                    name: Some("bootstrap".to_owned()),
                };
                let (_, secret) = ledger.create_api_key(new).await?;
                println!("{}", secret.expose());
            }
            Ok(())
        }
        ["create", options @ ..] => {
            let new = parse_new_key(options)?;
            let (key, secret) = ledger.create_api_key(new).await?;
            println!("{}", secret.expose());
            eprintln!("{}", describe_key(&key));
            eprintln!("The key is shown this once; the ledger keeps only its hash.");
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}

fn parse_new_key(options: &[&str]) -> anyhow::Result<ledger_store::NewApiKey> {
    let mut new = ledger_store::NewApiKey::default();
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let value = options
            .next()
            .with_context(|| format!("{option} needs a value"))?;
        match *option {
            "--scope" => {
                new.scope = Some(
                    ledger_domain::Scope::parse(value)
                        .with_context(|| format!("unknown scope {value:?}"))?,
                );
            }
            "--account" => {
                let id = uuid::Uuid::parse_str(value).context("an account id must be a UUID")?;
                new.accounts
                    .get_or_insert_with(Vec::new)
                    .push(ledger_domain::AccountId::from(id));
            }
            "--name" => new.name = Some((*value).to_owned()),
            other => anyhow::bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(new)
}

fn describe_key(key: &ledger_store::ApiKey) -> String {
    let accounts = key.accounts.as_ref().map_or_else(
        || "all accounts".to_owned(),
        |ids| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        },
    );
    format!(
        "{}  {}…  {:<8}  {}  {}  {}",
        key.id,
        key.prefix,
        key.scope.as_str(),
        key.name.as_deref().unwrap_or("-"),
        accounts,
        key.revoked_at
            .map_or_else(|| "valid".to_owned(), |at| format!("revoked {at}")),
    )
}
