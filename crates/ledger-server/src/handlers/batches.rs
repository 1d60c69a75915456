//! Atomic multi-leg batches of transfers.

use actix_web::{web, HttpResponse};
use ledger_domain::{check_batch_size, AccountId, BatchId, DomainError};
use ledger_store::BatchLeg;
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{parse_metadata, BatchDto, BatchRequest, TransferRequest};
use crate::error::{ApiError, Problem};
use crate::handlers::responses::BadId;
use crate::handlers::{created, AppState};
use crate::idempotency::IdempotencyKeyHeader;

/// Applies 1 to 8,189 transfers between customer accounts in order, all or
/// nothing, at one `created_at`: every as-of read, history page and digest
/// sees all of the batch or none of it. A refusal is the status and `code`
/// of the first failing leg, with its index in `leg`. One `Idempotency-Key`
/// covers the whole batch.
#[utoipa::path(
    post,
    path = "/batches",
    tag = "transfers",
    request_body = BatchRequest,
    params(
        IdempotencyKeyHeader,
    ),
    responses(
        (status = 201, description = "Applied (or replayed): the transfers in leg order.", body = BatchDto,
            headers(
                ("Location" = String, description = "The batch: `/batches/{id}`."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key."),
            )),
        (status = 400, description = "`invalid_request`: malformed JSON, unknown fields, a malformed leg (`leg` names it), bad Idempotency-Key.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found` (`leg` names the first leg that names a missing account).",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`account_closed`, `account_closing` (`leg` names the leg); `idempotency_in_flight`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: above `LEDGER_BATCH_BODY_LIMIT_BYTES`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (0 or more than 8,189 legs; or a leg's amount, accounts or metadata, with `leg`), `insufficient_funds`, `currency_mismatch` (with `leg`), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_batch(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    body: web::Json<BatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let raw = body.into_inner().transfers;
    check_batch_size(raw.len())?;
    let mut legs = Vec::with_capacity(raw.len());
    for (index, leg) in raw.into_iter().enumerate() {
        let leg: TransferRequest = serde_json::from_value(leg).map_err(|err| {
            ApiError::invalid_request(format!("invalid transfer: {err}")).for_leg(index)
        })?;
        let amount = state
            .amount(&leg.amount, "amount")
            .map_err(|err| err.for_leg(index))?;
        let metadata = parse_metadata(leg.metadata).map_err(|err| err.for_leg(index))?;
        let source = AccountId::from(leg.source);
        caller
            .check_account(source)
            .map_err(|err| err.for_leg(index))?;
        legs.push(BatchLeg {
            source,
            destination: AccountId::from(leg.destination),
            amount,
            metadata,
        });
    }
    let key = caller.idempotency_key(key.key());
    let outcome = caller
        .ledger(&state.ledger)
        .batch(legs, key.as_ref())
        .await?;
    let batch = BatchDto::from(outcome.value);
    let location = format!("/batches/{}", batch.id);
    Ok(created(location, outcome.replayed, batch))
}

/// Reads one batch: its transfers in leg order.
#[utoipa::path(
    get,
    path = "/batches/{id}",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "The batch id.")),
    responses(
        (status = 200, description = "The batch.", body = BatchDto),
        BadId,
        (status = 404, description = "`batch_not_found`.", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_batch(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = BatchId::from(*id);
    let batch = state.ledger.get_batch(id).await?;
    // A restricted key sees a batch only when every leg touches its accounts.
    if !batch.transfers.iter().all(|t| caller.may_see(t)) {
        return Err(DomainError::BatchNotFound(id).into());
    }
    Ok(HttpResponse::Ok().json(BatchDto::from(batch)))
}
