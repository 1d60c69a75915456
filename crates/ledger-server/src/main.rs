//! `ledger`: the ledger service.
//!
//! ```text
//! ledger [serve]    migrate, then serve HTTP (the default)
//! ledger migrate    apply pending migrations and exit
//! ```
//! Configuration comes from environment variables; see the README.

use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use ledger_server::config::Config;
use ledger_store::Ledger;

const USAGE: &str = "usage: ledger [serve|migrate]\n\
    \n  serve    apply pending migrations, then serve the HTTP API (default)\
    \n  migrate  apply pending migrations and exit\
    \n\nConfiguration is read from environment variables (DATABASE_URL, LEDGER_LISTEN_ADDR, …); see the README.";

enum Command {
    Serve,
    Migrate,
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
    let server = ledger_server::server(ledger, config.api.clone(), listener, config.workers)
        .context("Failed to start the HTTP server")?;
    tracing::info!(
        workers = config.workers,
        "listening on http://{address} (API docs at http://{address}/docs/)"
    );
    // actix stops on SIGTERM/SIGINT, finishing in-flight requests first.
    server.await.context("HTTP server failed")?;
    tracing::info!("shut down");
    Ok(())
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
