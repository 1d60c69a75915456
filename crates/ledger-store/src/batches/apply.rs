//! One attempt at a batch, in one transaction: claim the key, read every
//! involved account's head, decide every leg in order, fix the batch's time,
//! insert all legs in one statement, record the batch.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{
    decide, AccountId, BatchId, Currency, Decimal, DestinationState, DomainError, IdempotencyKey,
    Metadata, Operation, RequestFingerprint, SourceHead, TransferId,
};
use tokio_postgres::error::SqlState;
use tracing::debug;
use uuid::Uuid;

use super::{Batch, BatchLeg};
use crate::error::{
    constraint_violation, is_unique_violation, violates, Constraint, Context, WriteContext,
};
use crate::heads::{read_source_head, HEADS};
use crate::records::{TransfersById, TRANSFER_COLUMNS};
use crate::{Ledger, StoreError};

/// How many times a batch is tried before the store gives up on contention.
/// Bounded low: each attempt may have waited up to [`BATCH_LOCK_TIMEOUT`].
pub(super) const MAX_BATCH_ATTEMPTS: u32 = 40;

/// How long a batch's insert waits for another transaction's uncommitted
/// row before it rolls back and retries (see the module comment). Longer
/// than a group commit of single writes takes, so those are waited for,
/// not retried.
const BATCH_LOCK_TIMEOUT: &str = "200ms";

/// Fixes the batch's time (and hands it to the trigger) and bounds the
/// insert's waits; both local to the transaction.
const BATCH_TIME: &str = "\
    select ledger.begin_batch_time($1::uuid[]) as batch_at,
           set_config('lock_timeout', $2, true)";

/// Every leg in one statement, in leg order: the trigger of each row sees
/// the rows before it, so a later leg's balance includes what an earlier leg
/// paid in, and each source's hashes and totals chain. No `on conflict`: a
/// row another transaction took aborts the whole statement.
fn insert_batch_sql() -> String {
    format!(
        "insert into ledger.transfers (source_account_id, source_seq, transfer_id, \
             destination_account_id, currency_code, amount, metadata, created_by) \
         select leg.source, leg.seq, leg.transfer_id, leg.destination, leg.currency, \
                leg.amount, leg.metadata, $8 \
           from unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::text[], \
                       $6::numeric[], $7::jsonb[]) \
                with ordinality as leg(source, seq, transfer_id, destination, currency, \
                                       amount, metadata, position) \
          order by leg.position \
         returning {TRANSFER_COLUMNS}"
    )
}

const INSERT_BATCH: &str = "\
    insert into ledger.batches (batch_id, created_at, transfer_ids, created_by)
    values ($1, $2, $3, $4)";

const CLAIM_BATCH_KEY: &str = "\
    select outcome, batch_id from ledger.claim_batch_idempotency_key($1, $2, $3)";

/// One leg, decided: the row to insert.
struct Row {
    seq: i64,
    currency: Currency,
    amount: Decimal,
}

/// How one attempt ended.
pub(super) enum Attempt {
    Committed(Batch),
    Replay(BatchId),
    LostRace,
}

impl Ledger {
    pub(super) async fn attempt_batch(
        &self,
        tx: &impl GenericClient,
        batch_id: BatchId,
        legs: &[BatchLeg],
        transfer_ids: &[TransferId],
        key: Option<(&IdempotencyKey, &RequestFingerprint)>,
    ) -> Result<Attempt, StoreError> {
        if let Some((key, fingerprint)) = key {
            let statement = tx.prepare_cached(CLAIM_BATCH_KEY).await?;
            let row = tx
                .query_one(
                    &statement,
                    &[&key.as_str(), &fingerprint.as_bytes(), &batch_id.as_uuid()],
                )
                .await?;
            match row.try_get::<_, &str>("outcome")? {
                "claimed" => {}
                "replay" => {
                    let original: Uuid = row.try_get("batch_id")?;
                    return Ok(Attempt::Replay(BatchId::from(original)));
                }
                "mismatch" => return Err(DomainError::IdempotencyKeyReused.into()),
                "in_flight" => return Err(StoreError::IdempotencyInFlight),
                other => {
                    return Err(StoreError::Internal(anyhow::anyhow!(
                        "unexpected idempotency outcome {other:?}"
                    )))
                }
            }
        }

        let mut accounts: Vec<Uuid> = legs
            .iter()
            .flat_map(|leg| [leg.source.as_uuid(), leg.destination.as_uuid()])
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        let statement = tx
            .prepare_cached(HEADS)
            .await
            .context("prepare the batch's heads")?;
        let mut heads: HashMap<AccountId, SourceHead> = HashMap::with_capacity(accounts.len());
        for row in tx
            .query(&statement, &[&accounts])
            .await
            .context("read the batch's heads")?
        {
            let head = read_source_head(&row)?;
            heads.insert(head.account, head);
        }

        // Every leg in order against the running heads.
        let mut rows = Vec::with_capacity(legs.len());
        for (index, leg) in legs.iter().enumerate() {
            let refuse = |error: DomainError| StoreError::LegRefused { leg: index, error };
            let source = *heads
                .get(&leg.source)
                .ok_or_else(|| refuse(DomainError::AccountNotFound(leg.source)))?;
            let destination = heads
                .get(&leg.destination)
                .map(|head| DestinationState {
                    account: head.account,
                    kind: head.kind,
                    currency: head.currency,
                    state: head.state,
                })
                .ok_or_else(|| refuse(DomainError::AccountNotFound(leg.destination)))?;
            let decision =
                decide(Operation::Transfer, &source, &destination, leg.amount).map_err(refuse)?;
            if let Some(head) = heads.get_mut(&leg.source) {
                head.next_seq += 1;
                head.balance = decision.source_balance_after;
            }
            if let Some(head) = heads.get_mut(&leg.destination) {
                head.balance += decision.amount;
            }
            rows.push(Row {
                seq: decision.seq,
                currency: source.currency,
                amount: decision.amount,
            });
        }

        let mut sources: Vec<Uuid> = legs.iter().map(|leg| leg.source.as_uuid()).collect();
        sources.sort_unstable();
        sources.dedup();
        let statement = tx.prepare_cached(BATCH_TIME).await?;
        let batch_at: DateTime<Utc> = tx
            .query_one(&statement, &[&sources, &BATCH_LOCK_TIMEOUT])
            .await?
            .try_get("batch_at")?;

        // A savepoint, so that a refused batch can be re-applied leg by leg
        // to find the leg the refusal belongs to (one subtransaction).
        tx.batch_execute("savepoint batch_insert").await?;
        let insert = tx
            .prepare_cached(&insert_batch_sql())
            .await
            .context("prepare the batch insert")?;
        let inserted = match insert_legs(
            tx,
            &insert,
            legs,
            transfer_ids,
            &rows,
            0..legs.len(),
            self.author,
        )
        .await
        {
            Ok(inserted) => inserted,
            Err(err) if lost_race(&err) => return Ok(Attempt::LostRace),
            Err(err) => {
                tx.batch_execute("rollback to savepoint batch_insert")
                    .await?;
                return self
                    .find_refused_leg(tx, &insert, legs, transfer_ids, &rows, err)
                    .await;
            }
        };
        if inserted.len() != legs.len() {
            return Ok(Attempt::LostRace);
        }
        let mut by_id = TransfersById::read(&inserted)?;
        let transfers = transfer_ids
            .iter()
            .map(|id| by_id.take(id.as_uuid(), || "an inserted leg was not returned".into()))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = transfer_ids.iter().map(TransferId::as_uuid).collect();
        let statement = tx.prepare_cached(INSERT_BATCH).await?;
        tx.execute(
            &statement,
            &[&batch_id.as_uuid(), &batch_at, &ids, &self.author],
        )
        .await?;
        Ok(Attempt::Committed(Batch {
            id: batch_id,
            created_at: batch_at,
            transfers,
        }))
    }

    /// The database refused the batch as a whole (its trigger disagreeing
    /// with the Rust decisions, e.g. an account closed since the heads were
    /// read). Applies the legs one statement each, in order, after the
    /// savepoint: the first refusal is the batch's answer. The caller's
    /// transaction is rolled back either way.
    async fn find_refused_leg(
        &self,
        tx: &impl GenericClient,
        insert: &tokio_postgres::Statement,
        legs: &[BatchLeg],
        transfer_ids: &[TransferId],
        rows: &[Row],
        batch_error: tokio_postgres::Error,
    ) -> Result<Attempt, StoreError> {
        for index in 0..legs.len() {
            match insert_legs(
                tx,
                insert,
                legs,
                transfer_ids,
                rows,
                index..index + 1,
                self.author,
            )
            .await
            {
                Ok(_) => {}
                Err(err) if lost_race(&err) => return Ok(Attempt::LostRace),
                Err(err) => {
                    let leg = &legs[index];
                    let context = WriteContext {
                        source: leg.source,
                        destination: leg.destination,
                        currency: rows[index].currency,
                        operation: ledger_domain::Operation::Transfer,
                        link: None,
                    };
                    return Err(match constraint_violation(&err, &context) {
                        Some(error) => StoreError::LegRefused { leg: index, error },
                        None => err.into(),
                    });
                }
            }
        }
        // Leg by leg, nothing was refused: the ledger changed in between.
        // The whole batch goes again with fresh heads.
        debug!(error = %batch_error, "a refused batch went through leg by leg; retrying");
        Ok(Attempt::LostRace)
    }
}

async fn insert_legs(
    tx: &impl GenericClient,
    insert: &tokio_postgres::Statement,
    legs: &[BatchLeg],
    transfer_ids: &[TransferId],
    rows: &[Row],
    range: std::ops::Range<usize>,
    author: Option<Uuid>,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let legs = &legs[range.clone()];
    let rows = &rows[range.clone()];
    let sources: Vec<Uuid> = legs.iter().map(|leg| leg.source.as_uuid()).collect();
    let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
    let ids: Vec<Uuid> = transfer_ids[range]
        .iter()
        .map(TransferId::as_uuid)
        .collect();
    let destinations: Vec<Uuid> = legs.iter().map(|leg| leg.destination.as_uuid()).collect();
    let currencies: Vec<&str> = rows.iter().map(|row| row.currency.code()).collect();
    let amounts: Vec<Decimal> = rows.iter().map(|row| row.amount).collect();
    let metadata: Vec<Option<serde_json::Value>> = legs
        .iter()
        .map(|leg| leg.metadata.as_ref().map(Metadata::to_value))
        .collect();
    tx.query(
        insert,
        &[
            &sources,
            &seqs,
            &ids,
            &destinations,
            &currencies,
            &amounts,
            &metadata,
            &author,
        ],
    )
    .await
}

/// Whether the insert lost to another transaction: a sequence number taken
/// (`transfers_pkey`), a wait on another batch's row that outlasted the
/// lock timeout, a deadlock the server broke (should the timeout ever be
/// raised past `deadlock_timeout`), or a batch time behind a row that
/// committed after the heads were read.
fn lost_race(err: &tokio_postgres::Error) -> bool {
    is_unique_violation(err, Constraint::TransfersPkey)
        || err.as_db_error().is_some_and(|db| {
            *db.code() == SqlState::LOCK_NOT_AVAILABLE
                || *db.code() == SqlState::T_R_DEADLOCK_DETECTED
        })
        || violates(err, Constraint::TransfersBatchTimeOrder)
}
