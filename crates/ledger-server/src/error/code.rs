//! The stable codes of every error, with the HTTP status and title that
//! go with each: the one table a client (and the OpenAPI document) reads.

use actix_web::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong, as a stable machine-readable code. Clients branch on
/// this, never on `title` or `detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed JSON, wrong types, unknown fields, a bad UUID,
    /// timestamp, cursor, limit or header.
    InvalidRequest,
    /// 422: the request is well-formed but breaks a rule (amount ≤ 0, too
    /// many decimals, unknown currency, …); `detail` says which.
    ValidationFailed,
    /// 422: the source's balance does not cover the amount.
    InsufficientFunds,
    /// 422: the accounts are in different currencies.
    CurrencyMismatch,
    /// 422: the idempotency key was used before with a different request.
    IdempotencyKeyReused,
    /// 404: no such account (in the path or the body; `detail` says which).
    AccountNotFound,
    /// 404: no such transfer.
    TransferNotFound,
    /// 404: no such batch.
    BatchNotFound,
    /// 404: no such API key.
    ApiKeyNotFound,
    /// 404: no such hold.
    HoldNotFound,
    /// 409: the hold was captured, voided or has expired.
    HoldNotPending,
    /// 422: a capture of more than the hold reserves.
    CaptureExceedsHold,
    /// 422: reversals of a transfer would move back more than it moved.
    ReversalExceedsTransfer,
    /// 422: a line lower than what the account already uses (its debt and
    /// its pending holds).
    OverdraftInUse,
    /// 401: no API key, or one that is malformed, unknown or revoked (the
    /// answer does not say which). Comes with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// 403: the key's scope does not allow the operation.
    Forbidden,
    /// 429: the key made more requests than its rate allows; retry after
    /// `Retry-After` seconds.
    RateLimited,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: an account with this id exists already.
    AccountExists,
    /// 409: the account is closed, for good.
    AccountClosed,
    /// 409: a close of the account is in progress; retry after `Retry-After`
    /// seconds (the account then is either closed or open again).
    AccountClosing,
    /// 409: only an account with a zero balance can be closed.
    AccountNotEmpty,
    /// 409: a request with the same idempotency key is still in flight.
    IdempotencyInFlight,
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`, or has a Content-Encoding
    /// other than identity.
    UnsupportedMediaType,
    /// 408: the request body did not arrive within the body read timeout;
    /// the connection is closed.
    RequestTimeout,
    /// 503: the database cannot be reached or is overloaded; retry later.
    Unavailable,
    /// 503: more requests are in flight in the service than it takes at
    /// once (`LEDGER_MAX_IN_FLIGHT`); refused before any work was done, so
    /// retrying after `Retry-After` seconds is always safe.
    Overloaded,
    /// 500: a bug. The body carries no internal detail.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::ValidationFailed
            | Self::InsufficientFunds
            | Self::CaptureExceedsHold
            | Self::ReversalExceedsTransfer
            | Self::OverdraftInUse
            | Self::CurrencyMismatch
            | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::AccountNotFound
            | Self::TransferNotFound
            | Self::BatchNotFound
            | Self::ApiKeyNotFound
            | Self::NotFound
            | Self::HoldNotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::AccountExists
            | Self::AccountClosed
            | Self::AccountClosing
            | Self::AccountNotEmpty
            | Self::IdempotencyInFlight
            | Self::HoldNotPending => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short summary that is the same for every occurrence of the code.
    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is malformed",
            Self::ValidationFailed => "The request breaks a ledger rule",
            Self::InsufficientFunds => "Insufficient funds",
            Self::CurrencyMismatch => "Currency mismatch",
            Self::IdempotencyKeyReused => "Idempotency key reused with a different request",
            Self::AccountNotFound => "Account not found",
            Self::TransferNotFound => "Transfer not found",
            Self::BatchNotFound => "Batch not found",
            Self::ApiKeyNotFound => "API key not found",
            Self::HoldNotFound => "Hold not found",
            Self::HoldNotPending => "Hold no longer pending",
            Self::CaptureExceedsHold => "Capture exceeds the hold",
            Self::ReversalExceedsTransfer => "Reversal exceeds the transfer",
            Self::OverdraftInUse => "Overdraft line in use",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::RateLimited => "Too many requests",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::AccountExists => "Account already exists",
            Self::AccountClosed => "Account closed",
            Self::AccountClosing => "Account being closed",
            Self::AccountNotEmpty => "Account not empty",
            Self::IdempotencyInFlight => "A request with this idempotency key is in flight",
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::RequestTimeout => "Request body timed out",
            Self::Unavailable => "Service unavailable",
            Self::Overloaded => "Service overloaded",
            Self::Internal => "Internal server error",
        }
    }

    /// The code as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::ValidationFailed => "validation_failed",
            Self::InsufficientFunds => "insufficient_funds",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::AccountNotFound => "account_not_found",
            Self::TransferNotFound => "transfer_not_found",
            Self::BatchNotFound => "batch_not_found",
            Self::ApiKeyNotFound => "api_key_not_found",
            Self::HoldNotFound => "hold_not_found",
            Self::HoldNotPending => "hold_not_pending",
            Self::CaptureExceedsHold => "capture_exceeds_hold",
            Self::ReversalExceedsTransfer => "reversal_exceeds_transfer",
            Self::OverdraftInUse => "overdraft_in_use",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::AccountExists => "account_exists",
            Self::AccountClosed => "account_closed",
            Self::AccountClosing => "account_closing",
            Self::AccountNotEmpty => "account_not_empty",
            Self::IdempotencyInFlight => "idempotency_in_flight",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RequestTimeout => "request_timeout",
            Self::Unavailable => "unavailable",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
        }
    }
}
