//! Transfers between customer accounts.

use chrono::{DateTime, Utc};
use ledger_store::{Transfer, TransferKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AmountInput, Money};

/// Moves money between two customer accounts of the same currency.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The paying account (never a system account).
    pub source: Uuid,
    /// The receiving account.
    pub destination: Uuid,
    /// How much, greater than zero.
    pub amount: AmountInput,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// One immutable entry of the ledger.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Transfer)]
pub struct TransferDto {
    /// Its id.
    pub id: Uuid,
    /// The account money left.
    pub source: Uuid,
    /// This is the source's `source_seq`-th outgoing transfer, from 0.
    pub source_seq: i64,
    /// The account money arrived in.
    pub destination: Uuid,
    /// How much moved.
    pub amount: Money,
    /// ISO 4217 code of both accounts.
    #[schema(example = "USD")]
    pub currency: String,
    /// When the ledger applied it.
    pub created_at: DateTime<Utc>,
    /// The client's metadata, or null.
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<Value>,
    /// The source's balance right after this transfer: the figure its
    /// overdraft check used.
    pub source_balance_after: Money,
    /// The id of the API key that made it; null when it was made without
    /// authentication (`LEDGER_AUTH=off`).
    #[schema(required = true)]
    pub created_by: Option<Uuid>,
    /// The hold this transfer captured; null unless it is a capture.
    #[schema(required = true)]
    pub hold_id: Option<Uuid>,
    /// The transfer this one reverses; null unless it is a reversal.
    #[schema(required = true)]
    pub reverses: Option<Uuid>,
    /// How much of this transfer its reversals have moved back, derived when
    /// read (the transfer itself never changes). Only in `GET /transfers/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversed_amount: Option<Money>,
}

impl From<Transfer> for TransferDto {
    fn from(transfer: Transfer) -> Self {
        Self {
            id: transfer.id.as_uuid(),
            source: transfer.source.as_uuid(),
            source_seq: transfer.source_seq,
            destination: transfer.destination.as_uuid(),
            amount: Money::scaled(transfer.amount, transfer.currency),
            currency: transfer.currency.code().to_owned(),
            created_at: transfer.created_at,
            metadata: transfer.metadata,
            source_balance_after: Money::scaled(transfer.source_balance_after, transfer.currency),
            created_by: transfer.created_by,
            hold_id: match transfer.kind {
                TransferKind::Capture(hold) => Some(hold.as_uuid()),
                _ => None,
            },
            reverses: match transfer.kind {
                TransferKind::Reversal(original) => Some(original.as_uuid()),
                _ => None,
            },
            reversed_amount: None,
        }
    }
}
