//! Accounts: open, read, list, close, balance, history, deposits and
//! withdrawals.

use actix_web::{web, HttpRequest, HttpResponse};
use ledger_domain::{AccountId, Currency, Decimal, Scope};
use ledger_store::{HistoryQuery, NewAccount, Posting};
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{
    page_size, parse_metadata, split_metadata_filter, AccountDto, AccountPage, BalanceDto,
    BalanceParams, HistoryPage, HistoryParams, ListAccountsParams, MetadataFilter, MovementRequest,
    OpenAccountRequest, TransferDto,
};
use crate::error::{ApiError, ErrorCode, Problem};
use crate::handlers::responses::{
    AccountConflict, AccountNotFound, BadId, BadWrite, TransferCreated,
};
use crate::handlers::{created, AppState};
use crate::idempotency::{mark_replayed, IdempotencyKeyHeader};
use crate::timestamp::instant;

/// Opens an account, optionally with an initial balance deposited in the
/// same transaction.
#[utoipa::path(
    post,
    path = "/accounts",
    tag = "accounts",
    request_body = OpenAccountRequest,
    params(
        IdempotencyKeyHeader,
    ),
    responses(
        (status = 201, description = "Opened (or replayed).", body = AccountDto,
            headers(
                ("Location" = String, description = "The new account: `/accounts/{id}`."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key."),
            )),
        BadWrite,
        (status = 409, description = "`account_exists`, `idempotency_in_flight`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (unknown currency, negative or badly scaled initial balance or overdraft line, reserved id, bad metadata), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn open_account(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    body: web::Json<OpenAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if caller.accounts().is_some() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a key restricted to accounts cannot open accounts",
        ));
    }
    let currency = match &body.currency {
        Some(code) => Currency::parse(code)?,
        None => state.api.default_currency,
    };
    let initial_balance = body
        .initial_balance
        .as_ref()
        .map(|amount| state.amount(amount, "initial_balance"))
        .transpose()?;
    let overdraft_limit = body
        .overdraft_limit
        .as_ref()
        .map(|line| state.amount(line, "overdraft_limit"))
        .transpose()?;
    // Money in at opening is a deposit: it creates money; a line extends
    // credit.
    if initial_balance.is_some_and(|amount| amount > Decimal::ZERO)
        || overdraft_limit.is_some_and(|line| line > Decimal::ZERO)
    {
        caller.require(Scope::Treasury)?;
    }
    let request = NewAccount {
        id: body.id.map(AccountId::from),
        currency,
        initial_balance,
        overdraft_limit,
        metadata: parse_metadata(body.metadata)?,
    };
    let outcome = caller
        .ledger(&state.ledger)
        .open_account(request, caller.idempotency_key(key.key()).as_ref())
        .await?;
    let account = AccountDto::from(outcome.value);
    let location = format!("/accounts/{}", account.id);
    Ok(created(location, outcome.replayed, account))
}

/// Lists accounts in id order (creation order for generated ids).
#[utoipa::path(
    get,
    path = "/accounts",
    tag = "accounts",
    params(
        ListAccountsParams,
        ("metadata" = Option<HashMap<String, String>>, Query, style = DeepObject, explode,
            description = "Metadata equality, `metadata[KEY]=VALUE` (e.g. `metadata[order_id]=A-17`): only items whose metadata has the top-level key KEY with exactly the string VALUE. Up to 16 keys, all of which must match; a key or value holds 1 to 256 bytes and no NUL. 400 `invalid_request` otherwise."),
    ),
    responses(
        (status = 200, description = "A page of accounts.", body = AccountPage),
        (status = 400, description = "`invalid_request`: bad limit, cursor or metadata filter, unknown parameter.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_accounts(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (params, metadata) = split_metadata_filter::<ListAccountsParams>(request.query_string())?;
    let limit = page_size(params.limit)?;
    let metadata = metadata.map(MetadataFilter::into_value);
    let page = state
        .ledger
        .list_accounts_among(
            params.cursor.as_deref(),
            limit,
            caller.accounts(),
            metadata.as_ref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(AccountPage::from(page)))
}

/// Reads an account with its current balance. System accounts can be read
/// too (`00000000-0000-0000-0000-000000000840` is USD's).
#[utoipa::path(
    get,
    path = "/accounts/{id}",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "The account id.")),
    responses(
        (status = 200, description = "The account.", body = AccountDto),
        BadId,
        AccountNotFound,
    ),
)]
pub async fn get_account(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let account = caller.account(*id)?;
    let account = state.ledger.get_account(account).await?;
    Ok(HttpResponse::Ok().json(AccountDto::from(account)))
}

/// Closes an account. Only an account with a zero balance can be closed; a
/// closed account accepts no more transfers but can still be read.
#[utoipa::path(
    delete,
    path = "/accounts/{id}",
    tag = "accounts",
    params(
        ("id" = Uuid, Path, description = "The account id."),
        IdempotencyKeyHeader,
    ),
    responses(
        (status = 200, description = "The closed account (or the replayed close).", body = AccountDto,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the result of an earlier request with the same key."))),
        (status = 400, description = "`invalid_request`: the id is not a UUID, or a bad Idempotency-Key.",
            body = Problem, content_type = "application/problem+json"),
        AccountNotFound,
        (status = 409, description = "`account_not_empty`, `account_closed`; `account_closing` (another close of it is in progress: retry after `Retry-After`); `idempotency_in_flight`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (system accounts never close), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn close_account(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let account = caller.account(*id)?;
    let outcome = caller
        .ledger(&state.ledger)
        .close_account(account, caller.idempotency_key(key.key()).as_ref())
        .await?;
    let mut response = HttpResponse::Ok();
    mark_replayed(&mut response, outcome.replayed);
    Ok(response.json(AccountDto::from(outcome.value)))
}

/// An account's balance now, or as of a point in time (`at`).
#[utoipa::path(
    get,
    path = "/accounts/{id}/balance",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "The account id."), BalanceParams),
    responses(
        (status = 200, description = "The balance.", body = BalanceDto),
        (status = 400, description = "`invalid_request`: the id is not a UUID or `at` is not an RFC 3339 timestamp.",
            body = Problem, content_type = "application/problem+json"),
        AccountNotFound,
    ),
)]
pub async fn balance(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    params: web::Query<BalanceParams>,
) -> Result<HttpResponse, ApiError> {
    let account = caller.account(*id)?;
    let balance = match params.at {
        Some(at) => state.ledger.balance_at(account, at.get()).await?,
        None => state.ledger.balance(account).await?,
    };
    Ok(HttpResponse::Ok().json(BalanceDto::from(balance)))
}

/// The transfers into and out of an account, newest first.
#[utoipa::path(
    get,
    path = "/accounts/{id}/transfers",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "The account id."), HistoryParams),
    responses(
        (status = 200, description = "A page of the account's history.", body = HistoryPage),
        (status = 400, description = "`invalid_request`: bad id, limit, cursor or timestamp, unknown parameter.",
            body = Problem, content_type = "application/problem+json"),
        AccountNotFound,
    ),
)]
pub async fn history(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    params: web::Query<HistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let query = HistoryQuery {
        from: instant(params.from),
        to: instant(params.to),
        cursor: params.cursor,
        limit: page_size(params.limit)?,
    };
    let account = caller.account(*id)?;
    let page = state.ledger.history(account, &query).await?;
    Ok(HttpResponse::Ok().json(HistoryPage::from(page)))
}

/// Deposits money into an account, from its currency's system account.
#[utoipa::path(
    post,
    path = "/accounts/{id}/deposits",
    tag = "accounts",
    request_body = MovementRequest,
    params(
        ("id" = Uuid, Path, description = "The receiving account."),
        IdempotencyKeyHeader,
    ),
    responses(
        TransferCreated,
        BadWrite,
        AccountNotFound,
        AccountConflict,
        (status = 422, description = "`validation_failed` (amount ≤ 0, too many decimals, above the maximum, bad metadata), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn deposit(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    id: web::Path<Uuid>,
    body: web::Json<MovementRequest>,
) -> Result<HttpResponse, ApiError> {
    let posting = Posting::Deposit {
        account: caller.account(*id)?,
    };
    post_movement(&state, &caller, &key, body.into_inner(), posting).await
}

/// Withdraws money from an account, to its currency's system account.
#[utoipa::path(
    post,
    path = "/accounts/{id}/withdrawals",
    tag = "accounts",
    request_body = MovementRequest,
    params(
        ("id" = Uuid, Path, description = "The paying account."),
        IdempotencyKeyHeader,
    ),
    responses(
        TransferCreated,
        BadWrite,
        AccountNotFound,
        AccountConflict,
        (status = 422, description = "`insufficient_funds`, `validation_failed` (amount ≤ 0, too many decimals, above the maximum, bad metadata), `idempotency_key_reused`.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn withdraw(
    state: web::Data<AppState>,
    caller: Caller,
    key: IdempotencyKeyHeader,
    id: web::Path<Uuid>,
    body: web::Json<MovementRequest>,
) -> Result<HttpResponse, ApiError> {
    let posting = Posting::Withdrawal {
        account: caller.account(*id)?,
    };
    post_movement(&state, &caller, &key, body.into_inner(), posting).await
}

/// A deposit or a withdrawal: one posting between the account and its
/// currency's system account.
async fn post_movement(
    state: &AppState,
    caller: &Caller,
    key: &IdempotencyKeyHeader,
    body: MovementRequest,
    posting: Posting,
) -> Result<HttpResponse, ApiError> {
    let amount = state.amount(&body.amount, "amount")?;
    let metadata = parse_metadata(body.metadata)?;
    let key = caller.idempotency_key(key.key());
    let outcome = caller
        .ledger(&state.ledger)
        .post(posting, amount, metadata, key.as_ref())
        .await?;
    Ok(created_transfer(outcome.value.into(), outcome.replayed))
}

/// 201 with the transfer, its `Location`, and the replay marker.
pub(crate) fn created_transfer(transfer: TransferDto, replayed: bool) -> HttpResponse {
    created(format!("/transfers/{}", transfer.id), replayed, transfer)
}
