//! Holds (two-phase transfers): a hold reserves money of its source for its
//! destination until it is captured, voided or expires (`sql/V6`).
//!
//! * Placing a hold and capturing it are rows of the source's sequence,
//!   written through its group-commit queue like a transfer, so they can
//!   never race past another write out of the source.
//! * Exactly one of capture, void and expiry wins: each inserts the hold's
//!   one row in `ledger.hold_resolutions`, whose primary key decides.
//! * Expiry is by the database clock: from `expires_at` on a hold neither
//!   counts as held nor can be captured, whether or not [`Ledger::expire_holds`]
//!   has recorded it yet.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{
    check_request, AccountId, Currency, Decimal, DomainError, IdempotencyKey, Metadata, Operation,
    RequestFingerprint, TransferId,
};
use serde_json::Value;
use tracing::instrument;
use uuid::Uuid;

use crate::error::{constraint_violation, Context, WriteContext};
use crate::group_commit::LegAnswer;
use crate::idempotency::{claim, Claim, Idempotency};
use crate::records::{currency_of, find_one, Outcome, Page, Posting, Transfer};
use crate::{Ledger, StoreError};

/// Where a hold stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldStatus {
    /// Reserved, and may still be captured or voided.
    Pending,
    /// Settled by a capture (perhaps of less than was held).
    Captured,
    /// Released by a void.
    Voided,
    /// Released by time: `expires_at` has passed.
    Expired,
}

impl HoldStatus {
    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }
}

/// A hold, with its status derived at read time.
#[derive(Clone, Debug, PartialEq)]
pub struct Hold {
    /// Its id (the id of its row in the log).
    pub id: TransferId,
    /// Whose money it reserves.
    pub source: AccountId,
    /// Who receives it once captured.
    pub destination: AccountId,
    /// How much it reserves.
    pub amount: Decimal,
    /// The accounts' currency.
    pub currency: Currency,
    /// Where it stands.
    pub status: HoldStatus,
    /// From this time on it no longer counts and cannot be captured.
    pub expires_at: DateTime<Utc>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// The client's metadata.
    pub metadata: Option<Value>,
    /// What a capture settled.
    pub captured_amount: Option<Decimal>,
    /// The capture's transfer.
    pub capture_transfer_id: Option<TransferId>,
    /// When it was captured, voided or expired (for an expiry not recorded
    /// yet, its `expires_at`).
    pub resolved_at: Option<DateTime<Utc>>,
    /// The API key that placed it.
    pub created_by: Option<Uuid>,
}

/// When a new hold lapses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldExpiry {
    /// The store's default timeout.
    Default,
    /// At this time.
    At(DateTime<Utc>),
    /// This long after it is placed.
    After(Duration),
}

/// A request to place a hold.
#[derive(Clone, Debug)]
pub struct NewHold {
    /// Whose money.
    pub source: AccountId,
    /// For whom.
    pub destination: AccountId,
    /// How much.
    pub amount: Decimal,
    /// Until when.
    pub expiry: HoldExpiry,
    /// The client's metadata.
    pub metadata: Option<Metadata>,
}

/// The columns [`hold_from_row`] reads: the hold's row, its resolution, and
/// the database clock (status is derived from it).
const HOLD_SELECT: &str = "\
    select h.transfer_id, h.source_account_id, h.destination_account_id, h.held_amount,
           h.currency_code, h.hold_expires_at, h.created_at, h.metadata, h.created_by,
           r.outcome, r.resolved_at, r.captured_amount, r.capture_transfer_id,
           clock_timestamp() as now
      from ledger.transfers h
      left join ledger.hold_resolutions r on r.hold_id = h.transfer_id";

/// Holds of one account (`$1`), newest first, after the cursor position
/// (`$2` time, `$3` id), `$4` a status or null, `$5` rows.
const HOLDS_OF_ACCOUNT: &str = "\
     where h.kind = 'hold' and h.source_account_id = $1
       and (h.created_at, h.transfer_id) < (coalesce($2::timestamptz, 'infinity'),
                                            coalesce($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
       and ($4::text is null
            or $4 = case when r.outcome = 'captured' then 'captured'
                         when r.outcome = 'voided' then 'voided'
                         when r.outcome = 'expired' or h.hold_expires_at <= clock_timestamp()
                             then 'expired'
                         else 'pending' end)
     order by h.created_at desc, h.transfer_id desc
     limit $5";

fn hold_from_row(row: &tokio_postgres::Row) -> Result<Hold, StoreError> {
    let expires_at: DateTime<Utc> = row.try_get("hold_expires_at")?;
    let now: DateTime<Utc> = row.try_get("now")?;
    let outcome: Option<&str> = row.try_get("outcome")?;
    let mut resolved_at: Option<DateTime<Utc>> = row.try_get("resolved_at")?;
    let status = match outcome {
        Some("captured") => HoldStatus::Captured,
        Some("voided") => HoldStatus::Voided,
        Some(_) => HoldStatus::Expired,
        None if expires_at <= now => {
            resolved_at = Some(expires_at);
            HoldStatus::Expired
        }
        None => HoldStatus::Pending,
    };
    Ok(Hold {
        id: TransferId::from(row.try_get::<_, Uuid>("transfer_id")?),
        source: AccountId::from(row.try_get::<_, Uuid>("source_account_id")?),
        destination: AccountId::from(row.try_get::<_, Uuid>("destination_account_id")?),
        amount: row.try_get("held_amount")?,
        currency: currency_of(row.try_get("currency_code")?)?,
        status,
        expires_at,
        created_at: row.try_get("created_at")?,
        metadata: row.try_get("metadata")?,
        captured_amount: row.try_get("captured_amount")?,
        capture_transfer_id: row
            .try_get::<_, Option<Uuid>>("capture_transfer_id")?
            .map(TransferId::from),
        resolved_at,
        created_by: row.try_get("created_by")?,
    })
}

async fn fetch_hold(client: &impl GenericClient, id: TransferId) -> Result<Hold, StoreError> {
    let sql = format!("{HOLD_SELECT} where h.transfer_id = $1 and h.kind = 'hold'");
    let row = find_one(
        client,
        &sql,
        &[&id.as_uuid()],
        DomainError::HoldNotFound(id),
    )
    .await?;
    hold_from_row(&row)
}

impl Ledger {
    /// Places a hold: reserves `amount` of the source's available balance
    /// for the destination.
    #[instrument(skip(self, request, key), fields(transfer.id = tracing::field::Empty))]
    pub async fn place_hold(
        &self,
        request: NewHold,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Hold>, StoreError> {
        check_request(
            Operation::Hold,
            request.source,
            request.destination,
            request.amount,
        )?;
        let expires_at = self.expiry_of(request.expiry)?;
        let expiry_text = match request.expiry {
            HoldExpiry::Default => "default".to_owned(),
            HoldExpiry::At(at) => format!("at:{}", at.timestamp_micros()),
            HoldExpiry::After(after) => format!("after:{}", after.as_secs()),
        };
        let amount_text = request.amount.normalize().to_string();
        let metadata_text = request
            .metadata
            .as_ref()
            .map(Metadata::canonical)
            .unwrap_or_default();
        let fingerprint = RequestFingerprint::of(
            "hold",
            &[
                &request.source.to_string(),
                &request.destination.to_string(),
                &amount_text,
                &expiry_text,
                &metadata_text,
            ],
        );
        let posting = Posting::Hold {
            source: request.source,
            destination: request.destination,
            expires_at,
        };
        let (replayed, id) = match self
            .write(posting, request.amount, request.metadata, fingerprint, key)
            .await?
        {
            LegAnswer::Applied { transfer, .. } => (false, transfer.id),
            LegAnswer::Replayed { transfer_id, .. } => (true, recorded(transfer_id)?),
        };
        let client = self.client().await?;
        Ok(Outcome {
            value: fetch_hold(&client, id).await?,
            replayed,
        })
    }

    /// The expiry a request asks for, checked against the store's bounds
    /// (by this process's clock; the database checks it is after the hold's
    /// own time).
    fn expiry_of(&self, expiry: HoldExpiry) -> Result<DateTime<Utc>, StoreError> {
        let now = Utc::now();
        let max = self.config.hold_max_timeout;
        let too_long = || {
            DomainError::InvalidHoldExpiry(format!(
                "a hold may last at most {} seconds",
                max.as_secs()
            ))
        };
        let after = match expiry {
            HoldExpiry::Default => self.config.hold_default_timeout,
            HoldExpiry::After(after) if after.is_zero() => {
                return Err(DomainError::InvalidHoldExpiry(
                    "timeout_seconds must be at least 1".to_owned(),
                )
                .into())
            }
            HoldExpiry::After(after) => after,
            HoldExpiry::At(at) => {
                if at <= now {
                    return Err(DomainError::InvalidHoldExpiry(
                        "expires_at must be in the future".to_owned(),
                    )
                    .into());
                }
                let within = (at - now).to_std().is_ok_and(|wait| wait <= max);
                return if within {
                    Ok(at)
                } else {
                    Err(too_long().into())
                };
            }
        };
        if after > max {
            return Err(too_long().into());
        }
        let after = chrono::Duration::from_std(after).map_err(|_| too_long())?;
        Ok(now + after)
    }

    /// Captures a hold: moves `amount` (default: all of it) from its source
    /// to its destination and releases the rest, as one row of the source's
    /// sequence and the hold's one resolution.
    #[instrument(skip(self, key), fields(transfer.id = tracing::field::Empty))]
    pub async fn capture_hold(
        &self,
        id: TransferId,
        amount: Option<Decimal>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        let hold = self.get_hold(id).await?;
        // With a key, a capture that already happened is a replay: the claim
        // in the write decides, not the status read here.
        if key.is_none() && hold.status != HoldStatus::Pending {
            return Err(DomainError::HoldNotPending(id).into());
        }
        let amount_text = amount
            .map(|amount| amount.normalize().to_string())
            .unwrap_or_default();
        let fingerprint = RequestFingerprint::of("capture", &[&id.to_string(), &amount_text]);
        let posting = Posting::Capture {
            hold: id,
            source: hold.source,
            destination: hold.destination,
            held: hold.amount,
        };
        match self
            .write(
                posting,
                amount.unwrap_or(hold.amount),
                None,
                fingerprint,
                key,
            )
            .await?
        {
            LegAnswer::Applied { transfer, .. } => Ok(Outcome {
                value: transfer,
                replayed: false,
            }),
            LegAnswer::Replayed { transfer_id, .. } => self.replayed_transfer(transfer_id).await,
        }
    }

    /// Voids a hold: releases all of it. Not a row of the source's
    /// sequence: releasing can only raise what the source may spend.
    #[instrument(skip(self, key))]
    pub async fn void_hold(
        &self,
        id: TransferId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Hold>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let hold = fetch_hold(&tx, id).await?;
        if let Some(key) = key {
            let idempotency = Idempotency {
                key: key.clone(),
                fingerprint: RequestFingerprint::of("void", &[&id.to_string()]),
            };
            if let Claim::Replay { .. } =
                claim(&tx, &idempotency, "void", None, Some(id.as_uuid())).await?
            {
                return Ok(Outcome {
                    value: fetch_hold(&tx, id).await?,
                    replayed: true,
                });
            }
        }
        let statement = tx
            .prepare_cached(
                "insert into ledger.hold_resolutions (hold_id, outcome, created_by) \
                 values ($1, 'voided', $2)",
            )
            .await?;
        if let Err(err) = tx.execute(&statement, &[&id.as_uuid(), &self.author]).await {
            let context = WriteContext {
                source: hold.source,
                destination: hold.destination,
                currency: hold.currency,
                operation: Operation::Hold,
                link: Some(id),
            };
            return Err(match constraint_violation(&err, &context) {
                Some(domain) => domain.into(),
                None => err.into(),
            });
        }
        let voided = fetch_hold(&tx, id).await?;
        tx.commit().await.context("commit a void")?;
        Ok(Outcome {
            value: voided,
            replayed: false,
        })
    }

    /// Reads one hold.
    pub async fn get_hold(&self, id: TransferId) -> Result<Hold, StoreError> {
        let client = self.client().await?;
        fetch_hold(&client, id).await
    }

    /// The holds out of `account`, newest first, optionally of one status.
    pub async fn list_holds(
        &self,
        account: AccountId,
        status: Option<HoldStatus>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Hold>, StoreError> {
        let scope = format!("holds:{account}");
        let (before_time, before_id) = match cursor {
            Some(cursor) => {
                let position = self.cursor_key().await?.open(&scope, cursor)?;
                let (micros, id) = position.split_once('_').ok_or(StoreError::InvalidCursor)?;
                let micros: i64 = micros.parse().map_err(|_| StoreError::InvalidCursor)?;
                let time = DateTime::<Utc>::from_timestamp_micros(micros)
                    .ok_or(StoreError::InvalidCursor)?;
                let id: Uuid = id.parse().map_err(|_| StoreError::InvalidCursor)?;
                (Some(time), Some(id))
            }
            None => (None, None),
        };
        let limit = limit.clamp(1, crate::MAX_PAGE_SIZE);
        let client = self.client().await?;
        find_one(
            &client,
            "select 1 from ledger.accounts where account_id = $1",
            &[&account.as_uuid()],
            DomainError::AccountNotFound(account),
        )
        .await?;
        let statement = client
            .prepare_cached(&format!("{HOLD_SELECT} {HOLDS_OF_ACCOUNT}"))
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &account.as_uuid(),
                    &before_time,
                    &before_id,
                    &status.map(HoldStatus::as_str),
                    &(i64::from(limit) + 1),
                ],
            )
            .await?;
        let mut items = rows
            .iter()
            .map(hold_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = match items.last() {
            Some(hold) if more => {
                let position = format!("{}_{}", hold.created_at.timestamp_micros(), hold.id);
                Some(self.cursor_key().await?.seal(&scope, &position))
            }
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Records the expiry of every hold past its `expires_at` and not yet
    /// resolved, at most `limit` at a time, oldest expiry first, and answers
    /// how many it recorded. Any number of service instances may run it at
    /// once: a resolution's primary key lets exactly one record each expiry
    /// (and a capture or a void that came first wins over it).
    pub async fn expire_holds(&self, limit: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "insert into ledger.hold_resolutions (hold_id, outcome)
                 select h.transfer_id, 'expired'
                   from ledger.transfers h
                  where h.kind = 'hold'
                    and h.hold_expires_at <= clock_timestamp()
                    and not exists (select 1 from ledger.hold_resolutions r
                                     where r.hold_id = h.transfer_id)
                  order by h.hold_expires_at
                  limit $1
                 on conflict (hold_id) do nothing",
            )
            .await?;
        client
            .execute(&statement, &[&limit])
            .await
            .context("record hold expiries")
    }

    /// Records due expiries every `interval`, forever (a background task of
    /// the service). Nothing depends on its promptness: an expired hold stops
    /// counting at `expires_at` whether or not it is recorded.
    pub async fn run_hold_expiry(self, interval: Duration) {
        crate::horizon::run_every(interval, "hold expiry", "cannot record expiries", || {
            self.expire_holds(1_000)
        })
        .await
    }

    /// Moves (part of) a transfer back: from its destination to its source,
    /// linked to it. Without `amount`, whatever is not reversed yet.
    #[instrument(skip(self, metadata, key), fields(transfer.id = tracing::field::Empty))]
    pub async fn reverse(
        &self,
        original: TransferId,
        amount: Option<Decimal>,
        metadata: Option<Metadata>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        let transfer = self.get_transfer(original).await?;
        if matches!(transfer.kind, crate::records::TransferKind::Reversal(_)) {
            return Err(DomainError::NotReversible(original).into());
        }
        let remaining = transfer.amount - self.reversed_amount(original).await?;
        let amount_text = amount
            .map(|amount| amount.normalize().to_string())
            .unwrap_or_default();
        let metadata_text = metadata
            .as_ref()
            .map(Metadata::canonical)
            .unwrap_or_default();
        let fingerprint = RequestFingerprint::of(
            "reversal",
            &[&original.to_string(), &amount_text, &metadata_text],
        );
        let posting = Posting::Reversal {
            original,
            source: transfer.destination,
            destination: transfer.source,
            remaining,
        };
        // "The rest" when nothing is left asks for more than remains, so the
        // refusal is the reversal rule's (and a key still replays first).
        let amount = match amount {
            Some(amount) => amount,
            None if remaining > Decimal::ZERO => remaining,
            None => transfer.amount,
        };
        match self
            .write(posting, amount, metadata, fingerprint, key)
            .await?
        {
            LegAnswer::Applied { transfer, .. } => Ok(Outcome {
                value: transfer,
                replayed: false,
            }),
            LegAnswer::Replayed { transfer_id, .. } => self.replayed_transfer(transfer_id).await,
        }
    }

    /// Sets an account's overdraft line, as a row of its own sequence: no
    /// write out of the account that commits after it is judged by the old
    /// line.
    #[instrument(skip(self, key))]
    pub async fn set_overdraft_limit(
        &self,
        account: AccountId,
        limit: Decimal,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<crate::Account>, StoreError> {
        ledger_domain::check_overdraft_limit(limit)?;
        let fingerprint = RequestFingerprint::of(
            "overdraft_change",
            &[&account.to_string(), &limit.normalize().to_string()],
        );
        let posting = Posting::OverdraftChange { account };
        let replayed = match self.write(posting, limit, None, fingerprint, key).await? {
            LegAnswer::Applied { .. } => false,
            LegAnswer::Replayed { .. } => true,
        };
        Ok(Outcome {
            value: self.get_account(account).await?,
            replayed,
        })
    }
}

/// The row id an idempotency key recorded.
fn recorded(transfer_id: Option<Uuid>) -> Result<TransferId, StoreError> {
    transfer_id
        .map(TransferId::from)
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("idempotency key without its row")))
}
