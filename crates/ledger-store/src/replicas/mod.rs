//! Reads on PostgreSQL streaming replicas (hot standbys), and which server
//! serves each read.
//!
//! The store holds one pool per replica next to the primary's. A read names
//! the consistency it needs ([`ReadConsistency`]); [`Ledger::read_routed`]
//! and [`Ledger::read_final`] choose the server, run the read on a handle
//! whose pool is that server's (every read method takes its connection from
//! `Ledger::client`, so the same SQL runs on either), and fall back to the
//! primary whenever a replica cannot give the answer the read needs: it is
//! down, behind the client's position past the wait bound, lagging past the
//! staleness bound, its query was cancelled by a replay conflict, or its
//! as-of answer is not final. A fallback is never an error: the primary
//! answers every read.
//!
//! Writes and every read without an opt-in stay on the primary. Why a final
//! answer read on a replica equals the primary's is in docs/design.md
//! ("Reads on replicas").

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tracing::warn;

use crate::{config, Ledger, StoreConfig, StoreError};

mod monitor;
mod position;

use monitor::MAX_SAMPLES;
pub use position::WalPosition;

/// What a read needs from the server that answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    /// The primary: every write acknowledged before the read is seen.
    Primary,
    /// A replica that has replayed at least this position (the client's
    /// own write), waited for up to `StoreConfig::replica_wait`; else the
    /// primary. Never older than the position.
    AtLeast(WalPosition),
    /// Any replica whose lag is within `StoreConfig::replica_max_lag`: may
    /// be stale by up to that much, and says by how much.
    Replica,
}

/// The server that answered a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServedBy {
    /// The primary.
    Primary,
    /// A replica, by its name (`host:port`), with its lag when the read was
    /// routed, in milliseconds.
    Replica {
        /// `host:port` of the replica.
        name: String,
        /// How far behind the primary it was, as last measured.
        lag_ms: u64,
    },
}

/// A read's answer and the server that gave it.
#[derive(Debug)]
pub struct Routed<T> {
    /// The answer.
    pub value: T,
    /// Who gave it.
    pub served_by: ServedBy,
}

/// Why a read went to the primary although a replica could have been asked
/// (a label of `/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// No replica is configured, or none is up.
    NoReplica,
    /// No replica had replayed the client's position within the wait bound.
    Behind,
    /// Every replica up lags past the staleness bound.
    Lagging,
    /// The replica failed the read (connection lost, replay conflict).
    Failed,
    /// The replica's as-of answer was not final (or not found there yet).
    NotFinal,
}

impl Fallback {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [Fallback; 5] = [
        Self::NoReplica,
        Self::Behind,
        Self::Lagging,
        Self::Failed,
        Self::NotFinal,
    ];

    /// The reason's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoReplica => "no_replica",
            Self::Behind => "behind",
            Self::Lagging => "lagging",
            Self::Failed => "failed",
            Self::NotFinal => "not_final",
        }
    }
}

/// The kinds of reads that may go to a replica (a label of `/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    /// An as-of read, sent to a replica by default.
    Final,
    /// A read with `Ledger-Min-Position`.
    MinPosition,
    /// A read with `?consistency=replica`.
    Stale,
}

impl ReadKind {
    /// Every kind, in the order `/metrics` lists them.
    pub const ALL: [ReadKind; 3] = [Self::Final, Self::MinPosition, Self::Stale];

    /// The kind's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Final => "final",
            Self::MinPosition => "min_position",
            Self::Stale => "stale",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One replica and what the store last learnt about it.
pub(crate) struct Replica {
    name: String,
    pool: Pool,
    /// The last replay position seen (0: none yet).
    replayed: AtomicU64,
    /// Its lag as last measured, in ms; `u64::MAX` while it is down.
    lag_ms: AtomicU64,
    up: AtomicBool,
    /// Reads it answered, by [`ReadKind`].
    served: [AtomicU64; 3],
}

impl Replica {
    fn lag_ms(&self) -> u64 {
        self.lag_ms.load(Ordering::Relaxed)
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark_down(&self, why: &StoreError) {
        if self.up.swap(false, Ordering::Relaxed) {
            warn!(replica = %self.name, error = %why, "replica is down; its reads go elsewhere");
        }
        self.lag_ms.store(u64::MAX, Ordering::Relaxed);
    }
}

/// The replicas and the routing counters; shared by every clone of a
/// [`Ledger`].
pub(crate) struct Replicas {
    list: Vec<Replica>,
    max_lag: Duration,
    wait: Duration,
    /// Round-robin start among the replicas.
    next: AtomicUsize,
    /// Reads sent to the primary, by [`ReadKind`] then [`Fallback`].
    fallbacks: [[AtomicU64; 5]; 3],
    /// The primary's WAL insert position, sampled by the monitor: a
    /// replica's lag is the age of the newest sample it has replayed.
    samples: Mutex<VecDeque<(Instant, WalPosition)>>,
}

impl Replicas {
    pub(crate) fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let list = config
            .replica_urls
            .iter()
            .map(|url| {
                let replica_config = StoreConfig {
                    database_url: url.clone(),
                    ..config.clone()
                };
                Ok(Replica {
                    name: server_name(url),
                    pool: config::build_pool(&replica_config)?,
                    replayed: AtomicU64::new(0),
                    // Unknown until the monitor (or a read) has measured it.
                    lag_ms: AtomicU64::new(u64::MAX),
                    up: AtomicBool::new(true),
                    served: Default::default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            list,
            max_lag: config.replica_max_lag,
            wait: config.replica_wait,
            next: AtomicUsize::new(0),
            fallbacks: Default::default(),
            samples: Mutex::new(VecDeque::with_capacity(MAX_SAMPLES)),
        })
    }

    /// The replicas, starting at the next in round-robin order.
    fn rotation(&self) -> impl Iterator<Item = &Replica> {
        let start = match self.list.len() {
            0 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        self.list[start..].iter().chain(&self.list[..start])
    }

    fn fell_back(&self, kind: ReadKind, why: Fallback) {
        self.fallbacks[kind.index()][why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// `host:port` of a URL, for logs and metrics (never the user or password).
fn server_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// One replica's state for `/metrics`.
#[derive(Clone, Debug)]
pub struct ReplicaStatus {
    /// `host:port`.
    pub name: String,
    /// Whether its last check or read succeeded.
    pub up: bool,
    /// Its lag as last measured, in ms (`None` while unknown or down).
    pub lag_ms: Option<u64>,
    /// The last replay position seen.
    pub replayed: WalPosition,
    /// Reads it answered, by [`ReadKind`] (in [`ReadKind::ALL`]'s order).
    pub served: [u64; 3],
}

/// The routing decisions so far, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct RoutingStatus {
    /// Every replica.
    pub replicas: Vec<ReplicaStatus>,
    /// Reads of each [`ReadKind`] sent to the primary, by [`Fallback`]
    /// (both in their `ALL` order).
    pub fallbacks: [[u64; 5]; 3],
}

/// Whether `err` says the replica, not the read, failed: anything but an
/// answer about the request itself (a rule's refusal, a bad cursor). That
/// covers a lost connection, a query cancelled by a replay conflict
/// (SQLSTATE 40001 on a standby), and a database not replayed there yet
/// (3D000 when the pool connects).
fn is_replica_failure(err: &StoreError) -> bool {
    !matches!(
        err,
        StoreError::Domain(_) | StoreError::LegRefused { .. } | StoreError::InvalidCursor
    )
}

impl Ledger {
    /// The primary's WAL position now: read after a write's commit, it is
    /// at or after that commit's record (`pg_current_wal_insert_lsn`, not
    /// the flush position, which may trail a commit made with
    /// `synchronous_commit = off`).
    pub async fn wal_position(&self) -> Result<WalPosition, StoreError> {
        let client = self.primary_client().await?;
        let row = client
            .query_one("select pg_current_wal_insert_lsn()::text", &[])
            .await?;
        row.get::<_, &str>(0)
            .parse()
            .map_err(|err: String| StoreError::Internal(anyhow::anyhow!(err)))
    }

    /// Whether replicas are configured.
    pub fn has_replicas(&self) -> bool {
        !self.replicas.list.is_empty()
    }

    /// Runs `read` on a server that gives it `consistency`: the primary, or
    /// a replica (see [`ReadConsistency`]). A replica that fails the read is
    /// marked down and the read runs again on the primary.
    pub async fn read_routed<T, F, Fut>(
        &self,
        consistency: ReadConsistency,
        read: F,
    ) -> Result<Routed<T>, StoreError>
    where
        F: Fn(Ledger) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let replicas = &self.replicas;
        let kind = match consistency {
            ReadConsistency::Primary => return self.on_primary(read).await,
            ReadConsistency::AtLeast(_) => ReadKind::MinPosition,
            ReadConsistency::Replica => ReadKind::Stale,
        };
        if !replicas.list.iter().any(Replica::is_up) {
            replicas.fell_back(kind, Fallback::NoReplica);
            return self.on_primary(read).await;
        }
        let fallback = match consistency {
            ReadConsistency::AtLeast(position) => match self.at_least(position, &read).await {
                Ok(answer) => return answer,
                Err(why) => why,
            },
            _ => {
                let mut why = Fallback::Lagging;
                for replica in replicas.rotation() {
                    let lag_ms = replica.lag_ms();
                    if !replica.is_up() || lag_ms > millis(replicas.max_lag) {
                        continue;
                    }
                    match read(self.on_replica(replica, None)).await {
                        Ok(value) => return Ok(self.served(replica, kind, value, lag_ms)),
                        Err(err) if is_replica_failure(&err) => {
                            replica.mark_down(&err);
                            why = Fallback::Failed;
                        }
                        // The replica's answer, e.g. an account it does not
                        // have yet: a stale read may say so.
                        Err(err) => return Err(err),
                    }
                }
                why
            }
        };
        replicas.fell_back(kind, fallback);
        self.on_primary(read).await
    }

    /// An as-of read whose answer cannot change once final: tried on a
    /// replica (whatever its lag: a final answer is the same on every
    /// server), kept when `is_final` says so, else read on the primary.
    pub async fn read_final<T, F, Fut>(
        &self,
        read: F,
        is_final: impl Fn(&T) -> bool,
    ) -> Result<Routed<T>, StoreError>
    where
        F: Fn(Ledger) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let replicas = &self.replicas;
        let kind = ReadKind::Final;
        let why = match replicas.rotation().find(|replica| replica.is_up()) {
            None => Fallback::NoReplica,
            Some(replica) => {
                let lag_ms = replica.lag_ms();
                match read(self.on_replica(replica, None)).await {
                    Ok(value) if is_final(&value) => {
                        return Ok(self.served(replica, kind, value, lag_ms))
                    }
                    Ok(_) => Fallback::NotFinal,
                    Err(err) if is_replica_failure(&err) => {
                        replica.mark_down(&err);
                        Fallback::Failed
                    }
                    // Not found there may only mean not replayed yet.
                    Err(_) => Fallback::NotFinal,
                }
            }
        };
        if self.has_replicas() {
            replicas.fell_back(kind, why);
        }
        self.on_primary(read).await
    }

    /// Tries the replicas that may have replayed `position`, again every
    /// couple of milliseconds until the wait bound; says why it gave up.
    async fn at_least<T, F, Fut>(
        &self,
        position: WalPosition,
        read: &F,
    ) -> Result<Result<Routed<T>, StoreError>, Fallback>
    where
        F: Fn(Ledger) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = Instant::now() + self.replicas.wait;
        let mut why = Fallback::Behind;
        loop {
            for replica in self.replicas.rotation().filter(|r| r.is_up()) {
                let lag_ms = replica.lag_ms();
                match read(self.on_replica(replica, Some(position))).await {
                    Ok(value) => {
                        return Ok(Ok(self.served(
                            replica,
                            ReadKind::MinPosition,
                            value,
                            lag_ms,
                        )))
                    }
                    Err(StoreError::ReplicaBehind) => {}
                    Err(err) if is_replica_failure(&err) => {
                        replica.mark_down(&err);
                        why = Fallback::Failed;
                    }
                    // The replica has the client's write, so its answer
                    // (e.g. not found) is the primary's too. Served by it.
                    Err(err) => {
                        replica.served[ReadKind::MinPosition.index()]
                            .fetch_add(1, Ordering::Relaxed);
                        return Ok(Err(err));
                    }
                }
            }
            if Instant::now() >= deadline || !self.replicas.list.iter().any(Replica::is_up) {
                return Err(why);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn served<T>(&self, replica: &Replica, kind: ReadKind, value: T, lag_ms: u64) -> Routed<T> {
        replica.served[kind.index()].fetch_add(1, Ordering::Relaxed);
        Routed {
            value,
            served_by: ServedBy::Replica {
                name: replica.name.clone(),
                lag_ms: if lag_ms == u64::MAX { 0 } else { lag_ms },
            },
        }
    }

    async fn on_primary<T, F, Fut>(&self, read: F) -> Result<Routed<T>, StoreError>
    where
        F: Fn(Ledger) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        Ok(Routed {
            value: read(self.primary()).await?,
            served_by: ServedBy::Primary,
        })
    }

    /// This ledger reading from the primary.
    fn primary(&self) -> Ledger {
        Self {
            pool: self.primary_pool.clone(),
            read_floor: None,
            ..self.clone()
        }
    }

    /// This ledger reading from `replica`; with a `floor`, every connection
    /// it takes must have replayed that far (see `Ledger::client`).
    fn on_replica(&self, replica: &Replica, floor: Option<WalPosition>) -> Ledger {
        Self {
            pool: replica.pool.clone(),
            read_floor: floor,
            ..self.clone()
        }
    }

    pub(crate) async fn primary_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.primary_pool.get().await.map_err(StoreError::from_pool)
    }

    /// Checks that the connection's server has replayed `floor`; the
    /// statements run on it afterwards see at least what it had then.
    pub(crate) async fn check_floor(
        client: &deadpool_postgres::Object,
        floor: WalPosition,
    ) -> Result<(), StoreError> {
        let row = client
            .query_one("select pg_last_wal_replay_lsn()::text", &[])
            .await?;
        let replayed: Option<&str> = row.get(0);
        let replayed: WalPosition = match replayed {
            Some(text) => text
                .parse()
                .map_err(|err: String| StoreError::Internal(anyhow::anyhow!(err)))?,
            // Not in recovery: a promoted standby has everything it had.
            None => return Ok(()),
        };
        if replayed >= floor {
            Ok(())
        } else {
            Err(StoreError::ReplicaBehind)
        }
    }

    /// Routing decisions and each replica's state, without IO.
    pub fn routing_status(&self) -> RoutingStatus {
        let replicas = &self.replicas;
        RoutingStatus {
            replicas: replicas
                .list
                .iter()
                .map(|replica| ReplicaStatus {
                    name: replica.name.clone(),
                    up: replica.is_up(),
                    lag_ms: Some(replica.lag_ms()).filter(|lag| *lag != u64::MAX),
                    replayed: WalPosition(replica.replayed.load(Ordering::Relaxed)),
                    served: std::array::from_fn(|i| replica.served[i].load(Ordering::Relaxed)),
                })
                .collect(),
            fallbacks: std::array::from_fn(|kind| {
                std::array::from_fn(|why| replicas.fallbacks[kind][why].load(Ordering::Relaxed))
            }),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_named_by_host_and_port_without_credentials() {
        assert_eq!(
            server_name("postgres://user:secret@10.0.0.2:5433/ledger?sslmode=disable"),
            "10.0.0.2:5433"
        );
        assert_eq!(
            server_name("postgres://127.0.0.1:54342/postgres"),
            "127.0.0.1:54342"
        );
    }
}
