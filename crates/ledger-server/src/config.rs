//! Configuration from environment variables, each with a default. A value
//! that does not parse stops the service at start with a message naming the
//! variable, rather than running with a surprise.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use ledger_domain::{Currency, Decimal, MAX_AMOUNT};
use ledger_store::{StoreConfig, MAX_GROUP_LEGS};

/// Everything the service reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: the ledger database.
    pub database_url: String,
    /// `LEDGER_LISTEN_ADDR`: where the HTTP server listens.
    pub listen_addr: SocketAddr,
    /// `LEDGER_METRICS_ADDR`: where `/metrics` is also served, on a listener
    /// of its own (unset: only on the main listener).
    pub metrics_addr: Option<SocketAddr>,
    /// `LEDGER_POOL_SIZE`: most database connections held at once.
    pub pool_size: usize,
    /// `LEDGER_WORKERS`: actix worker threads (default: one per core).
    pub workers: usize,
    /// `LEDGER_STATEMENT_TIMEOUT_MS`: server-side timeout of every statement.
    pub statement_timeout: Duration,
    /// `LEDGER_ACQUIRE_TIMEOUT_MS`: how long a request waits for a pooled
    /// connection before it is answered with 503.
    pub acquire_timeout: Duration,
    /// `LEDGER_GROUP_MAX_LEGS`: most writes out of one account applied in
    /// one transaction by the store's group commit (1 to 64).
    pub group_max_legs: usize,
    /// `LEDGER_SOURCE_QUEUE_MAX_LEGS`: most writes out of one account that
    /// may wait for their group; more are answered 503 at once.
    pub source_queue_max_legs: usize,
    /// `LEDGER_HORIZON_INTERVAL_MS`: how often the horizon ticker runs.
    pub horizon_interval: Duration,
    /// `LEDGER_JOURNAL_CONCURRENCY`: most journal digests and proofs computed
    /// at once (each holds one connection; the rest wait their turn, so a
    /// burst of proofs cannot take the pool from other requests).
    pub journal_concurrency: usize,
    /// `LEDGER_HOLD_DEFAULT_TIMEOUT_SECS`: how long a hold lasts when its
    /// request names no expiry (7 days).
    pub hold_default_timeout: Duration,
    /// `LEDGER_HOLD_MAX_TIMEOUT_SECS`: the longest a hold may last (30 days).
    pub hold_max_timeout: Duration,
    /// `LEDGER_HOLD_EXPIRY_INTERVAL_MS`: how often due hold expiries are
    /// recorded (an expired hold stops counting at its time regardless).
    pub hold_expiry_interval: Duration,
    /// `LEDGER_LOG_FORMAT`: pretty (for people) or JSON (for machines).
    pub log_format: LogFormat,
    /// The part of the configuration the HTTP handlers need.
    pub api: ApiConfig,
}

/// The settings that shape the HTTP API itself.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// `LEDGER_DEFAULT_CURRENCY`: the currency of accounts opened without one.
    pub default_currency: Currency,
    /// `LEDGER_MAX_AMOUNT`: the largest amount one request may move. At most
    /// the ledger's own ceiling ([`MAX_AMOUNT`], 10^15).
    pub max_amount: Decimal,
    /// `LEDGER_BODY_LIMIT_BYTES`: larger request bodies get 413.
    pub body_limit_bytes: usize,
    /// `LEDGER_BATCH_BODY_LIMIT_BYTES`: the body limit of `POST /batches`
    /// (larger bodies get 413); every leg's metadata counts against it.
    pub batch_body_limit_bytes: usize,
    /// `LEDGER_BODY_READ_TIMEOUT_MS`: how long a request body may take to
    /// arrive after its headers; later, 408 and the connection is closed.
    pub body_read_timeout: Duration,
    /// `LEDGER_CORS_ORIGINS`: origins allowed to call the API from a browser;
    /// empty means no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// `LEDGER_AUTH`: `on` (the default) requires an API key on every
    /// operation; `off` lets anyone do anything, for local experiments only
    /// (the service logs a warning at start).
    pub auth_required: bool,
    /// `LEDGER_RATE_LIMIT_PER_KEY`: requests per second each API key may
    /// make, per instance (burst: one second's worth); 0 or unset: no limit.
    pub rate_limit_per_key: usize,
    /// `LEDGER_MAX_IN_FLIGHT`: most requests in flight in the process at
    /// once; more are answered 503 `overloaded` at once (`/health`, `/ready`
    /// and `/metrics` are never refused).
    pub max_in_flight: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            default_currency: Currency::parse(DEFAULT_CURRENCY).expect("USD is an ISO 4217 code"),
            max_amount: Decimal::from(DEFAULT_MAX_AMOUNT),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            batch_body_limit_bytes: DEFAULT_BATCH_BODY_LIMIT_BYTES,
            body_read_timeout: Duration::from_millis(DEFAULT_BODY_READ_TIMEOUT_MS),
            cors_origins: Vec::new(),
            auth_required: true,
            rate_limit_per_key: 0,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, one line per event.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where the service listens unless told otherwise.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
/// The database used unless `DATABASE_URL` says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ledger";
const DEFAULT_CURRENCY: &str = "USD";
/// Enough for every HTTP worker's requests on one hot account at once with
/// room to spare; a full queue means the account cannot keep up anyway.
const DEFAULT_SOURCE_QUEUE_MAX_LEGS: usize = 1_024;
/// Far more than the pool's connections (32): requests that wait for one
/// are cheap. It bounds the memory and the queueing behind a database that
/// stalls: 1,024 requests of up to 64 KiB each hold at most 64 MiB.
const DEFAULT_MAX_IN_FLIGHT: usize = 1_024;
const DEFAULT_MAX_AMOUNT: i64 = 1_000_000_000_000;
const DEFAULT_BODY_LIMIT_BYTES: usize = 64 * 1024;
/// 2 MiB: a batch of the most legs (8,189) without metadata is about 1 MB
/// (a leg is about 125 bytes of JSON), so there is room for some metadata.
const DEFAULT_BATCH_BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;
/// 64 KiB in 10 s is 6.4 KB/s: slower than any client that is not stalling.
const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 10_000;

/// A configuration value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What it held.
    pub value: String,
    /// Why that is not acceptable.
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let default_workers = std::thread::available_parallelism().map_or(1, usize::from);
        let api = ApiConfig {
            default_currency: env.parse_with("LEDGER_DEFAULT_CURRENCY", DEFAULT_CURRENCY, |v| {
                Currency::parse(v).map_err(|_| "not an active ISO 4217 code (e.g. USD)".to_owned())
            })?,
            max_amount: env.parse_with(
                "LEDGER_MAX_AMOUNT",
                &DEFAULT_MAX_AMOUNT.to_string(),
                parse_max_amount,
            )?,
            body_limit_bytes: env.number("LEDGER_BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT_BYTES, 1)?,
            batch_body_limit_bytes: env.number(
                "LEDGER_BATCH_BODY_LIMIT_BYTES",
                DEFAULT_BATCH_BODY_LIMIT_BYTES,
                1,
            )?,
            body_read_timeout: env
                .millis("LEDGER_BODY_READ_TIMEOUT_MS", DEFAULT_BODY_READ_TIMEOUT_MS)?,
            cors_origins: env
                .get("LEDGER_CORS_ORIGINS")
                .map(|origins| parse_origins(&origins))
                .transpose()
                .map_err(|reason| ConfigError {
                    variable: "LEDGER_CORS_ORIGINS",
                    value: env.get("LEDGER_CORS_ORIGINS").unwrap_or_default(),
                    reason,
                })?
                .unwrap_or_default(),
            auth_required: env.parse_with("LEDGER_AUTH", "on", |v| match v {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err("expected on or off".to_owned()),
            })?,
            rate_limit_per_key: env.number("LEDGER_RATE_LIMIT_PER_KEY", 0, 0)?,
            max_in_flight: env.number("LEDGER_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, 1)?,
        };
        Ok(Self {
            database_url: env
                .get("DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            listen_addr: env.parse_with("LEDGER_LISTEN_ADDR", DEFAULT_LISTEN_ADDR, |v| {
                SocketAddr::from_str(v)
                    .map_err(|err| format!("{err} (expected host:port, e.g. 127.0.0.1:8080)"))
            })?,
            metrics_addr: env
                .get("LEDGER_METRICS_ADDR")
                .map(|value| {
                    SocketAddr::from_str(value.trim()).map_err(|err| ConfigError {
                        variable: "LEDGER_METRICS_ADDR",
                        value: value.clone(),
                        reason: format!("{err} (expected host:port, e.g. 127.0.0.1:9090)"),
                    })
                })
                .transpose()?,
            pool_size: env.number("LEDGER_POOL_SIZE", 32, 1)?,
            workers: env.number("LEDGER_WORKERS", default_workers, 1)?,
            statement_timeout: env.millis("LEDGER_STATEMENT_TIMEOUT_MS", 5_000)?,
            acquire_timeout: env.millis("LEDGER_ACQUIRE_TIMEOUT_MS", 2_000)?,
            group_max_legs: env.parse_with(
                "LEDGER_GROUP_MAX_LEGS",
                &MAX_GROUP_LEGS.to_string(),
                |v| match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_GROUP_LEGS).contains(&n) => Ok(n),
                    _ => Err(format!(
                        "expected a whole number from 1 to {MAX_GROUP_LEGS}"
                    )),
                },
            )?,
            source_queue_max_legs: env.number(
                "LEDGER_SOURCE_QUEUE_MAX_LEGS",
                DEFAULT_SOURCE_QUEUE_MAX_LEGS,
                1,
            )?,
            horizon_interval: env.millis("LEDGER_HORIZON_INTERVAL_MS", 100)?,
            journal_concurrency: env.number("LEDGER_JOURNAL_CONCURRENCY", 2, 1)?,
            hold_default_timeout: Duration::from_secs(env.number(
                "LEDGER_HOLD_DEFAULT_TIMEOUT_SECS",
                7 * 24 * 3600,
                1,
            )? as u64),
            hold_max_timeout: Duration::from_secs(env.number(
                "LEDGER_HOLD_MAX_TIMEOUT_SECS",
                30 * 24 * 3600,
                1,
            )? as u64),
            hold_expiry_interval: env.millis("LEDGER_HOLD_EXPIRY_INTERVAL_MS", 1_000)?,
            log_format: env.parse_with("LEDGER_LOG_FORMAT", "pretty", |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected pretty or json".to_owned()),
            })?,
            api,
        })
    }

    /// The store's part of the configuration.
    pub fn store(&self) -> StoreConfig {
        let mut store = StoreConfig::new(self.database_url.clone());
        store.pool_size = self.pool_size;
        store.statement_timeout = self.statement_timeout;
        store.acquire_timeout = self.acquire_timeout;
        store.journal_concurrency = self.journal_concurrency;
        store.group_max_legs = self.group_max_legs;
        store.source_queue_max_legs = self.source_queue_max_legs;
        store.hold_default_timeout = self.hold_default_timeout;
        store.hold_max_timeout = self.hold_max_timeout.max(self.hold_default_timeout);
        store
    }
}

/// Looks variables up; an empty value counts as unset.
struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    fn parse_with<T>(
        &self,
        variable: &'static str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.get(variable).unwrap_or_else(|| default.to_owned());
        parse(value.trim()).map_err(|reason| ConfigError {
            variable,
            value,
            reason,
        })
    }

    fn number(
        &self,
        variable: &'static str,
        default: usize,
        min: usize,
    ) -> Result<usize, ConfigError> {
        self.parse_with(variable, &default.to_string(), |v| {
            match v.parse::<usize>() {
                Ok(n) if n >= min => Ok(n),
                Ok(_) => Err(format!("must be at least {min}")),
                Err(_) => Err("expected a whole number".to_owned()),
            }
        })
    }

    fn millis(&self, variable: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse_with(variable, &default.to_string(), |v| match v.parse::<u64>() {
            Ok(0) => Err("must be at least 1 millisecond".to_owned()),
            Ok(ms) => Ok(Duration::from_millis(ms)),
            Err(_) => Err("expected a whole number of milliseconds".to_owned()),
        })
    }
}

fn parse_max_amount(value: &str) -> Result<Decimal, String> {
    let amount = Decimal::from_str(value).map_err(|_| "expected a decimal number".to_owned())?;
    if amount <= Decimal::ZERO {
        return Err("must be greater than zero".to_owned());
    }
    if amount > MAX_AMOUNT {
        return Err(format!(
            "must not exceed the ledger's ceiling of {MAX_AMOUNT}"
        ));
    }
    Ok(amount)
}

fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    let origins: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect();
    for origin in &origins {
        let scheme_ok = origin.starts_with("http://") || origin.starts_with("https://");
        if !scheme_ok || origin.ends_with('/') {
            return Err(format!(
                "{origin:?} is not an origin (expected scheme://host[:port], no path)"
            ));
        }
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = config_from(&[]).expect("defaults are valid");
        assert_eq!(config.listen_addr.to_string(), DEFAULT_LISTEN_ADDR);
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.pool_size, 32);
        assert_eq!(config.api.default_currency.code(), "USD");
        assert_eq!(config.api.max_amount, Decimal::from(1_000_000_000_000_i64));
        assert_eq!(config.api.body_limit_bytes, 65_536);
        assert_eq!(config.api.batch_body_limit_bytes, 2_097_152);
        assert_eq!(config.api.body_read_timeout, Duration::from_secs(10));
        assert!(config.api.cors_origins.is_empty());
        assert_eq!(config.api.max_in_flight, 1_024);
        assert_eq!(config.metrics_addr, None);
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.horizon_interval, Duration::from_millis(100));
        assert_eq!(config.statement_timeout, Duration::from_millis(5_000));
        assert_eq!(config.acquire_timeout, Duration::from_millis(2_000));
    }

    #[test]
    fn set_values_are_used() {
        let config = config_from(&[
            ("LEDGER_LISTEN_ADDR", "0.0.0.0:9000"),
            ("LEDGER_DEFAULT_CURRENCY", "EUR"),
            ("LEDGER_MAX_AMOUNT", "500.50"),
            (
                "LEDGER_CORS_ORIGINS",
                "https://a.example, http://localhost:3000",
            ),
            ("LEDGER_LOG_FORMAT", "json"),
            ("LEDGER_WORKERS", "3"),
            ("LEDGER_MAX_IN_FLIGHT", "4"),
            ("LEDGER_METRICS_ADDR", "127.0.0.1:9090"),
        ])
        .expect("valid");
        assert_eq!(config.listen_addr.port(), 9000);
        assert_eq!(config.api.default_currency.code(), "EUR");
        assert_eq!(config.api.max_amount.to_string(), "500.50");
        assert_eq!(
            config.api.cors_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.workers, 3);
        assert_eq!(config.api.max_in_flight, 4);
        assert_eq!(config.metrics_addr.map(|a| a.port()), Some(9090));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            (
                "LEDGER_LISTEN_ADDR",
                "localhost",
                "a host name is not a socket address",
            ),
            (
                "LEDGER_POOL_SIZE",
                "0",
                "a pool needs at least one connection",
            ),
            ("LEDGER_POOL_SIZE", "many", "not a number"),
            ("LEDGER_DEFAULT_CURRENCY", "usd", "ISO codes are upper case"),
            ("LEDGER_MAX_AMOUNT", "-5", "a maximum must be positive"),
            ("LEDGER_MAX_AMOUNT", "1e30", "above the ledger's ceiling"),
            ("LEDGER_BODY_LIMIT_BYTES", "64k", "units are not accepted"),
            (
                "LEDGER_CORS_ORIGINS",
                "example.com",
                "an origin needs a scheme",
            ),
            ("LEDGER_LOG_FORMAT", "xml", "only pretty or json"),
            (
                "LEDGER_HORIZON_INTERVAL_MS",
                "0",
                "the ticker needs a period",
            ),
            (
                "LEDGER_STATEMENT_TIMEOUT_MS",
                "5s",
                "milliseconds as a number",
            ),
            ("LEDGER_ACQUIRE_TIMEOUT_MS", "-1", "negative time"),
            ("LEDGER_WORKERS", "0", "at least one worker"),
            ("LEDGER_MAX_IN_FLIGHT", "0", "no request could ever run"),
            (
                "LEDGER_METRICS_ADDR",
                "metrics:9090",
                "a host name is not a socket address",
            ),
            ("LEDGER_BODY_READ_TIMEOUT_MS", "0", "a body needs some time"),
        ];
        for (variable, value, why) in cases {
            let err = config_from(&[(variable, value)]).expect_err(why);
            assert_eq!(err.variable, variable, "{why}");
            assert!(err.to_string().contains(variable), "{why}: {err}");
        }
    }
}
