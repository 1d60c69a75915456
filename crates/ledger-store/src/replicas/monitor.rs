//! The replica monitor: every replica's replay position, liveness and lag,
//! measured against samples of the primary's position.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::info;

use super::{Replicas, WalPosition};
use crate::{Ledger, StoreError};

/// How many samples of the primary's position are kept: at the monitor's
/// 50 ms, 20 s; a replica further behind counts as lagging without bound.
pub(super) const MAX_SAMPLES: usize = 400;

impl Replicas {
    pub(super) fn sample(&self, position: WalPosition) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == MAX_SAMPLES {
            samples.pop_front();
        }
        samples.push_back((Instant::now(), position));
    }

    /// The lag of a replica that has replayed `replayed`: 0 when it has
    /// everything of the newest sample, else the age of the newest sample
    /// it has; `u64::MAX` when it has none of them.
    pub(super) fn lag_of(&self, replayed: WalPosition) -> u64 {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        match samples.back() {
            None => u64::MAX,
            Some((_, newest)) if replayed >= *newest => 0,
            Some(_) => samples
                .iter()
                .rev()
                .find(|(_, position)| *position <= replayed)
                .map_or(u64::MAX, |(at, _)| {
                    u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)
                }),
        }
    }
}

impl Ledger {
    /// Measures every replica every `interval`, forever: samples the
    /// primary's position, reads each replica's replay position, and from
    /// the two its lag. A replica that does not answer is down until it
    /// answers again. The service runs this when replicas are configured.
    pub async fn run_replica_monitor(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Ok(position) = self.wal_position().await {
                self.replicas.sample(position);
            }
            for replica in &self.replicas.list {
                let measured = tokio::time::timeout(interval.max(Duration::from_secs(1)), async {
                    let client = replica.pool.get().await.map_err(StoreError::from_pool)?;
                    let row = client
                        .query_one("select pg_last_wal_replay_lsn()::text", &[])
                        .await?;
                    let text: Option<&str> = row.get(0);
                    text.unwrap_or("0/0")
                        .parse::<WalPosition>()
                        .map_err(|err| StoreError::Internal(anyhow::anyhow!(err)))
                })
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable("the replica did not answer".into()))
                });
                match measured {
                    Ok(replayed) => {
                        replica.replayed.store(replayed.0, Ordering::Relaxed);
                        replica
                            .lag_ms
                            .store(self.replicas.lag_of(replayed), Ordering::Relaxed);
                        if !replica.up.swap(true, Ordering::Relaxed) {
                            info!(replica = %replica.name, "replica is up again; reads go to it");
                        }
                    }
                    Err(err) => replica.mark_down(&err),
                }
            }
        }
    }
}
