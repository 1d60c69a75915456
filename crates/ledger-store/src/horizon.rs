use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::{Ledger, StoreError};

/// The final horizon last returned by the database, kept so that `/metrics`
/// can show the horizon's lag on every scrape without a query.
#[derive(Debug)]
pub(crate) struct HorizonSeen {
    /// Microseconds since the Unix epoch; [`Self::NONE`] before any answer.
    micros: AtomicI64,
}

impl HorizonSeen {
    const NONE: i64 = i64::MIN;

    /// The horizon last seen, if any.
    pub(crate) fn get(&self) -> Option<DateTime<Utc>> {
        match self.micros.load(Ordering::Relaxed) {
            Self::NONE => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }

    /// Remembers `horizon`; a horizon never moves back, so neither does this.
    fn saw(&self, horizon: Option<DateTime<Utc>>) {
        if let Some(horizon) = horizon {
            self.micros
                .fetch_max(horizon.timestamp_micros(), Ordering::Relaxed);
        }
    }
}

impl Default for HorizonSeen {
    fn default() -> Self {
        Self {
            micros: AtomicI64::new(Self::NONE),
        }
    }
}

impl Ledger {
    /// Writes a horizon mark (see `ledger.advance_horizon`) and returns the
    /// final horizon: as-of reads for earlier times never change again.
    /// Runs in its own autocommit transaction, as the mark requires.
    pub async fn advance_horizon(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read_horizon("select ledger.advance_horizon()").await
    }

    /// The current final horizon, if any.
    pub async fn final_horizon(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read_horizon("select ledger.final_horizon()").await
    }

    /// Runs `sql`, which selects a final horizon, and remembers it.
    async fn read_horizon(&self, sql: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let row = client.query_one(sql, &[]).await?;
        // -infinity (no final horizon yet) does not map to a DateTime.
        let horizon = row.try_get::<_, DateTime<Utc>>(0).ok();
        self.horizon_seen.saw(horizon);
        Ok(horizon)
    }

    /// Advances the horizon every `interval`, forever. Point-in-time reads
    /// become final about one interval after the time they ask for, and the
    /// write path can only checkpoint incoming totals up to the horizon, so
    /// the service runs this in the background.
    pub async fn run_horizon_ticker(self, interval: Duration) {
        let task = "horizon ticker";
        run_every(interval, task, "cannot advance the horizon", || {
            self.advance_horizon()
        })
        .await
    }
}

/// Runs `tick` every `interval`, forever: a background task of the service
/// (`task` names it in the log). A streak of failures is logged once, as
/// `<task> <failing>`, and its end once, as `<task> recovered`, not every
/// tick.
pub(crate) async fn run_every<T, F>(
    interval: Duration,
    task: &str,
    failing_as: &str,
    mut tick: impl FnMut() -> F,
) where
    F: Future<Output = Result<T, StoreError>>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        match tick().await {
            Ok(_) if failing => {
                info!("{task} recovered");
                failing = false;
            }
            Ok(_) => {}
            Err(err) if !failing => {
                warn!(error = %err, "{task} {failing_as}");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
