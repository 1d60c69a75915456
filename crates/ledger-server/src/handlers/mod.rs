//! HTTP handlers, kept thin: parse the request into domain types, make one
//! store call, turn its result into a response DTO. Errors go through
//! [`ApiError`](crate::error::ApiError).

pub mod accounts;
pub mod batches;
pub mod health;
pub mod holds;
pub mod journal;
pub mod keys;
pub mod responses;
pub mod statements;
pub mod transfers;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use ledger_domain::Decimal;
use ledger_store::Ledger;
use serde::Serialize;

use crate::admission::InFlight;
use crate::auth::RateLimiter;
use crate::config::ApiConfig;
use crate::dto::AmountInput;
use crate::error::{ApiError, ErrorCode};
use crate::idempotency::mark_replayed;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub ledger: Ledger,
    /// The API's settings.
    pub api: Arc<ApiConfig>,
    /// Per-key request rate, when `LEDGER_RATE_LIMIT_PER_KEY` is set.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// The requests in flight in the whole process, and their bound
    /// (`LEDGER_MAX_IN_FLIGHT`); shared by every worker.
    pub in_flight: Arc<InFlight>,
    /// What `/metrics` reports; shared by every worker and listener.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The state of one server: its in-flight bound and metrics are new.
    pub fn new(ledger: Ledger, api: ApiConfig) -> Self {
        let rate_limiter =
            (api.rate_limit_per_key > 0).then(|| RateLimiter::new(api.rate_limit_per_key));
        Self {
            ledger,
            rate_limiter,
            in_flight: Arc::new(InFlight::new(api.max_in_flight)),
            metrics: Arc::new(Metrics::new()),
            api: Arc::new(api),
        }
    }

    /// Parses an amount and applies the configured per-request maximum
    /// (the store applies the ledger's own ceiling and the currency's scale).
    pub fn amount(&self, input: &AmountInput, field: &str) -> Result<Decimal, ApiError> {
        let value = input.parse(field)?;
        if value > self.api.max_amount {
            return Err(ApiError::validation(format!(
                "{field} exceeds the configured maximum of {}",
                self.api.max_amount
            )));
        }
        Ok(value)
    }
}

/// 201 with `body`, its `location` and the replay marker: the answer of a
/// write that made something under an idempotency key.
pub(crate) fn created(location: String, replayed: bool, body: impl Serialize) -> HttpResponse {
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, location));
    mark_replayed(&mut response, replayed);
    response.json(body)
}

/// The problem for a path that matches no route.
pub(crate) fn not_found_route(req: &HttpRequest) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    )
}

/// Fallback for paths that match no route: 404 problem.
pub async fn fallback(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(not_found_route(&req))
}
