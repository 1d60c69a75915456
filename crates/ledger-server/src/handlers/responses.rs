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

/// What a write into or out of an account meets when an account is not
/// open, or the same key is still being applied.
#[derive(IntoResponses)]
#[response(
    status = 409,
    description = "`account_closed`; `account_closing` (a close of the account is in progress: retry after `Retry-After`); `idempotency_in_flight`.",
    content_type = "application/problem+json"
)]
pub struct AccountConflict(
    #[expect(dead_code, reason = "only its type is read, by the derive")] Problem,
);

/// A write whose body or headers do not parse (an operation that can name
/// what else it refuses declares its own 400).
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "`invalid_request`: malformed JSON, wrong types, unknown fields, bad id or Idempotency-Key.",
    content_type = "application/problem+json"
)]
pub struct BadWrite(#[expect(dead_code, reason = "only its type is read, by the derive")] Problem);

/// A read of one thing by its id, when the id is not a UUID.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "`invalid_request`: the id is not a UUID.",
    content_type = "application/problem+json"
)]
pub struct BadId(#[expect(dead_code, reason = "only its type is read, by the derive")] Problem);

/// An operation on an account that does not exist (or that the key may not
/// see).
#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "`account_not_found`.",
    content_type = "application/problem+json"
)]
pub struct AccountNotFound(
    #[expect(dead_code, reason = "only its type is read, by the derive")] Problem,
);

/// An operation on a transfer that does not exist (or that the key may not
/// see).
#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "`transfer_not_found`.",
    content_type = "application/problem+json"
)]
pub struct TransferNotFound(
    #[expect(dead_code, reason = "only its type is read, by the derive")] Problem,
);
