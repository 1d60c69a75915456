//! API keys at the edge. Every operation of the route table names the scope
//! it needs (`crate::routes`); [`authorize`] runs before its handler: it
//! reads `Authorization: Bearer <key>`, asks the store for the key (on every
//! request, so a revocation counts from the next one), checks the scope and
//! the key's rate, and hands the handler a [`Caller`]. Handlers use the
//! caller for what only they can judge: which accounts a restricted key may
//! see or debit, and whose name a write is recorded under.
//!
//! 401 and 403 say nothing about whether a key exists: an unknown, malformed
//! and revoked key get the same answer. The secret is never logged: only the
//! key's prefix and id are.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use ledger_domain::{AccountId, ApiKeySecret, DomainError, IdempotencyKey, Scope};
use ledger_store::{ApiKey, Ledger, Transfer};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::handlers::AppState;

/// Who is calling: the key, or nobody in particular when authentication is
/// off (`LEDGER_AUTH=off`).
#[derive(Clone, Debug)]
pub struct Caller {
    key: Option<ApiKey>,
}

impl Caller {
    /// The key that authenticated the request; `None` when authentication
    /// is off.
    pub fn key(&self) -> Option<&ApiKey> {
        self.key.as_ref()
    }

    /// Its key's id, recorded as the author of its writes.
    pub fn key_id(&self) -> Option<Uuid> {
        self.key.as_ref().map(|key| key.id)
    }

    /// The ledger, writing in this caller's name.
    pub fn ledger(&self, ledger: &Ledger) -> Ledger {
        ledger.as_author(self.key_id())
    }

    /// Whether the key may see `account` (and, for a key restricted to
    /// accounts, move money out of it). Every other account is, to this
    /// key, an account that does not exist.
    pub fn may_use(&self, account: AccountId) -> bool {
        match self.key.as_ref().and_then(|key| key.accounts.as_ref()) {
            Some(accounts) => accounts.contains(&account),
            None => true,
        }
    }

    /// [`Self::may_use`], as the 404 a client gets for an account it may
    /// not see.
    pub fn check_account(&self, account: AccountId) -> Result<(), ApiError> {
        if self.may_use(account) {
            Ok(())
        } else {
            Err(DomainError::AccountNotFound(account).into())
        }
    }

    /// The account a request names by its id (a path's `{id}`), when the
    /// key may see it ([`Self::check_account`]).
    pub fn account(&self, id: Uuid) -> Result<AccountId, ApiError> {
        let account = AccountId::from(id);
        self.check_account(account)?;
        Ok(account)
    }

    /// Whether the key may see `transfer`: one that touches its accounts.
    pub fn may_see(&self, transfer: &Transfer) -> bool {
        self.may_use(transfer.source) || self.may_use(transfer.destination)
    }

    /// [`Self::may_see`], as the 404 a client gets for a transfer it may not
    /// see: to a restricted key, any other transfer does not exist.
    pub fn check_transfer(&self, transfer: &Transfer) -> Result<(), ApiError> {
        if self.may_see(transfer) {
            Ok(())
        } else {
            Err(DomainError::TransferNotFound(transfer.id).into())
        }
    }

    /// The accounts a restricted key is limited to; `None`: all.
    pub fn accounts(&self) -> Option<&[AccountId]> {
        self.key.as_ref()?.accounts.as_deref()
    }

    /// Checks a scope a request needs beyond its route's (e.g. an opening
    /// with money needs `treasury`).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.key {
            Some(key) if !key.scope.grants(scope) => Err(forbidden(scope)),
            _ => Ok(()),
        }
    }

    /// The client's idempotency key within this API key's namespace.
    pub fn idempotency_key(&self, key: Option<&IdempotencyKey>) -> Option<IdempotencyKey> {
        let key = key?;
        Some(match self.key_id() {
            Some(owner) => key.scoped_to(owner),
            None => key.clone(),
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Every operation of the route table runs `authorize` first; a
        // handler without it is a wiring bug, not an anonymous caller.
        ready(req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(path = req.path(), "a handler ran without authorization");
            ApiError::new(
                ErrorCode::Internal,
                "an internal error occurred; it has been logged with this request id",
            )
        }))
    }
}

/// Checks the caller's key against the scope an operation needs, then runs
/// the operation.
pub async fn authorize(
    needed: Scope,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "no application state"))?;
    let caller = if state.api.auth_required {
        let key = authenticate(&state, req.headers().get(header::AUTHORIZATION)).await?;
        if !key.scope.grants(needed) {
            return Err(forbidden(needed).into());
        }
        if let Some(limiter) = &state.rate_limiter {
            limiter.admit(key.id)?;
        }
        tracing::Span::current().record("key.prefix", key.prefix.as_str());
        Caller { key: Some(key) }
    } else {
        Caller { key: None }
    };
    req.extensions_mut().insert(caller);
    next.call(req).await
}

async fn authenticate(
    state: &AppState,
    header: Option<&header::HeaderValue>,
) -> Result<ApiKey, ApiError> {
    let secret = header
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| ApiKeySecret::parse(token.trim()))
        .ok_or_else(unauthorized)?;
    state
        .ledger
        .authenticate(&secret)
        .await?
        .ok_or_else(unauthorized)
}

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "send a valid API key: Authorization: Bearer lk_…",
    )
}

fn forbidden(needed: Scope) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!("this operation needs a key with the {needed} scope"),
    )
}

/// Requests per second each key may make (`LEDGER_RATE_LIMIT_PER_KEY`), as
/// a token bucket per key in this process: a key may burst up to one
/// second's worth, then is held to the rate. Per instance: N instances admit
/// up to N times the rate.
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter admitting `per_second` requests per key.
    pub fn new(per_second: usize) -> Arc<Self> {
        Arc::new(Self {
            per_second: f64::from(u32::try_from(per_second).unwrap_or(u32::MAX)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    fn admit(&self, key: Uuid) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| ApiError::new(ErrorCode::Internal, "rate limiter poisoned"))?;
        let (tokens, last) = buckets.entry(key).or_insert((self.per_second, now));
        let refilled = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second)
            .min(self.per_second);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "this key may make {} requests per second; retry after Retry-After",
                    self.per_second
                ),
            ))
        }
    }
}
