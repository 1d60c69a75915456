//! Atomic batches of transfers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{TransferDto, TransferRequest};

/// An atomic batch of transfers between customer accounts: applied in
/// order (a later leg may spend what an earlier one received), all or
/// nothing, all at one `created_at`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 8,189 legs, each as the body of `POST /transfers`. Each leg is
    /// parsed on its own, so that a malformed one is named by its index.
    #[schema(value_type = Vec<TransferRequest>, min_items = 1, max_items = 8189)]
    pub transfers: Vec<Value>,
}

/// A committed batch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Batch)]
pub struct BatchDto {
    /// Its id.
    pub id: Uuid,
    /// The one `created_at` of all its transfers: an as-of read sees all of
    /// the batch or none of it.
    pub created_at: DateTime<Utc>,
    /// Its transfers, in the order of the request's legs.
    pub transfers: Vec<TransferDto>,
}

impl From<ledger_store::Batch> for BatchDto {
    fn from(batch: ledger_store::Batch) -> Self {
        Self {
            id: batch.id.as_uuid(),
            created_at: batch.created_at,
            transfers: batch.transfers.into_iter().map(TransferDto::from).collect(),
        }
    }
}
