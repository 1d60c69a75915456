use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::{Ledger, StoreError};

impl Ledger {
    /// Writes a horizon mark (see `ledger.advance_horizon`) and returns the
    /// final horizon: as-of reads for earlier times never change again.
    /// Runs in its own autocommit transaction, as the mark requires.
    pub async fn advance_horizon(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("select ledger.advance_horizon()", &[])
            .await?;
        // -infinity (no final horizon yet) does not map to a DateTime.
        Ok(row.try_get::<_, DateTime<Utc>>(0).ok())
    }

    /// The current final horizon, if any.
    pub async fn final_horizon(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("select ledger.final_horizon()", &[])
            .await?;
        Ok(row.try_get::<_, DateTime<Utc>>(0).ok())
    }

    /// Advances the horizon every `interval`, forever. Point-in-time reads
    /// become final about one interval after the time they ask for, and the
    /// write path can only checkpoint incoming totals up to the horizon, so
    /// the service runs this in the background.
    pub async fn run_horizon_ticker(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match self.advance_horizon().await {
                Ok(_) if failing => {
                    info!("horizon ticker recovered");
                    failing = false;
                }
                Ok(_) => {}
                // Log a failure streak once, not every tick.
                Err(err) if !failing => {
                    warn!(error = %err, "horizon ticker cannot advance the horizon");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }
}
