//! The one place where failures become HTTP responses: every error the API
//! returns is an RFC 9457 problem (`application/problem+json`) with a stable
//! `code`, and each code has exactly one status.

mod code;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use ledger_domain::DomainError;
use ledger_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::telemetry;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

pub use code::ErrorCode;

/// An RFC 9457 problem detail, as every error response carries it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/insufficient_funds",
    "title": "Insufficient funds",
    "status": 422,
    "detail": "account 0193a4a6-5f1e-7c36-9d1c-2f0b8e6f4a10 has insufficient funds",
    "code": "insufficient_funds",
    "request_id": "0193a4a6-6000-7000-8000-000000000001"
}))]
pub struct Problem {
    /// Identifies the kind of problem: `/problems/{code}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong with this request, for people.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// The request id (also in the `X-Request-ID` response header).
    pub request_id: String,
    /// For a refused batch (`POST /batches`): the index, from 0, of the
    /// first leg that failed (absent otherwise). Nothing of the batch was
    /// applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, nullable = false)]
    pub leg: Option<usize>,
}

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    /// Methods a 405 response lists in `Allow`.
    allow: Option<String>,
    /// The failing leg of a batch.
    leg: Option<usize>,
    /// The kind of store failure this came from ([`StoreError::kind`]), for
    /// the `ledger_store_errors_total` metric.
    store_error: Option<&'static str>,
}

impl ApiError {
    /// An error with a code and a detail for the client.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            allow: None,
            leg: None,
            store_error: None,
        }
    }

    /// The same error, about leg `leg` of a batch.
    pub fn for_leg(self, leg: usize) -> Self {
        Self {
            leg: Some(leg),
            detail: format!("transfers[{leg}]: {}", self.detail),
            ..self
        }
    }

    /// The failing leg of a batch, if the error is about one.
    pub fn leg(&self) -> Option<usize> {
        self.leg
    }

    /// 400 invalid_request.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, detail)
    }

    /// 422 validation_failed.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, detail)
    }

    /// 405 method_not_allowed, listing the methods the route has.
    pub fn method_not_allowed(allow: &str) -> Self {
        Self {
            allow: Some(allow.to_owned()),
            ..Self::new(
                ErrorCode::MethodNotAllowed,
                format!("this route allows only {allow}"),
            )
        }
    }

    /// The kind of store failure this error came from, if it came from one
    /// ([`StoreError::kind`]).
    pub fn store_error(&self) -> Option<&'static str> {
        self.store_error
    }

    /// The same error, as coming from a store failure of `kind`.
    pub fn with_store_error(self, kind: Option<&'static str>) -> Self {
        Self {
            store_error: kind,
            ..self
        }
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The detail sent to the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The problem body for the current request.
    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("/problems/{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            request_id: telemetry::current_request_id(),
            leg: self.leg,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if matches!(
            self.code,
            ErrorCode::Unavailable
                | ErrorCode::Overloaded
                | ErrorCode::AccountClosing
                | ErrorCode::RateLimited
        ) {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if self.code == ErrorCode::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            response.insert_header((header::ALLOW, allow));
        }
        if self.code == ErrorCode::RequestTimeout {
            // The rest of the body may still be on its way: the connection
            // cannot carry another request.
            response.force_close();
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        let code = match &err {
            DomainError::AccountNotFound(_) => ErrorCode::AccountNotFound,
            DomainError::TransferNotFound(_) => ErrorCode::TransferNotFound,
            DomainError::BatchNotFound(_) => ErrorCode::BatchNotFound,
            DomainError::ApiKeyNotFound(_) => ErrorCode::ApiKeyNotFound,
            DomainError::HoldNotFound(_) => ErrorCode::HoldNotFound,
            DomainError::HoldNotPending(_) => ErrorCode::HoldNotPending,
            DomainError::CaptureExceedsHold(_) => ErrorCode::CaptureExceedsHold,
            DomainError::ReversalExceedsTransfer { .. } => ErrorCode::ReversalExceedsTransfer,
            DomainError::OverdraftInUse { .. } => ErrorCode::OverdraftInUse,
            DomainError::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            DomainError::CurrencyMismatch { .. } => ErrorCode::CurrencyMismatch,
            DomainError::AccountClosed(_) => ErrorCode::AccountClosed,
            DomainError::AccountClosing(_) => ErrorCode::AccountClosing,
            DomainError::AccountNotEmpty(_) => ErrorCode::AccountNotEmpty,
            DomainError::AccountExists(_) => ErrorCode::AccountExists,
            DomainError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            // A malformed header is a malformed request, like a bad UUID.
            DomainError::InvalidIdempotencyKey => ErrorCode::InvalidRequest,
            DomainError::SameAccount
            | DomainError::NonPositiveAmount
            | DomainError::BadScale { .. }
            | DomainError::AmountTooLarge { .. }
            | DomainError::NegativeInitialBalance
            | DomainError::UnknownCurrency(_)
            | DomainError::SystemAccount(_)
            | DomainError::InvalidMetadata { .. }
            | DomainError::BatchSize { .. }
            | DomainError::NotReversible(_)
            | DomainError::InvalidOverdraftLimit
            | DomainError::InvalidHoldExpiry(_)
            | DomainError::NotYetFinal { .. } => ErrorCode::ValidationFailed,
        };
        let detail = match &err {
            DomainError::SystemAccount(id) if id.is_reserved_for_system() => format!(
                "{id} is a system account (ids below 00000000-0000-0000-0000-000000001000 are \
                 reserved for them): it cannot be chosen, closed, or be the source of a transfer"
            ),
            _ => err.to_string(),
        };
        Self::new(code, detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let kind = err.kind();
        Self::from_store(err).with_store_error(Some(kind))
    }
}

impl ApiError {
    fn from_store(err: StoreError) -> Self {
        match err {
            StoreError::Domain(domain) => domain.into(),
            StoreError::LegRefused { leg, error } => Self::from(error).for_leg(leg),
            StoreError::IdempotencyInFlight => {
                Self::new(ErrorCode::IdempotencyInFlight, err.to_string())
            }
            StoreError::InvalidCursor => Self::invalid_request(
                "invalid cursor: pass back the next_cursor of a previous page unchanged",
            ),
            StoreError::Contention(_) => {
                tracing::warn!(error = %err, "store gave up on a contended account");
                Self::new(ErrorCode::Unavailable, err.to_string())
            }
            StoreError::QueueFull(_) => {
                // Load shedding, not a fault: answered at once so the client
                // backs off (Retry-After) instead of piling up in our queue.
                tracing::warn!(error = %err, "write queue of a source is full");
                Self::new(ErrorCode::Unavailable, err.to_string())
            }
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "database unavailable");
                Self::new(
                    ErrorCode::Unavailable,
                    "the database is unavailable or overloaded; retry later",
                )
            }
            StoreError::Internal(_) | StoreError::Config(_) => {
                // The cause is logged here, once, and never sent to the client.
                tracing::error!(error = ?err, "internal error");
                Self::new(
                    ErrorCode::Internal,
                    "an internal error occurred; it has been logged with this request id",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger_domain::{AccountId, Decimal, TransferId};

    use super::*;

    #[test]
    fn every_store_error_maps_to_its_documented_status_and_code() {
        let account = AccountId::generate();
        let cases: Vec<(StoreError, u16, &str)> = vec![
            (
                DomainError::AccountNotFound(account).into(),
                404,
                "account_not_found",
            ),
            (
                DomainError::TransferNotFound(TransferId::generate()).into(),
                404,
                "transfer_not_found",
            ),
            (
                DomainError::InsufficientFunds { account }.into(),
                422,
                "insufficient_funds",
            ),
            (
                DomainError::CurrencyMismatch {
                    expected: ledger_domain::Currency::parse("USD").expect("USD"),
                    found: ledger_domain::Currency::parse("EUR").ok(),
                }
                .into(),
                422,
                "currency_mismatch",
            ),
            (DomainError::SameAccount.into(), 422, "validation_failed"),
            (
                DomainError::NonPositiveAmount.into(),
                422,
                "validation_failed",
            ),
            (
                DomainError::BadScale {
                    currency: "USD",
                    max_decimals: 2,
                }
                .into(),
                422,
                "validation_failed",
            ),
            (
                DomainError::AmountTooLarge { max: Decimal::ONE }.into(),
                422,
                "validation_failed",
            ),
            (
                DomainError::NegativeInitialBalance.into(),
                422,
                "validation_failed",
            ),
            (
                DomainError::UnknownCurrency("XYZ".into()).into(),
                422,
                "validation_failed",
            ),
            (
                DomainError::SystemAccount(account).into(),
                422,
                "validation_failed",
            ),
            (
                DomainError::InvalidMetadata { max_bytes: 1 }.into(),
                422,
                "validation_failed",
            ),
            (
                DomainError::InvalidIdempotencyKey.into(),
                400,
                "invalid_request",
            ),
            (
                DomainError::AccountClosed(account).into(),
                409,
                "account_closed",
            ),
            (
                DomainError::AccountNotEmpty(account).into(),
                409,
                "account_not_empty",
            ),
            (
                DomainError::AccountExists(account).into(),
                409,
                "account_exists",
            ),
            (
                DomainError::IdempotencyKeyReused.into(),
                422,
                "idempotency_key_reused",
            ),
            (
                StoreError::IdempotencyInFlight,
                409,
                "idempotency_in_flight",
            ),
            (StoreError::InvalidCursor, 400, "invalid_request"),
            (
                StoreError::LegRefused {
                    leg: 3,
                    error: DomainError::InsufficientFunds { account },
                },
                422,
                "insufficient_funds",
            ),
            (
                DomainError::BatchNotFound(ledger_domain::BatchId::generate()).into(),
                404,
                "batch_not_found",
            ),
            (
                DomainError::BatchSize { legs: 0, max: 1 }.into(),
                422,
                "validation_failed",
            ),
            (StoreError::Unavailable("down".into()), 503, "unavailable"),
            (StoreError::Contention(account), 503, "unavailable"),
            (StoreError::QueueFull(account), 503, "unavailable"),
            (
                StoreError::Internal(anyhow::anyhow!("secret cause")),
                500,
                "internal",
            ),
            (StoreError::Config("secret cause".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let what = format!("{err:?}");
            let api = ApiError::from(err);
            assert_eq!(api.status_code().as_u16(), status, "{what}");
            assert_eq!(api.code().as_str(), code, "{what}");
            assert_eq!(
                serde_json::to_value(api.code()).expect("serializable"),
                serde_json::json!(code),
                "{what}"
            );
        }
    }

    #[test]
    fn a_refused_batch_leg_is_named_in_the_problem() {
        let api = ApiError::from(StoreError::LegRefused {
            leg: 7,
            error: DomainError::SameAccount,
        });
        assert_eq!(api.leg(), Some(7));
        let problem = serde_json::to_value(api.problem()).expect("serializable");
        assert_eq!(problem["leg"], 7);
        assert!(problem["detail"]
            .as_str()
            .expect("detail")
            .starts_with("transfers[7]"));
        let plain = serde_json::to_value(ApiError::invalid_request("x").problem()).expect("json");
        assert!(plain.get("leg").is_none());
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let api = ApiError::from(StoreError::Internal(anyhow::anyhow!("password=hunter2")));
        assert!(!api.detail().contains("hunter2"));
        let problem = serde_json::to_string(&api.problem()).expect("serializable");
        assert!(!problem.contains("hunter2"));
    }

    #[test]
    fn unavailable_responses_ask_to_retry() {
        let response = ApiError::from(StoreError::Unavailable("down".into())).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(HeaderValue::as_bytes),
            Some(&b"1"[..])
        );
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            Some(PROBLEM_JSON.as_bytes())
        );
    }
}
