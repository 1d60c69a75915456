//! The verifiable journal: the digest of all hash chains, and proofs that a
//! transfer is in it.

use actix_web::{web, HttpResponse};
use ledger_domain::TransferId;
use uuid::Uuid;

use crate::dto::{DigestDto, JournalParams, ProofDto};
use crate::error::{ApiError, Problem};
use crate::handlers::AppState;
use crate::timestamp::instant;

/// The digest of every source's hash chain as of a final time.
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
        (status = 404, description = "`transfer_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `at` is not final yet, or the transfer is not before it.",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn proof(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: web::Query<JournalParams>,
) -> Result<HttpResponse, ApiError> {
    let proof = state
        .ledger
        .proof(TransferId::from(*id), instant(params.at))
        .await?;
    Ok(HttpResponse::Ok().json(ProofDto::from(proof)))
}
