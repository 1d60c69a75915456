//! Transfers between customer accounts: making one, reading one, finding
//! them.

use actix_web::{web, HttpRequest, HttpResponse};
use ledger_domain::{AccountId, Currency, TransferId};
use ledger_store::TransferQuery;
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{
    page_size, parse_metadata, split_metadata_filter, Consistency, ListTransfersParams,
    MetadataFilter, TransferDto, TransferPage, TransferRequest,
};
use crate::error::{ApiError, ErrorCode, Problem};
use crate::handlers::accounts::created_transfer;
use crate::handlers::responses::{AccountConflict, BadId, TransferCreated, TransferNotFound};
use crate::handlers::AppState;
use crate::idempotency::IdempotencyKeyHeader;
use crate::timestamp::instant;

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

/// Lists transfers newest first (`created_at`, then id), filtered by
/// account (either side), currency, time and metadata. Only money
/// movements are listed. By default the list ends at the final horizon, so
/// that paging through it never misses a transfer that commits late.
#[utoipa::path(
    get,
    path = "/transfers",
    tag = "transfers",
    params(
        ListTransfersParams,
        ("metadata" = Option<HashMap<String, String>>, Query, style = DeepObject, explode,
            description = "Metadata equality, `metadata[KEY]=VALUE` (e.g. `metadata[order_id]=A-17`): only items whose metadata has the top-level key KEY with exactly the string VALUE. Up to 16 keys, all of which must match; a key or value holds 1 to 256 bytes and no NUL. 400 `invalid_request` otherwise."),
    ),
    responses(
        (status = 200, description = "A page of transfers, newest first.", body = TransferPage),
        (status = 400, description = "`invalid_request`: bad account id, limit, cursor, timestamp, consistency or metadata filter; unknown parameter.",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a key restricted to accounts must name one of them as `account`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found`: `account` is not one a restricted key may see.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: unknown currency.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_transfers(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (params, metadata) = split_metadata_filter::<ListTransfersParams>(request.query_string())?;
    let account = params
        .account
        .map(|account| caller.account(account))
        .transpose()?;
    // A restricted key sees only transfers that touch its accounts: it
    // lists them one account at a time.
    if account.is_none() && caller.accounts().is_some() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a key restricted to accounts lists the transfers of one of them: add account=<id>",
        ));
    }
    let query = TransferQuery {
        account,
        currency: params
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()?,
        from: instant(params.from),
        to: instant(params.to),
        metadata: metadata.map(MetadataFilter::into_value),
        latest: matches!(params.consistency, Some(Consistency::Latest)),
        cursor: params.cursor,
        limit: page_size(params.limit)?,
    };
    let page = state.ledger.list_transfers(&query).await?;
    Ok(HttpResponse::Ok().json(TransferPage::from(page)))
}
