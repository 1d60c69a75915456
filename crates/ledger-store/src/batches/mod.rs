//! Atomic multi-leg batches: up to `MAX_BATCH_LEGS` transfers between
//! customer accounts, out of any number of sources, applied in order, all or
//! nothing, and all at one `created_at` (see `sql/V3__batches.sql`).
//!
//! One attempt is one transaction, in the shapes of the group commit:
//! claim the key, read the heads of every involved account in one query,
//! decide every leg in order in Rust against running per-account state (a
//! source's next sequence number and balance; a destination's balance
//! rises, so a later leg can spend what an earlier one received), fix the
//! batch's time, then one multi-row insert of all legs in leg order.
//!
//! Concurrency control is still the primary key alone. A batch that lost a
//! sequence number to another writer (a unique violation on
//! `transfers_pkey`) is rolled back and retried whole. Two batches can each
//! hold a row the other one's insert waits for (each waits on the other's
//! transaction, a cycle); the insert therefore runs under a short local
//! `lock_timeout`, and a wait that outlasts it counts as a lost race too:
//! the batch rolls back, which frees whatever the other was waiting for,
//! and retries after a random pause. No batch ever waits on anything but a
//! unique key, and none waits for long.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{
    check_batch_size, check_request, AccountId, BatchId, Decimal, DomainError, IdempotencyKey,
    Metadata, Operation, RequestFingerprint, TransferId,
};
use rand::Rng;
use tracing::{debug, instrument};
use uuid::Uuid;

use crate::error::Context;
use crate::records::{find_one, Outcome, Transfer, TransfersById, TRANSFER_COLUMNS};
use crate::{Ledger, StoreError};

mod apply;

use apply::{Attempt, MAX_BATCH_ATTEMPTS};

/// One transfer of a batch, as the client asked for it.
#[derive(Clone, Debug)]
pub struct BatchLeg {
    /// The paying customer account.
    pub source: AccountId,
    /// The receiving customer account.
    pub destination: AccountId,
    /// How much, as asked; scaled to the currency by `decide`.
    pub amount: Decimal,
    /// The row's metadata.
    pub metadata: Option<Metadata>,
}

/// A committed batch: its transfers in leg order, all at `created_at`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Its id.
    pub id: BatchId,
    /// The one `created_at` of all its transfers.
    pub created_at: DateTime<Utc>,
    /// Its transfers, in the order of the request's legs.
    pub transfers: Vec<Transfer>,
}

impl Ledger {
    /// Applies `legs` in order, all or none, at one `created_at`. A refusal
    /// names the first failing leg ([`StoreError::LegRefused`]).
    #[instrument(skip_all, fields(batch.legs = legs.len()))]
    pub async fn batch(
        &self,
        legs: Vec<BatchLeg>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Batch>, StoreError> {
        check_batch_size(legs.len())?;
        // The rules that need no ledger state, before any round trip.
        for (index, leg) in legs.iter().enumerate() {
            check_request(Operation::Transfer, leg.source, leg.destination, leg.amount)
                .map_err(|error| StoreError::LegRefused { leg: index, error })?;
        }
        let batch_id = BatchId::generate();
        // Chosen once, so that a retried batch keeps its ids.
        let transfer_ids: Vec<TransferId> = legs.iter().map(|_| TransferId::generate()).collect();
        let fingerprint = key.map(|_| fingerprint(&legs));

        let mut client = self.client().await?;
        for attempt in 0..MAX_BATCH_ATTEMPTS {
            let tx = client.transaction().await?;
            let outcome = self
                .attempt_batch(
                    &tx,
                    batch_id,
                    &legs,
                    &transfer_ids,
                    key.zip(fingerprint.as_ref()),
                )
                .await?;
            match outcome {
                Attempt::Committed(batch) => {
                    tx.commit().await?;
                    return Ok(Outcome {
                        value: batch,
                        replayed: false,
                    });
                }
                Attempt::Replay(original) => {
                    drop(tx);
                    let batch = fetch_batch(&client, original).await?;
                    return Ok(Outcome {
                        value: batch,
                        replayed: true,
                    });
                }
                Attempt::LostRace => {
                    drop(tx);
                    self.batch_lost_races.fetch_add(1, Ordering::Relaxed);
                    debug!(attempt, "batch lost a race; retrying");
                    // Spread out the batches racing for the same accounts.
                    let cap_us = 2_000 * u64::from(attempt.min(20) + 1);
                    let pause_us = rand::thread_rng().gen_range(0..=cap_us);
                    tokio::time::sleep(Duration::from_micros(pause_us)).await;
                }
            }
        }
        let busiest = legs[0].source;
        Err(StoreError::Contention(busiest))
    }

    /// Reads one batch.
    pub async fn get_batch(&self, id: BatchId) -> Result<Batch, StoreError> {
        let client = self.client().await?;
        fetch_batch(&client, id).await
    }
}

async fn fetch_batch(client: &impl GenericClient, id: BatchId) -> Result<Batch, StoreError> {
    let row = find_one(
        client,
        "select created_at, transfer_ids from ledger.batches where batch_id = $1",
        &[&id.as_uuid()],
        DomainError::BatchNotFound(id),
    )
    .await?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let ids: Vec<Uuid> = row.try_get("transfer_ids")?;
    let statement = client
        .prepare_cached(&format!(
            "select {TRANSFER_COLUMNS} from ledger.transfers where transfer_id = any($1::uuid[])"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&ids])
        .await
        .context("read a batch's transfers")?;
    let mut by_id = TransfersById::read(&rows)?;
    let transfers = ids
        .iter()
        .map(|&id| by_id.take(id, || format!("batch {id} names a missing transfer")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        id,
        created_at,
        transfers,
    })
}

/// What makes two batches the same request: every leg's accounts, amount
/// value and metadata, in order.
fn fingerprint(legs: &[BatchLeg]) -> RequestFingerprint {
    let mut parts: Vec<String> = Vec::with_capacity(legs.len() * 4 + 1);
    parts.push(legs.len().to_string());
    for leg in legs {
        parts.push(leg.source.to_string());
        parts.push(leg.destination.to_string());
        parts.push(leg.amount.normalize().to_string());
        parts.push(
            leg.metadata
                .as_ref()
                .map(Metadata::canonical)
                .unwrap_or_default(),
        );
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    RequestFingerprint::of("batch", &parts)
}
