//! Accounts: opening, deposits and withdrawals, lists, balances and
//! histories.

use chrono::{DateTime, Utc};
use ledger_domain::AccountKind;
use ledger_store::{Account, Balance, Direction, HistoryEntry, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AmountInput, Money, TransferDto};
use crate::timestamp::Timestamp;

/// Opens an account. Every field is optional: `{}` opens an account in the
/// default currency with a new id and a zero balance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// The id to use (a new UUIDv7 when absent). Ids below
    /// `00000000-0000-0000-0000-000000001000` are reserved for system accounts.
    pub id: Option<Uuid>,
    /// ISO 4217 code, e.g. `USD` (default: the service's default currency).
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Money deposited at opening, in the same transaction (default 0).
    pub initial_balance: Option<AmountInput>,
    /// How far below zero its balance may go (default 0). A line above zero
    /// extends credit, so it needs a treasury key.
    pub overdraft_limit: Option<AmountInput>,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Moves money into an account (from its currency's system account) or out
/// of it (to the system account).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementRequest {
    /// How much, greater than zero.
    pub amount: AmountInput,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Pagination of `GET /accounts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAccountsParams {
    /// Page size, 1 to 1000 (default 50); larger values are refused. A page
    /// also stops once it passes about 1 MiB (always holding at least one
    /// item), so it may hold fewer with a `next_cursor`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, unchanged: cursors are signed,
    /// and any other value is refused with 400 `invalid_request`.
    pub cursor: Option<String>,
}

/// Pagination and time window of an account's history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Page size, 1 to 1000 (default 50); larger values are refused. A page
    /// also stops once it passes about 1 MiB (always holding at least one
    /// item), so it may hold fewer with a `next_cursor`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, unchanged: cursors are signed,
    /// and any other value is refused with 400 `invalid_request`.
    pub cursor: Option<String>,
    /// Only transfers at or after this time (RFC 3339, years 0000–9999;
    /// truncated to whole microseconds, the ledger's precision).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<Timestamp>,
    /// Only transfers at or before this time (RFC 3339, years 0000–9999;
    /// truncated to whole microseconds).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<Timestamp>,
}

/// The point in time of a balance.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BalanceParams {
    /// The balance including every transfer at or before this time (RFC 3339,
    /// e.g. `2025-01-31T23:59:59Z`, years 0000–9999; truncated to whole
    /// microseconds, the ledger's precision, and echoed so); the current
    /// balance when absent.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub at: Option<Timestamp>,
}

/// Whether an account belongs to a client or is its currency's system
/// account (the one account money enters and leaves the ledger through).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AccountKind)]
pub enum AccountKindDto {
    /// A client's account; its balance never goes below zero.
    Customer,
    /// The system account; its balance is minus all customer money.
    System,
}

/// An account with its current balance.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountDto {
    /// Its id.
    pub id: Uuid,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// The balance when the account was read.
    pub balance: Money,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it was closed; null while open.
    #[schema(required = true)]
    pub closed_at: Option<DateTime<Utc>>,
    /// The client's metadata, or null.
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<Value>,
    /// Customer or system account.
    pub kind: AccountKindDto,
    /// How far below zero its balance may go (0: not at all).
    pub overdraft_limit: Money,
}

impl From<Account> for AccountDto {
    fn from(account: Account) -> Self {
        Self {
            id: account.id.as_uuid(),
            currency: account.currency.code().to_owned(),
            balance: Money::scaled(account.balance, account.currency),
            created_at: account.created_at,
            closed_at: account.closed_at,
            metadata: account.metadata,
            kind: match account.kind {
                AccountKind::Customer => AccountKindDto::Customer,
                AccountKind::System => AccountKindDto::System,
            },
            overdraft_limit: Money::scaled(account.overdraft_limit, account.currency),
        }
    }
}

/// An account's balance, now or as of a point in time.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Balance)]
pub struct BalanceDto {
    /// The account.
    pub account_id: Uuid,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// Every transfer in minus every transfer out, up to `at` (the posted
    /// balance: holds do not change it).
    pub balance: Money,
    /// The account's pending holds at `at`: placed, not captured, voided or
    /// expired.
    pub held: Money,
    /// Its overdraft line at `at`.
    pub overdraft_limit: Money,
    /// What it could still spend at `at`: balance − held + overdraft_limit.
    pub available: Money,
    /// The point in time the balance is for.
    pub at: DateTime<Utc>,
    /// True when no transfer at or before `at` can still commit, so asking
    /// again always gives the same answer. A balance "now" is never final.
    #[serde(rename = "final")]
    pub is_final: bool,
}

impl From<Balance> for BalanceDto {
    fn from(balance: Balance) -> Self {
        Self {
            account_id: balance.account_id.as_uuid(),
            currency: balance.currency.code().to_owned(),
            balance: Money::scaled(balance.balance, balance.currency),
            held: Money::scaled(balance.held, balance.currency),
            overdraft_limit: Money::scaled(balance.overdraft_limit, balance.currency),
            available: Money::scaled(balance.available(), balance.currency),
            at: balance.at,
            is_final: balance.is_final,
        }
    }
}

/// Which way a transfer moved money, seen from the account.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Direction)]
pub enum DirectionDto {
    /// Money arrived.
    In,
    /// Money left.
    Out,
}

/// A transfer as it appears in one account's history.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryEntryDto {
    /// The transfer.
    pub transfer: TransferDto,
    /// In or out of this account.
    pub direction: DirectionDto,
    /// This account's balance right after the transfer, derived from the
    /// log in the history's order (`created_at`, then transfer id): the
    /// running balance of a statement.
    pub balance_after: Money,
}

impl From<HistoryEntry> for HistoryEntryDto {
    fn from(entry: HistoryEntry) -> Self {
        let balance_after = Money::scaled(entry.balance_after, entry.transfer.currency);
        Self {
            transfer: entry.transfer.into(),
            direction: match entry.direction {
                Direction::In => DirectionDto::In,
                Direction::Out => DirectionDto::Out,
            },
            balance_after,
        }
    }
}

/// Declares a page of `$item`s, made from the store's page of `$record`s:
/// the items, and the cursor of the next page.
macro_rules! page_dto {
    ($(#[doc = $doc:tt])* $name:ident of $item:ident from $record:ident, items: $items_doc:tt) => {
        $(#[doc = $doc])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            #[doc = $items_doc]
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; null on the last page.
            #[schema(required = true)]
            pub next_cursor: Option<String>,
        }

        impl From<Page<$record>> for $name {
            fn from(page: Page<$record>) -> Self {
                Self {
                    items: page.items.into_iter().map(Into::into).collect(),
                    next_cursor: page.next_cursor,
                }
            }
        }
    };
}

page_dto! {
    /// A page of accounts, in id (creation) order.
    AccountPage of AccountDto from Account, items: "The accounts."
}

page_dto! {
    /// A page of an account's history, newest first.
    HistoryPage of HistoryEntryDto from HistoryEntry, items: "The entries."
}
