//! The ledger's PostgreSQL store. It owns the pool, the embedded migrations
//! (`sql/`) and every SQL statement the service issues; nothing above it
//! writes SQL.
//!
//! Writes follow one pattern: read both accounts' heads (the source's next
//! sequence number and balance), let `ledger_domain::decide` check every
//! rule, then insert the transfer row
//! with `on conflict (source_account_id, source_seq) do nothing`. The database
//! checks the same rules again in its trigger. When another transfer won the
//! sequence number, the insert returns nothing and the store retries with the
//! new head: the unique key is the only concurrency control.

mod accounts;
mod balances;
mod batches;
mod closing;
mod config;
mod cursor;
mod error;
mod group_commit;
mod heads;
mod holds;
mod horizon;
mod idempotency;
mod journal;
mod keys;
mod migrate;
mod queries;
mod records;
mod slots;
mod statements;
mod transfers;
mod verify;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use deadpool_postgres::Pool;
use ledger_domain::AccountId;

use crate::cursor::CursorKey;
use crate::group_commit::Queues;
use crate::slots::Slots;

use crate::horizon::HorizonSeen;
pub use accounts::MAX_PAGE_SIZE;
pub use balances::PAGE_BYTE_BUDGET;
pub use config::{StoreConfig, MAX_GROUP_LEGS};
pub use error::{Constraint, StoreError};
pub use group_commit::{GroupCommitMetrics, GroupCommitStats};
pub use journal::{ConsistencyProof, Digest, InclusionProof, TreeHead};
pub use keys::{ApiKey, NewApiKey};
pub use queries::TransferQuery;
pub use statements::{StatementLine, StatementReader};
pub use verify::{CurrencyTotal, VerifyReport, Violation, RULES};

/// The statements of the transfer write path, for benchmarks that must drive
/// the same SQL as the store (see `scripts/bench.sh`).
pub mod sql {
    pub use crate::heads::WRITE_HEAD;
    pub use crate::transfers::insert_transfer_sql;
}
pub use batches::{Batch, BatchLeg};
pub use holds::{Hold, HoldExpiry, HoldStatus, NewHold};
pub use records::{
    Account, Balance, Direction, HistoryEntry, HistoryQuery, NewAccount, Outcome, Page, Posting,
    Transfer, TransferKind,
};

/// Handle to the ledger in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    config: Arc<StoreConfig>,
    /// System accounts known to exist (they are never deleted).
    known_system_accounts: Arc<RwLock<HashSet<AccountId>>>,
    /// Closes in flight; each holds two connections (see `close_account`).
    close_slots: Slots,
    /// Digests and proofs in flight: they read every chain head, so without
    /// a bound of their own a burst of them would take the whole pool and
    /// stall every other request.
    journal_slots: Slots,
    /// The first heap block whose BRIN range the journal sequencer has not
    /// summarized yet (see `ledger.summarize_journal_index`).
    journal_summarized: Arc<std::sync::atomic::AtomicI64>,
    /// The key pagination cursors are signed with, read once from the
    /// database (see `sql/V2__cursor_secret.sql`).
    cursor_key: Arc<tokio::sync::OnceCell<CursorKey>>,
    /// The write queue of every source with writes in flight here.
    queues: Arc<Queues>,
    /// What the group commit has done so far.
    group_metrics: Arc<GroupCommitMetrics>,
    /// The API key this handle writes for (see [`Ledger::as_author`]).
    author: Option<uuid::Uuid>,
    /// Races a batch lost (each one rolled the batch back and retried it).
    batch_lost_races: Arc<AtomicU64>,
    /// The final horizon the last advance or read of it returned.
    horizon_seen: Arc<HorizonSeen>,
}

/// The connection pool at one moment (for `/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Most connections the pool may hold (`StoreConfig::pool_size`).
    pub max_size: usize,
    /// Connections open now, idle or in use.
    pub open: usize,
    /// Open connections handed out to requests now.
    pub in_use: usize,
    /// Requests waiting for a connection now.
    pub waiting: usize,
}

impl Ledger {
    /// Builds the connection pool. Connections are opened lazily.
    pub fn connect(config: StoreConfig) -> Result<Self, StoreError> {
        let pool = config::build_pool(&config)?;
        Ok(Self {
            pool,
            close_slots: Slots::new((config.pool_size / 4).max(1)),
            journal_slots: Slots::new(config.journal_concurrency.max(1)),
            config: Arc::new(config),
            known_system_accounts: Arc::default(),
            journal_summarized: Arc::default(),
            cursor_key: Arc::default(),
            queues: Arc::default(),
            group_metrics: Arc::default(),
            author: None,
            batch_lost_races: Arc::default(),
            horizon_seen: Arc::default(),
        })
    }

    /// The same ledger, recording `key` as the author of every write made
    /// through the returned handle (`created_by` on transfers and batches,
    /// `opened_by` and `closed_by` on accounts). The HTTP layer makes one per request from
    /// the caller's API key; `None` records no author.
    pub fn as_author(&self, key: Option<uuid::Uuid>) -> Self {
        Self {
            author: key,
            ..self.clone()
        }
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The group commit's counters (groups, sizes, lost races, queue waits)
    /// since this `Ledger` was built; shared by its clones.
    pub fn group_commit_metrics(&self) -> &GroupCommitMetrics {
        &self.group_metrics
    }

    /// Races batches lost to other writers since this `Ledger` was built
    /// (a taken sequence number, a lock wait past its timeout): each one
    /// rolled its batch back and ran it again.
    pub fn batch_lost_races(&self) -> u64 {
        self.batch_lost_races.load(Ordering::Relaxed)
    }

    /// The connection pool now: read from the pool's own counters, no IO.
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            open: status.size,
            in_use: status.size.saturating_sub(status.available),
            waiting: status.waiting,
        }
    }

    /// The final horizon as last seen by [`Self::advance_horizon`] or
    /// [`Self::final_horizon`], without IO; `None` before either answered.
    pub fn last_seen_final_horizon(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.horizon_seen.get()
    }

    /// Checks that the database answers and that the schema is migrated.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("select to_regclass('ledger.transfers') is not null", &[])
            .await?;
        if row.get::<_, bool>(0) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("schema is not migrated".into()))
        }
    }

    /// The cursor key, read from the database on first use: it never
    /// changes while the service runs.
    async fn cursor_key(&self) -> Result<&CursorKey, StoreError> {
        self.cursor_key
            .get_or_try_init(|| async {
                let client = self.client().await?;
                let row = client
                    .query_one("select secret from ledger.cursor_secret", &[])
                    .await?;
                CursorKey::new(row.try_get::<_, &[u8]>(0)?)
            })
            .await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(StoreError::from_pool)
    }
}
