//! API keys, for admin keys: make, list, revoke. The same as
//! `ledger keys create|list|revoke` on the command line.

use actix_web::{web, HttpResponse};
use ledger_domain::{AccountId, Scope};
use ledger_store::NewApiKey;
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{CreateKeyRequest, CreatedKeyDto, KeyDto, KeyList, OwnKeyDto};
use crate::error::{ApiError, Problem};
use crate::handlers::responses::BadId;
use crate::handlers::AppState;

/// Makes an API key. The answer is the only time its secret is shown.
#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Made: the secret and the key.", body = CreatedKeyDto),
        (status = 400, description = "`invalid_request`: malformed JSON, wrong types, unknown fields.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown scope, 0 or more than 1,000 accounts, a name over 200 characters or with control characters.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let scope = match body.scope.as_deref() {
        None => None,
        Some(text) => Some(Scope::parse(text).ok_or_else(|| {
            ApiError::validation(format!(
                "scope must be read, write, treasury, admin or metrics, got {text:?}"
            ))
        })?),
    };
    if body
        .accounts
        .as_ref()
        .is_some_and(|ids| ids.is_empty() || ids.len() > 1_000)
    {
        return Err(ApiError::validation(
            "accounts must list 1 to 1,000 accounts (leave it out for all)",
        ));
    }
    if body
        .name
        .as_ref()
        .is_some_and(|name| name.chars().count() > 200 || name.chars().any(char::is_control))
    {
        // PostgreSQL's text cannot hold U+0000: refused here, as a 422,
        // rather than by the database as a 500.
        return Err(ApiError::validation(
            "name must be at most 200 characters, without control characters",
        ));
    }
    let new = NewApiKey {
        scope,
        accounts: body
            .accounts
            .map(|ids| ids.into_iter().map(AccountId::from).collect()),
        name: body.name,
    };
    let (key, secret) = caller.ledger(&state.ledger).create_api_key(new).await?;
    let details = KeyDto::from(key);
    Ok(HttpResponse::Created().json(CreatedKeyDto {
        key: secret.expose().to_owned(),
        details,
    }))
}

/// Lists every key, oldest first, revoked ones included; never a secret.
#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    responses((status = 200, description = "The keys.", body = KeyList)),
)]
pub async fn list_keys(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = state.ledger.list_api_keys().await?;
    Ok(HttpResponse::Ok().json(KeyList {
        items: keys.into_iter().map(KeyDto::from).collect(),
    }))
}

/// The key this request is made with: its scope and the accounts it is
/// limited to, so that a client can hide what the key may not do. Any key
/// that may read may ask; never a secret.
#[utoipa::path(
    get,
    path = "/keys/self",
    tag = "keys",
    responses((status = 200, description = "The caller's own key.", body = OwnKeyDto)),
)]
pub async fn own_key(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(OwnKeyDto::of(caller.key()))
}

/// Revokes a key, on every instance from the next request on. Revoking a
/// revoked key changes nothing.
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "keys",
    params(("id" = Uuid, Path, description = "The key id.")),
    responses(
        (status = 200, description = "Revoked.", body = KeyDto),
        BadId,
        (status = 404, description = "`api_key_not_found`.", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let key = caller.ledger(&state.ledger).revoke_api_key(*id).await?;
    Ok(HttpResponse::Ok().json(KeyDto::from(key)))
}
