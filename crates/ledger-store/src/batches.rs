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

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{
    check_batch_size, check_request, decide, AccountId, AccountKind, AccountState, BatchId,
    Currency, Decimal, DestinationState, DomainError, IdempotencyKey, Metadata, Operation,
    RequestFingerprint, SourceHead, TransferId,
};
use rand::Rng;
use tokio_postgres::error::SqlState;
use tracing::{debug, instrument};
use uuid::Uuid;

use crate::error::{constraint_violation, is_unique_violation, violates, Constraint, WriteContext};
use crate::records::{currency_of, transfer_from_row, Outcome, Transfer, TRANSFER_COLUMNS};
use crate::{Ledger, StoreError};

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

/// How many times a batch is tried before the store gives up on contention.
/// Bounded low: each attempt may have waited up to [`BATCH_LOCK_TIMEOUT`].
const MAX_BATCH_ATTEMPTS: u32 = 40;

/// How long a batch's insert waits for another transaction's uncommitted
/// row before it rolls back and retries (see the module comment). Longer
/// than a group commit of single writes takes, so those are waited for,
/// not retried.
const BATCH_LOCK_TIMEOUT: &str = "200ms";

/// The heads of every account a batch names, in one round trip. An account
/// that does not exist has no row.
const BATCH_HEADS: &str = "\
    select s.account_id, s.currency_code, s.is_system,
           ledger.close_state(s.closed_at, s.closing_xid) as state,
           coalesce(h.source_seq + 1, 0) as next_seq,
           ledger.incoming_total(s.account_id) - coalesce(h.source_outgoing_total, 0) as balance
      from ledger.accounts s
      left join lateral (
            select t.source_seq, t.source_outgoing_total
              from ledger.transfers t
             where t.source_account_id = s.account_id
             order by t.source_seq desc
             limit 1) h on true
     where s.account_id = any($1::uuid[])";

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
             destination_account_id, currency_code, amount, metadata) \
         select leg.source, leg.seq, leg.transfer_id, leg.destination, leg.currency, \
                leg.amount, leg.metadata \
           from unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::text[], \
                       $6::numeric[], $7::jsonb[]) \
                with ordinality as leg(source, seq, transfer_id, destination, currency, \
                                       amount, metadata, position) \
          order by leg.position \
         returning {TRANSFER_COLUMNS}"
    )
}

const INSERT_BATCH: &str = "\
    insert into ledger.batches (batch_id, created_at, transfer_ids) values ($1, $2, $3)";

const CLAIM_BATCH_KEY: &str = "\
    select outcome, batch_id from ledger.claim_batch_idempotency_key($1, $2, $3)";

/// One leg, decided: the row to insert.
struct Row {
    seq: i64,
    currency: Currency,
    amount: Decimal,
}

/// How one attempt ended.
enum Attempt {
    Committed(Batch),
    Replay(BatchId),
    LostRace,
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

    async fn attempt_batch(
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
        let statement = tx.prepare_cached(BATCH_HEADS).await?;
        let mut heads: HashMap<AccountId, SourceHead> = HashMap::with_capacity(accounts.len());
        for row in tx.query(&statement, &[&accounts]).await? {
            let head = read_head(&row)?;
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
                head.balance += decision.amount.value();
            }
            rows.push(Row {
                seq: decision.seq,
                currency: source.currency,
                amount: decision.amount.value(),
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
        let insert = tx.prepare_cached(&insert_batch_sql()).await?;
        let inserted =
            match insert_legs(tx, &insert, legs, transfer_ids, &rows, 0..legs.len()).await {
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
        let mut by_id: HashMap<Uuid, Transfer> = HashMap::with_capacity(inserted.len());
        for row in &inserted {
            let transfer = transfer_from_row(row)?;
            by_id.insert(transfer.id.as_uuid(), transfer);
        }
        let transfers = transfer_ids
            .iter()
            .map(|id| {
                by_id.remove(&id.as_uuid()).ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("an inserted leg was not returned"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = transfer_ids.iter().map(TransferId::as_uuid).collect();
        let statement = tx.prepare_cached(INSERT_BATCH).await?;
        tx.execute(&statement, &[&batch_id.as_uuid(), &batch_at, &ids])
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
            match insert_legs(tx, insert, legs, transfer_ids, rows, index..index + 1).await {
                Ok(_) => {}
                Err(err) if lost_race(&err) => return Ok(Attempt::LostRace),
                Err(err) => {
                    let leg = &legs[index];
                    let context = WriteContext {
                        source: leg.source,
                        destination: leg.destination,
                        currency: rows[index].currency.code(),
                        max_decimals: rows[index].currency.minor_units(),
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

async fn fetch_batch(client: &impl GenericClient, id: BatchId) -> Result<Batch, StoreError> {
    let statement = client
        .prepare_cached("select created_at, transfer_ids from ledger.batches where batch_id = $1")
        .await?;
    let row = client
        .query_opt(&statement, &[&id.as_uuid()])
        .await?
        .ok_or(DomainError::BatchNotFound(id))?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let ids: Vec<Uuid> = row.try_get("transfer_ids")?;
    let statement = client
        .prepare_cached(&format!(
            "select {TRANSFER_COLUMNS} from ledger.transfers where transfer_id = any($1::uuid[])"
        ))
        .await?;
    let mut by_id: HashMap<Uuid, Transfer> = HashMap::with_capacity(ids.len());
    for row in client.query(&statement, &[&ids]).await? {
        let transfer = transfer_from_row(&row)?;
        by_id.insert(transfer.id.as_uuid(), transfer);
    }
    let transfers = ids
        .iter()
        .map(|id| {
            by_id.remove(id).ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("batch {id} names a missing transfer"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        id,
        created_at,
        transfers,
    })
}

fn read_head(row: &tokio_postgres::Row) -> Result<SourceHead, StoreError> {
    let state: &str = row.try_get("state")?;
    Ok(SourceHead {
        account: AccountId::from(row.try_get::<_, Uuid>("account_id")?),
        kind: if row.try_get("is_system")? {
            AccountKind::System
        } else {
            AccountKind::Customer
        },
        currency: currency_of(row.try_get("currency_code")?)?,
        state: AccountState::parse(state).ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("unknown account state {state:?}"))
        })?,
        next_seq: row.try_get("next_seq")?,
        balance: row.try_get("balance")?,
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
