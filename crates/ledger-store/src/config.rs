use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::StoreError;

/// How the store reaches PostgreSQL, and the limits it puts on that.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// A libpq-style URL, e.g. `postgres://postgres@127.0.0.1:5432/ledger`.
    pub database_url: String,
    /// Most connections held at once.
    pub pool_size: usize,
    /// How long a request waits for a pooled connection before giving up.
    pub acquire_timeout: Duration,
    /// How long opening a new connection may take.
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout` for every statement.
    pub statement_timeout: Duration,
    /// How many times a transfer that lost its sequence-number race is
    /// retried before the store gives up with [`StoreError::Contention`].
    pub max_sequence_retries: u32,
    /// Most writes out of one source applied in one transaction by the group
    /// commit (see `group_commit`). At most [`MAX_GROUP_LEGS`].
    pub group_max_legs: usize,
    /// Most writes out of one source waiting in this process for their
    /// group; more are refused with [`StoreError::QueueFull`] at once.
    pub source_queue_max_legs: usize,
    /// Longest a close waits for in-flight transactions to finish.
    pub close_wait: Duration,
    /// Most journal digests and proofs computed at once; each holds one
    /// connection while it runs.
    pub journal_concurrency: usize,
    /// How long a digest or proof waits for its turn before giving up.
    pub journal_wait: Duration,
    /// A hold's life when the request names no expiry.
    pub hold_default_timeout: Duration,
    /// The longest life a hold may ask for.
    pub hold_max_timeout: Duration,
}

/// The largest group the store applies in one transaction. A leg with an
/// idempotency key that fails inside a group is undone by a savepoint, one
/// subtransaction each; PostgreSQL caches 64 subtransactions per backend,
/// and past that every snapshot in the cluster gets slower.
pub const MAX_GROUP_LEGS: usize = 64;

impl StoreConfig {
    /// Sensible limits for a given database URL.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            pool_size: 32,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
            max_sequence_retries: 1_000,
            group_max_legs: MAX_GROUP_LEGS,
            source_queue_max_legs: 1_024,
            close_wait: Duration::from_secs(10),
            journal_concurrency: 2,
            journal_wait: Duration::from_secs(30),
            hold_default_timeout: Duration::from_secs(7 * 24 * 3600),
            hold_max_timeout: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

pub(crate) fn build_pool(config: &StoreConfig) -> Result<Pool, StoreError> {
    if !(1..=MAX_GROUP_LEGS).contains(&config.group_max_legs) {
        return Err(StoreError::Config(format!(
            "group_max_legs must be between 1 and {MAX_GROUP_LEGS}, not {}",
            config.group_max_legs
        )));
    }
    if config.source_queue_max_legs == 0 {
        return Err(StoreError::Config(
            "source_queue_max_legs must be at least 1".into(),
        ));
    }
    let mut pg: tokio_postgres::Config = config
        .database_url
        .parse()
        .map_err(|err| StoreError::Config(format!("invalid database URL: {err}")))?;
    pg.connect_timeout(config.connect_timeout);
    pg.application_name("ledger");
    // Every write must run at read committed (the trigger insists): each
    // statement then sees what committed before it, which is what makes the
    // sequence-number race sound.
    pg.options(format!(
        "-c statement_timeout={} -c default_transaction_isolation=read\\ committed",
        config.statement_timeout.as_millis()
    ));
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(config.acquire_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|err| StoreError::Config(format!("cannot build the connection pool: {err}")))
}
