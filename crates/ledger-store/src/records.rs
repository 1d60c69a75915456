use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{
    AccountId, AccountKind, Currency, Decimal, DomainError, Metadata, Operation, TransferId,
};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::StoreError;

/// An account with its current balance (derived, never stored).
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Its currency, fixed at opening.
    pub currency: Currency,
    /// Customer or system account.
    pub kind: AccountKind,
    /// Balance derived from the log when the account was read.
    pub balance: Decimal,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it was closed, if it was.
    pub closed_at: Option<DateTime<Utc>>,
    /// The client's metadata, as given.
    pub metadata: Option<Value>,
}

/// One immutable row of the transfer log.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// Its id.
    pub id: TransferId,
    /// Where the money came from.
    pub source: AccountId,
    /// This is the `source_seq`-th transfer out of the source, from 0.
    pub source_seq: i64,
    /// Where the money went.
    pub destination: AccountId,
    /// How much, scaled to the currency.
    pub amount: Decimal,
    /// The currency of both accounts.
    pub currency: Currency,
    /// When the ledger applied it.
    pub created_at: DateTime<Utc>,
    /// The source's balance the ledger computed when applying it (the figure
    /// the overdraft rule was checked against).
    pub source_balance_after: Decimal,
    /// The client's metadata, as given.
    pub metadata: Option<Value>,
    /// The API key that made it (`None`: made without authentication).
    pub created_by: Option<Uuid>,
}

/// A balance, now or as of a point in time.
#[derive(Clone, Debug, PartialEq)]
pub struct Balance {
    /// The account.
    pub account_id: AccountId,
    /// Its currency.
    pub currency: Currency,
    /// Sum of every transfer into the account minus every transfer out of it
    /// with `created_at <= at`.
    pub balance: Decimal,
    /// The point in time the balance is for.
    pub at: DateTime<Utc>,
    /// True when no transfer with `created_at <= at` can still commit, so the
    /// same question will always get the same answer. A balance "now" is
    /// never final.
    pub is_final: bool,
}

/// Which way a transfer moved money, seen from one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Money arrived in the account.
    In,
    /// Money left the account.
    Out,
}

/// A transfer as it appears in one account's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// The transfer.
    pub transfer: Transfer,
    /// Seen from the account whose history this is.
    pub direction: Direction,
    /// That account's balance right after it, derived from the log in the
    /// history's own order (`created_at`, then transfer id): a running
    /// balance, as a statement shows it.
    pub balance_after: Decimal,
}

/// Which part of an account's history to read, newest first.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// Only transfers at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only transfers at or before this time.
    pub to: Option<DateTime<Utc>>,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// One page of a list, with the cursor for the next one (if there is more).
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Pass this back to get the next page.
    pub next_cursor: Option<String>,
}

/// The result of a write, and whether it was replayed from an idempotency
/// key rather than applied now.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<T> {
    /// What the write produced (originally, for a replay).
    pub value: T,
    /// True when an earlier request with the same key produced it.
    pub replayed: bool,
}

/// A request to open an account.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// The id to use; a new UUIDv7 when absent.
    pub id: Option<AccountId>,
    /// Its currency.
    pub currency: Currency,
    /// Money to deposit at opening, in the same transaction.
    pub initial_balance: Option<Decimal>,
    /// The client's metadata.
    pub metadata: Option<Metadata>,
}

/// A money movement: between two accounts, or into or out of one account
/// through its currency's system account.
#[derive(Clone, Debug)]
pub enum Posting {
    /// From one customer account to another.
    Transfer {
        /// Paying account.
        source: AccountId,
        /// Receiving account.
        destination: AccountId,
    },
    /// From the system account into `account`.
    Deposit {
        /// Receiving account.
        account: AccountId,
    },
    /// From `account` to the system account.
    Withdrawal {
        /// Paying account.
        account: AccountId,
    },
}

impl Posting {
    /// The domain's name for what the posting does.
    pub(crate) fn kind(&self) -> Operation {
        match self {
            Self::Transfer { .. } => Operation::Transfer,
            Self::Deposit { .. } => Operation::Deposit,
            Self::Withdrawal { .. } => Operation::Withdrawal,
        }
    }

    pub(crate) fn operation(&self) -> &'static str {
        match self {
            Self::Transfer { .. } => "transfer",
            Self::Deposit { .. } => "deposit",
            Self::Withdrawal { .. } => "withdrawal",
        }
    }
}

/// The one row a cached statement finds (its parameters name one thing), or
/// `missing` when there is none: every read of one thing by its id.
pub(crate) async fn find_one(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    missing: DomainError,
) -> Result<tokio_postgres::Row, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    let row = client.query_opt(&statement, params).await?;
    row.ok_or_else(|| missing.into())
}

pub(crate) fn currency_of(code: &str) -> Result<Currency, StoreError> {
    Currency::parse(code).map_err(|_| {
        StoreError::Internal(anyhow::anyhow!(
            "currency {code} is in the database but not in ledger-domain"
        ))
    })
}

/// The columns [`transfer_from_row`] reads, in a form fit for `select`.
pub(crate) const TRANSFER_COLUMNS: &str = "transfer_id, source_account_id, source_seq, \
    destination_account_id, amount, currency_code, created_at, source_balance_after, \
    metadata, created_by";

pub(crate) fn transfer_from_row(row: &tokio_postgres::Row) -> Result<Transfer, StoreError> {
    Ok(Transfer {
        id: TransferId::from(row.try_get::<_, Uuid>("transfer_id")?),
        source: AccountId::from(row.try_get::<_, Uuid>("source_account_id")?),
        source_seq: row.try_get("source_seq")?,
        destination: AccountId::from(row.try_get::<_, Uuid>("destination_account_id")?),
        amount: row.try_get("amount")?,
        currency: currency_of(row.try_get("currency_code")?)?,
        created_at: row.try_get("created_at")?,
        source_balance_after: row.try_get("source_balance_after")?,
        metadata: row.try_get("metadata")?,
        created_by: row.try_get("created_by")?,
    })
}

/// Transfer rows, which an insert or an `= any` read returns in any order,
/// by id: each is then taken for the leg or id it belongs to.
pub(crate) struct TransfersById(HashMap<Uuid, Transfer>);

impl TransfersById {
    /// Reads each row with [`transfer_from_row`].
    pub(crate) fn read(rows: &[tokio_postgres::Row]) -> Result<Self, StoreError> {
        let mut by_id = HashMap::with_capacity(rows.len());
        for row in rows {
            let transfer = transfer_from_row(row)?;
            by_id.insert(transfer.id.as_uuid(), transfer);
        }
        Ok(Self(by_id))
    }

    /// Takes transfer `id` out; when it is not there, an internal error
    /// saying what `missing` says.
    pub(crate) fn take(
        &mut self,
        id: Uuid,
        missing: impl FnOnce() -> String,
    ) -> Result<Transfer, StoreError> {
        self.0
            .remove(&id)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!(missing())))
    }
}

/// The columns [`account_from_row`] reads; `balance` must be computed by the
/// query (`ledger.balance(account_id) as balance`).
pub(crate) const ACCOUNT_COLUMNS: &str =
    "account_id, currency_code, is_system, created_at, closed_at, metadata, \
     ledger.balance(account_id) as balance";

pub(crate) fn account_from_row(row: &tokio_postgres::Row) -> Result<Account, StoreError> {
    Ok(Account {
        id: AccountId::from(row.try_get::<_, Uuid>("account_id")?),
        currency: currency_of(row.try_get("currency_code")?)?,
        kind: if row.try_get("is_system")? {
            AccountKind::System
        } else {
            AccountKind::Customer
        },
        balance: row.try_get("balance")?,
        created_at: row.try_get("created_at")?,
        closed_at: row.try_get("closed_at")?,
        metadata: row.try_get("metadata")?,
    })
}
