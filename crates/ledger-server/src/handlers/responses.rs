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
pub struct TransferCreated(#[allow(dead_code)] TransferDto);

/// What a write into or out of an account meets when an account is not
/// open, or the same key is still being applied.
#[derive(IntoResponses)]
#[response(
    status = 409,
    description = "`account_closed`; `account_closing` (a close of the account is in progress: retry after `Retry-After`); `idempotency_in_flight`.",
    content_type = "application/problem+json"
)]
pub struct AccountConflict(#[allow(dead_code)] Problem);
