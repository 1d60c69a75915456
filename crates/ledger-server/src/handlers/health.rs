//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};

use crate::dto::{Health, Ready};
use crate::error::{ApiError, ErrorCode, Problem};
use crate::handlers::AppState;

/// Liveness: answers without touching the database.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The process is up.", body = Health)),
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: the database answers and its schema is migrated.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve.", body = Ready),
        (status = 503, description = "`unavailable`: the database cannot be reached or is not migrated.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait before retrying."))),
    ),
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let Err(err) = state.ledger.ready().await {
        // Whatever the cause, readiness is a yes/no question: not ready is
        // 503, never 500 (the cause is logged by the conversion).
        let err = ApiError::from(err);
        return Err(match err.code() {
            ErrorCode::Unavailable => err,
            _ => ApiError::new(ErrorCode::Unavailable, "the database is not ready")
                .with_store_error(err.store_error()),
        });
    }
    Ok(HttpResponse::Ok().json(Ready {
        status: "ready".to_owned(),
    }))
}
