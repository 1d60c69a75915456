//! The verifiable journal: digests of the journal tree, proofs that a
//! transfer is in one, and proofs that a later digest extends an earlier
//! one.

use actix_web::{web, HttpResponse};
use ledger_domain::journal::TreeSizes;
use ledger_domain::TransferId;
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{ConsistencyDto, ConsistencyParams, DigestDto, JournalParams, ProofDto};
use crate::error::{ApiError, Problem};
use crate::handlers::responses::TransferNotFound;
use crate::handlers::AppState;
use crate::timestamp::instant;

/// The digest of the journal tree as of a final time.
#[utoipa::path(
    get,
    path = "/journal/digest",
    tag = "journal",
    params(JournalParams),
    responses(
        (status = 200, description = "The digest; the same `at` always gives the same digest.", body = DigestDto),
        (status = 400, description = "`invalid_request`: bad timestamp, unknown parameter.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `at` is not final yet.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn digest(
    state: web::Data<AppState>,
    params: web::Query<JournalParams>,
) -> Result<HttpResponse, ApiError> {
    let digest = state.ledger.digest(instant(params.at)).await?;
    Ok(HttpResponse::Ok().json(DigestDto::from(digest)))
}

/// The proof that a transfer is in the digest as of a final time.
#[utoipa::path(
    get,
    path = "/transfers/{id}/proof",
    tag = "journal",
    params(("id" = Uuid, Path, description = "The transfer id."), JournalParams),
    responses(
        (status = 200, description = "The proof, with the digest it leads to.", body = ProofDto),
        (status = 400, description = "`invalid_request`: bad id or timestamp, unknown parameter.",
            body = Problem, content_type = "application/problem+json"),
        TransferNotFound,
        (status = 422, description = "`validation_failed`: `at` is not final yet, or the transfer is not before it.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn proof(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    params: web::Query<JournalParams>,
) -> Result<HttpResponse, ApiError> {
    let id = TransferId::from(*id);
    if caller.accounts().is_some() {
        // A restricted key proves only the transfers it may read.
        caller.check_transfer(&state.ledger.get_transfer(id).await?)?;
    }
    let proof = state.ledger.proof(id, instant(params.at)).await?;
    Ok(HttpResponse::Ok().json(ProofDto::from(proof)))
}

/// The proof that a later digest extends an earlier one: nothing the
/// earlier one covered was rewritten.
#[utoipa::path(
    get,
    path = "/journal/consistency",
    tag = "journal",
    params(ConsistencyParams),
    responses(
        (status = 200, description = "The proof, with both trees' roots.", body = ConsistencyDto),
        (status = 400, description = "`invalid_request`: a size missing, not a number, 0, or `from` > `to`; unknown parameter.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `to` is larger than the tree at the final horizon.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`.", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    ),
)]
pub async fn consistency(
    state: web::Data<AppState>,
    params: web::Query<ConsistencyParams>,
) -> Result<HttpResponse, ApiError> {
    let sizes = TreeSizes::new(params.from, params.to).map_err(ApiError::invalid_request)?;
    let proof = state.ledger.consistency(sizes).await?;
    Ok(HttpResponse::Ok().json(ConsistencyDto::from(proof)))
}
