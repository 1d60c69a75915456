//! Transfers between customer accounts.

use actix_web::{web, HttpResponse};
use ledger_domain::{AccountId, TransferId};
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{parse_metadata, TransferDto, TransferRequest};
use crate::error::{ApiError, Problem};
use crate::handlers::accounts::created_transfer;
use crate::handlers::responses::{AccountConflict, BadId, TransferCreated, TransferNotFound};
use crate::handlers::AppState;
use crate::idempotency::IdempotencyKeyHeader;

/// Moves money from one customer account to another of the same currency.
/// A system account may not be the source (deposits are the way in).
#[utoipa::path(
    post,
    path = "/transfers",
    tag = "transfers",
    request_body = TransferRequest,
    params(
        IdempotencyKeyHeader,
    ),
    responses(
        TransferCreated,
        (status = 400, description = "`invalid_request`: malformed JSON, wrong types, unknown fields, bad UUID or Idempotency-Key.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found` (`detail` names the account).",
            body = Problem, content_type = "application/problem+json"),
        AccountConflict,
        (status = 422, description = "`insufficient_funds`, `currency_mismatch`, `validation_failed` (amount ≤ 0, too many decimals, above the maximum, source = destination, a system account as source or destination (deposits and withdrawals have their own endpoints), bad metadata), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_transfer(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    body: web::Json<TransferRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let source = AccountId::from(body.source);
    // A restricted key moves money only out of its own accounts; the
    // destination may be any account (its existence shows in the answer).
    caller.check_account(source)?;
    let amount = state.amount(&body.amount, "amount")?;
    let metadata = parse_metadata(body.metadata)?;
    let key = caller.idempotency_key(key.key());
    let outcome = caller
        .ledger(&state.ledger)
        .transfer(
            source,
            AccountId::from(body.destination),
            amount,
            metadata,
            key.as_ref(),
        )
        .await?;
    Ok(created_transfer(outcome.value.into(), outcome.replayed))
}

/// Reads one transfer.
#[utoipa::path(
    get,
    path = "/transfers/{id}",
    tag = "transfers",
    params(("id" = Uuid, Path, description = "The transfer id.")),
    responses(
        (status = 200, description = "The transfer.", body = TransferDto),
        BadId,
        TransferNotFound,
    ),
)]
pub async fn get_transfer(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = TransferId::from(*id);
    let transfer = state.ledger.get_transfer(id).await?;
    caller.check_transfer(&transfer)?;
    let currency = transfer.currency;
    let reversed = state.ledger.reversed_amount(id).await?;
    let mut dto = TransferDto::from(transfer);
    dto.reversed_amount = Some(crate::dto::Money::scaled(reversed, currency));
    Ok(HttpResponse::Ok().json(dto))
}
