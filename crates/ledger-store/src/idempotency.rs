use deadpool_postgres::GenericClient;
use ledger_domain::{DomainError, IdempotencyKey, RequestFingerprint};
use uuid::Uuid;

use crate::StoreError;

/// A write's idempotency key together with the fingerprint of the request
/// it protects.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// The client's key.
    pub key: IdempotencyKey,
    /// What the request asked for, canonically.
    pub fingerprint: RequestFingerprint,
}

/// What claiming a key found.
pub(crate) enum Claim {
    /// The key is ours; it commits with the write.
    Claimed,
    /// The same request committed before, with these results.
    Replay {
        account_id: Option<Uuid>,
        transfer_id: Option<Uuid>,
    },
}

/// Claims `key` inside the write's transaction (see
/// `ledger.claim_idempotency_key`).
pub(crate) async fn claim(
    client: &impl GenericClient,
    idempotency: &Idempotency,
    operation: &str,
    account_id: Option<Uuid>,
    transfer_id: Option<Uuid>,
) -> Result<Claim, StoreError> {
    let statement = client
        .prepare_cached(
            "select outcome, account_id, transfer_id \
               from ledger.claim_idempotency_key($1, $2, $3, $4, $5)",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &idempotency.key.as_str(),
                &idempotency.fingerprint.as_bytes(),
                &operation,
                &account_id,
                &transfer_id,
            ],
        )
        .await?;
    match row.try_get::<_, &str>("outcome")? {
        "claimed" => Ok(Claim::Claimed),
        "replay" => Ok(Claim::Replay {
            account_id: row.try_get("account_id")?,
            transfer_id: row.try_get("transfer_id")?,
        }),
        "mismatch" => Err(DomainError::IdempotencyKeyReused.into()),
        "in_flight" => Err(StoreError::IdempotencyInFlight),
        other => Err(StoreError::Internal(anyhow::anyhow!(
            "unexpected idempotency outcome {other:?}"
        ))),
    }
}
