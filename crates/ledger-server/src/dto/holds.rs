//! Holds (two-phase transfers), reversals and overdraft lines.

use chrono::{DateTime, Utc};
use ledger_store::{Hold, HoldStatus, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AmountInput, Money};
use crate::timestamp::Timestamp;

/// Reserves money of `source` for `destination`: the source's available
/// balance drops at once, its balance does not, until a capture moves the
/// money or a void or the expiry releases it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// The paying account (a customer account).
    pub source: Uuid,
    /// The account a capture pays.
    pub destination: Uuid,
    /// How much to reserve, greater than zero.
    pub amount: AmountInput,
    /// When the hold lapses (RFC 3339, in the future, within the maximum
    /// timeout). At most one of `expires_at` and `timeout_seconds`; neither
    /// means the service's default (7 days unless configured).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// How long the hold lasts, in seconds (at least 1).
    pub timeout_seconds: Option<u64>,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Settles a hold.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// How much to move, at most the hold's amount (default: all of it).
    /// The rest is released.
    pub amount: Option<AmountInput>,
}

/// Moves (part of) a transfer back.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    /// How much to move back (default: whatever is not reversed yet).
    pub amount: Option<AmountInput>,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Sets an account's overdraft line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverdraftRequest {
    /// How far below zero the balance may go: zero or more.
    pub overdraft_limit: AmountInput,
}

/// Where a hold stands.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = HoldStatus)]
pub enum HoldStatusDto {
    /// Reserved; may be captured or voided.
    Pending,
    /// Settled by a capture.
    Captured,
    /// Released by a void.
    Voided,
    /// Released by time.
    Expired,
}

impl From<HoldStatus> for HoldStatusDto {
    fn from(status: HoldStatus) -> Self {
        match status {
            HoldStatus::Pending => Self::Pending,
            HoldStatus::Captured => Self::Captured,
            HoldStatus::Voided => Self::Voided,
            HoldStatus::Expired => Self::Expired,
        }
    }
}

impl From<HoldStatusDto> for HoldStatus {
    fn from(status: HoldStatusDto) -> Self {
        match status {
            HoldStatusDto::Pending => Self::Pending,
            HoldStatusDto::Captured => Self::Captured,
            HoldStatusDto::Voided => Self::Voided,
            HoldStatusDto::Expired => Self::Expired,
        }
    }
}

/// A hold.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Hold)]
pub struct HoldDto {
    /// Its id.
    pub id: Uuid,
    /// Whose money it reserves.
    pub source: Uuid,
    /// Who a capture pays.
    pub destination: Uuid,
    /// How much it reserves.
    pub amount: Money,
    /// ISO 4217 code of both accounts.
    #[schema(example = "USD")]
    pub currency: String,
    /// Where it stands (derived when read: a hold past `expires_at` is
    /// `expired` even before the service records it).
    pub status: HoldStatusDto,
    /// From this time on it no longer counts and cannot be captured.
    pub expires_at: DateTime<Utc>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// The client's metadata, or null.
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<Value>,
    /// What the capture moved; null unless captured.
    #[schema(required = true)]
    pub captured_amount: Option<Money>,
    /// The capture's transfer; null unless captured.
    #[schema(required = true)]
    pub capture_transfer_id: Option<Uuid>,
    /// When it was captured, voided or expired; null while pending.
    #[schema(required = true)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// The API key that placed it.
    #[schema(required = true)]
    pub created_by: Option<Uuid>,
}

impl From<Hold> for HoldDto {
    fn from(hold: Hold) -> Self {
        Self {
            id: hold.id.as_uuid(),
            source: hold.source.as_uuid(),
            destination: hold.destination.as_uuid(),
            amount: Money::scaled(hold.amount, hold.currency),
            currency: hold.currency.code().to_owned(),
            status: hold.status.into(),
            expires_at: hold.expires_at,
            created_at: hold.created_at,
            metadata: hold.metadata,
            captured_amount: hold
                .captured_amount
                .map(|amount| Money::scaled(amount, hold.currency)),
            capture_transfer_id: hold.capture_transfer_id.map(|id| id.as_uuid()),
            resolved_at: hold.resolved_at,
            created_by: hold.created_by,
        }
    }
}

/// Which of an account's holds to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldListParams {
    /// Only holds in this status.
    pub status: Option<HoldStatusDto>,
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, unchanged.
    pub cursor: Option<String>,
}

/// A page of an account's holds, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldPage {
    /// The holds.
    pub items: Vec<HoldDto>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<Hold>> for HoldPage {
    fn from(page: Page<Hold>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}
