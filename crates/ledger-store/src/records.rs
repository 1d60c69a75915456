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
    /// Its overdraft line now: how far below zero its balance may go.
    pub overdraft_limit: Decimal,
}

/// What a money movement is, beyond moving money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferKind {
    /// A transfer, deposit or withdrawal.
    Transfer,
    /// The capture of a hold (its id).
    Capture(TransferId),
    /// A reversal of a transfer (its id).
    Reversal(TransferId),
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
    /// Plain, a capture or a reversal.
    pub kind: TransferKind,
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
    /// The account's pending holds at `at`.
    pub held: Decimal,
    /// Its overdraft line at `at`.
    pub overdraft_limit: Decimal,
    /// The point in time the balance is for.
    pub at: DateTime<Utc>,
    /// True when no transfer with `created_at <= at` can still commit, so the
    /// same question will always get the same answer. A balance "now" is
    /// never final.
    pub is_final: bool,
}

impl Balance {
    /// What the account could spend at `at`: balance − held + line.
    pub fn available(&self) -> Decimal {
        self.balance - self.held + self.overdraft_limit
    }
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
    /// Its overdraft line (zero when absent).
    pub overdraft_limit: Option<Decimal>,
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
    /// Reserves money of `source` for `destination` until `expires_at`.
    Hold {
        /// Paying account.
        source: AccountId,
        /// Receiving account, once captured.
        destination: AccountId,
        /// When the reservation lapses (exclusive).
        expires_at: DateTime<Utc>,
    },
    /// Settles a hold (its row's id) of `held` out of `source`.
    Capture {
        /// The hold.
        hold: TransferId,
        /// The hold's source.
        source: AccountId,
        /// The hold's destination.
        destination: AccountId,
        /// What the hold reserves.
        held: Decimal,
    },
    /// Moves (part of) `original` back: from its destination (`source`
    /// here) to its source.
    Reversal {
        /// The transfer undone.
        original: TransferId,
        /// The original's destination.
        source: AccountId,
        /// The original's source.
        destination: AccountId,
        /// What is not reversed yet.
        remaining: Decimal,
    },
    /// Sets `account`'s overdraft line (the amount is the new line).
    OverdraftChange {
        /// The account.
        account: AccountId,
    },
}

impl Posting {
    /// The domain's name for what the posting does.
    pub(crate) fn kind(&self) -> Operation {
        match *self {
            Self::Transfer { .. } => Operation::Transfer,
            Self::Deposit { .. } => Operation::Deposit,
            Self::Withdrawal { .. } => Operation::Withdrawal,
            Self::Hold { .. } => Operation::Hold,
            Self::Capture { hold, held, .. } => Operation::Capture { hold, held },
            Self::Reversal { remaining, .. } => Operation::Reversal { remaining },
            Self::OverdraftChange { .. } => Operation::OverdraftChange,
        }
    }

    /// `ledger.idempotency_keys.operation` (and the log's word for it).
    pub(crate) fn operation(&self) -> &'static str {
        match self {
            Self::Transfer { .. } => "transfer",
            Self::Deposit { .. } => "deposit",
            Self::Withdrawal { .. } => "withdrawal",
            Self::Hold { .. } => "hold",
            Self::Capture { .. } => "capture",
            Self::Reversal { .. } => "reversal",
            Self::OverdraftChange { .. } => "overdraft_change",
        }
    }

    /// `ledger.transfers.kind` of its row.
    pub(crate) fn row_kind(&self) -> &'static str {
        match self {
            Self::Transfer { .. } | Self::Deposit { .. } | Self::Withdrawal { .. } => "transfer",
            other => other.operation(),
        }
    }

    /// A transfer, deposit or withdrawal: a row with nothing but money.
    pub(crate) fn is_plain(&self) -> bool {
        self.row_kind() == "transfer"
    }

    /// A hold's expiry, for its row.
    pub(crate) fn hold_expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Hold { expires_at, .. } => Some(*expires_at),
            _ => None,
        }
    }

    /// A capture's hold, for its row.
    pub(crate) fn hold_id(&self) -> Option<Uuid> {
        match self {
            Self::Capture { hold, .. } => Some(hold.as_uuid()),
            _ => None,
        }
    }

    /// The hold a capture settles or the transfer a reversal undoes.
    pub(crate) fn link(&self) -> Option<TransferId> {
        match self {
            Self::Capture { hold, .. } => Some(*hold),
            Self::Reversal { original, .. } => Some(*original),
            _ => None,
        }
    }

    /// A reversal's original, for its row.
    pub(crate) fn reverses(&self) -> Option<Uuid> {
        match self {
            Self::Reversal { original, .. } => Some(original.as_uuid()),
            _ => None,
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
    metadata, created_by, kind, hold_id, reverses_transfer_id";

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
        kind: match row.try_get::<_, &str>("kind")? {
            "capture" => TransferKind::Capture(linked(row, "hold_id")?),
            "reversal" => TransferKind::Reversal(linked(row, "reverses_transfer_id")?),
            _ => TransferKind::Transfer,
        },
    })
}

fn linked(row: &tokio_postgres::Row, column: &str) -> Result<TransferId, StoreError> {
    let id: Option<Uuid> = row.try_get(column)?;
    id.map(TransferId::from)
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("{column} missing on its row")))
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
     ledger.balance(account_id) as balance, ledger.overdraft_limit(account_id) as overdraft_limit";

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
        overdraft_limit: row.try_get("overdraft_limit")?,
    })
}
