//! Holds (two-phase transfers), reversals and overdraft lines.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use ledger_domain::{AccountId, DomainError, TransferId};
use ledger_store::{Hold, HoldExpiry, NewHold};
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{
    page_size, parse_metadata, AccountDto, CaptureRequest, HoldDto, HoldListParams, HoldPage,
    HoldRequest, OverdraftRequest, ReversalRequest, TransferDto,
};
use crate::error::{ApiError, Problem};
use crate::handlers::accounts::created_transfer;
use crate::handlers::responses::{
    AccountConflict, AccountNotFound, BadId, BadWrite, TransferCreated, TransferNotFound,
};
use crate::handlers::{created, AppState};
use crate::idempotency::{mark_replayed, IdempotencyKeyHeader};

/// Places a hold: reserves money of the source for the destination. The
/// source's `available` balance drops at once; its `balance` does not.
#[utoipa::path(
    post,
    path = "/holds",
    tag = "holds",
    request_body = HoldRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 201, description = "Placed (or replayed): the hold, `pending`.", body = HoldDto,
            headers(
                ("Location" = String, description = "The hold: `/holds/{id}`."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key."),
            )),
        BadWrite,
        (status = 404, description = "`account_not_found` (`detail` names the account).",
            body = Problem, content_type = "application/problem+json"),
        AccountConflict,
        (status = 422, description = "`insufficient_funds` (the available balance, after the overdraft line, does not cover it), `currency_mismatch`, `validation_failed` (amount, a system account, both or a bad `expires_at`/`timeout_seconds`: in the past, or beyond the maximum), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn place_hold(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    body: web::Json<HoldRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let source = AccountId::from(body.source);
    caller.check_account(source)?;
    let amount = state.amount(&body.amount, "amount")?;
    let expiry = match (body.expires_at, body.timeout_seconds) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "give expires_at or timeout_seconds, not both",
            ))
        }
        (Some(at), None) => HoldExpiry::At(at.get()),
        (None, Some(seconds)) => HoldExpiry::After(Duration::from_secs(seconds)),
        (None, None) => HoldExpiry::Default,
    };
    let request = NewHold {
        source,
        destination: AccountId::from(body.destination),
        amount,
        expiry,
        metadata: parse_metadata(body.metadata)?,
    };
    let outcome = caller
        .ledger(&state.ledger)
        .place_hold(request, caller.idempotency_key(key.key()).as_ref())
        .await?;
    let hold = HoldDto::from(outcome.value);
    Ok(created(
        format!("/holds/{}", hold.id),
        outcome.replayed,
        hold,
    ))
}

/// A hold the caller may act on or see: restricted keys only their
/// accounts' holds (others do not exist for them).
async fn visible_hold(state: &AppState, caller: &Caller, id: Uuid) -> Result<Hold, ApiError> {
    let id = TransferId::from(id);
    let hold = state.ledger.get_hold(id).await?;
    if caller.may_use(hold.source) || caller.may_use(hold.destination) {
        Ok(hold)
    } else {
        Err(DomainError::HoldNotFound(id).into())
    }
}

/// Captures a hold: moves `amount` (default: all of it) to the destination
/// and releases the rest. It spends the hold's own reservation, so it goes
/// through even if the source's available balance has dropped since.
#[utoipa::path(
    post,
    path = "/holds/{id}/capture",
    tag = "holds",
    request_body = CaptureRequest,
    params(("id" = Uuid, Path, description = "The hold id."), IdempotencyKeyHeader),
    responses(
        TransferCreated,
        BadWrite,
        (status = 404, description = "`hold_not_found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`hold_not_pending` (captured, voided or expired), `account_closed`, `account_closing`, `idempotency_in_flight`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`capture_exceeds_hold`, `validation_failed` (amount ≤ 0 or badly scaled), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn capture_hold(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    id: web::Path<Uuid>,
    body: web::Json<CaptureRequest>,
) -> Result<HttpResponse, ApiError> {
    let hold = visible_hold(&state, &caller, *id).await?;
    caller.check_account(hold.source)?;
    let amount = body
        .amount
        .as_ref()
        .map(|amount| state.amount(amount, "amount"))
        .transpose()?;
    let outcome = caller
        .ledger(&state.ledger)
        .capture_hold(hold.id, amount, caller.idempotency_key(key.key()).as_ref())
        .await?;
    Ok(created_transfer(outcome.value.into(), outcome.replayed))
}

/// Voids a hold: releases all of it.
#[utoipa::path(
    post,
    path = "/holds/{id}/void",
    tag = "holds",
    params(("id" = Uuid, Path, description = "The hold id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "Voided (or replayed): the hold.", body = HoldDto,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key."))),
        BadWrite,
        (status = 404, description = "`hold_not_found`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`hold_not_pending` (captured, voided or expired), `idempotency_in_flight`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn void_hold(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let hold = visible_hold(&state, &caller, *id).await?;
    caller.check_account(hold.source)?;
    let outcome = caller
        .ledger(&state.ledger)
        .void_hold(hold.id, caller.idempotency_key(key.key()).as_ref())
        .await?;
    let mut response = HttpResponse::Ok();
    mark_replayed(&mut response, outcome.replayed);
    Ok(response.json(HoldDto::from(outcome.value)))
}

/// Reads one hold, with its status now.
#[utoipa::path(
    get,
    path = "/holds/{id}",
    tag = "holds",
    params(("id" = Uuid, Path, description = "The hold id.")),
    responses(
        (status = 200, description = "The hold.", body = HoldDto),
        BadId,
        (status = 404, description = "`hold_not_found`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_hold(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let hold = visible_hold(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(HoldDto::from(hold)))
}

/// Lists the holds out of an account, newest first.
#[utoipa::path(
    get,
    path = "/accounts/{id}/holds",
    tag = "holds",
    params(("id" = Uuid, Path, description = "The account id."), HoldListParams),
    responses(
        (status = 200, description = "A page of holds.", body = HoldPage),
        (status = 400, description = "`invalid_request`: bad id, status, limit or cursor.",
            body = Problem, content_type = "application/problem+json"),
        AccountNotFound,
    ),
)]
pub async fn list_account_holds(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    params: web::Query<HoldListParams>,
) -> Result<HttpResponse, ApiError> {
    let account = caller.account(*id)?;
    let limit = page_size(params.limit)?;
    let page = state
        .ledger
        .list_holds(
            account,
            params.status.map(Into::into),
            params.cursor.as_deref(),
            limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(HoldPage::from(page)))
}

/// Reverses a transfer (a deposit, a withdrawal or a capture too): a new
/// transfer from its destination back to its source, linked to it. The
/// original is never changed; `GET /transfers/{id}` shows `reversed_amount`.
#[utoipa::path(
    post,
    path = "/transfers/{id}/reversals",
    tag = "transfers",
    request_body = ReversalRequest,
    params(("id" = Uuid, Path, description = "The transfer to reverse."), IdempotencyKeyHeader),
    responses(
        TransferCreated,
        BadWrite,
        TransferNotFound,
        AccountConflict,
        (status = 422, description = "`reversal_exceeds_transfer` (more than what is not reversed yet), `insufficient_funds` (the original destination cannot cover it), `validation_failed` (amount, reversing a reversal, bad metadata), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn reverse_transfer(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    id: web::Path<Uuid>,
    body: web::Json<ReversalRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let original = state.ledger.get_transfer(TransferId::from(*id)).await?;
    caller.check_transfer(&original)?;
    // Money leaves the original's destination: the key must be allowed to
    // move money out of it. Reversing a deposit or a withdrawal moves money
    // out of or into the ledger, like a withdrawal or a deposit does.
    caller.check_account(original.destination)?;
    if original.source.is_reserved_for_system() || original.destination.is_reserved_for_system() {
        caller.require(ledger_domain::Scope::Treasury)?;
    }
    let amount = body
        .amount
        .as_ref()
        .map(|amount| state.amount(amount, "amount"))
        .transpose()?;
    let outcome = caller
        .ledger(&state.ledger)
        .reverse(
            original.id,
            amount,
            parse_metadata(body.metadata)?,
            caller.idempotency_key(key.key()).as_ref(),
        )
        .await?;
    Ok(created_transfer(
        TransferDto::from(outcome.value),
        outcome.replayed,
    ))
}

/// Sets an account's overdraft line: how far below zero its balance may go.
/// Recorded append-only, in the account's own sequence of writes, so no
/// write that commits after the answer is judged by the old line.
#[utoipa::path(
    put,
    path = "/accounts/{id}/overdraft",
    tag = "accounts",
    request_body = OverdraftRequest,
    params(("id" = Uuid, Path, description = "The account id."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "Set (or replayed): the account, with its line.", body = AccountDto,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key."))),
        BadWrite,
        AccountNotFound,
        AccountConflict,
        (status = 422, description = "`overdraft_in_use` (lower than the account's debt plus its pending holds), `validation_failed` (negative or badly scaled, a system account), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_overdraft(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    id: web::Path<Uuid>,
    body: web::Json<OverdraftRequest>,
) -> Result<HttpResponse, ApiError> {
    let account = caller.account(*id)?;
    let limit = state.amount(&body.overdraft_limit, "overdraft_limit")?;
    let outcome = caller
        .ledger(&state.ledger)
        .set_overdraft_limit(account, limit, caller.idempotency_key(key.key()).as_ref())
        .await?;
    let mut response = HttpResponse::Ok();
    mark_replayed(&mut response, outcome.replayed);
    Ok(response.json(AccountDto::from(outcome.value)))
}
