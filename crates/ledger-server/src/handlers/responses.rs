//! Answers several operations share, declared once and named in their
//! `#[utoipa::path]` (`responses(TransferCreated, …)`). The answers every
//! operation shares (500, 503, and 408/413/415 for a body) are added to the
//! whole document in `crate::openapi` instead.

use utoipa::IntoResponses;

use crate::dto::TransferDto;
use crate::error::Problem;

/// A write that moved money answers with its transfer.
#[derive(IntoResponses)]
#[response(
    status = 201,
    description = "Applied (or replayed): the transfer.",
    headers(
        ("Location" = String, description = "The transfer: `/transfers/{id}`."),
        ("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key."),
    )
)]
pub struct TransferCreated(
    #[expect(dead_code, reason = "only its type is read, by the derive")] TransferDto,
);

/// Declares a problem+json answer that several operations give: its status
/// and description, written once.
macro_rules! problem_answer {
    ($(#[doc = $doc:tt])* $name:ident, $status:tt, $description:tt) => {
        $(#[doc = $doc])*
        #[derive(IntoResponses)]
        #[response(status = $status, description = $description, content_type = "application/problem+json")]
        pub struct $name(#[expect(dead_code, reason = "only its type is read, by the derive")] Problem);
    };
}

problem_answer! {
    /// What a write into or out of an account meets when an account is not
    /// open, or the same key is still being applied.
    AccountConflict, 409,
    "`account_closed`; `account_closing` (a close of the account is in progress: retry after `Retry-After`); `idempotency_in_flight`."
}

problem_answer! {
    /// A write whose body or headers do not parse (an operation that can
    /// name what else it refuses declares its own 400).
    BadWrite, 400,
    "`invalid_request`: malformed JSON, wrong types, unknown fields, bad id or Idempotency-Key."
}

problem_answer! {
    /// A read of one thing by its id, when the id is not a UUID.
    BadId, 400, "`invalid_request`: the id is not a UUID."
}

problem_answer! {
    /// An operation on an account that does not exist (or that the key may
    /// not see).
    AccountNotFound, 404, "`account_not_found`."
}

problem_answer! {
    /// An operation on a transfer that does not exist (or that the key may
    /// not see).
    TransferNotFound, 404, "`transfer_not_found`."
}
