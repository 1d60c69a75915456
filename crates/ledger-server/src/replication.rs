//! Read-your-writes across streaming replicas, at the HTTP edge.
//!
//! Every successful write answers with [`POSITION_HEADER`]: the primary's
//! WAL position read after the write committed ([`mark_position`], wrapped
//! around every write route by `routes::register`, so no handler has to
//! remember it, replays included). A read that sends it back as
//! [`MIN_POSITION_HEADER`] is served by a replica that has replayed that
//! far, or by the primary: never older than the client's write. A read with
//! `?consistency=replica` may be stale and says by how much
//! ([`REPLICA_LAG_HEADER`]). Which server answered is in
//! [`SERVED_BY_HEADER`]. The routing itself is the store's
//! (`Ledger::read_routed`).

use std::future::{ready, Ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpRequest, HttpResponseBuilder};
use ledger_store::{ReadConsistency, ServedBy, WalPosition};
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Required;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::handlers::AppState;

/// On every successful write: the WAL position at or after its commit.
pub const POSITION_HEADER: &str = "ledger-position";

/// On a read: serve it from a server that has replayed at least this.
pub const MIN_POSITION_HEADER: &str = "ledger-min-position";

/// On a read served by a replica: how far behind the primary it was, in ms.
pub const REPLICA_LAG_HEADER: &str = "ledger-replica-lag";

/// On a routed read: `primary`, or `replica`.
pub const SERVED_BY_HEADER: &str = "ledger-served-by";

/// `?consistency=`: which server a read may be served by.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// The primary: sees every write acknowledged before the read (default).
    #[default]
    Primary,
    /// Any replica within the lag bound: may be stale, by the number of
    /// milliseconds in `Ledger-Replica-Lag`.
    Replica,
}

/// What a read asked for: a position to be at least as fresh as, or a
/// consistency. A position wins over `?consistency=replica`: it is the
/// stronger promise.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadPreference {
    min_position: Option<WalPosition>,
    consistency: Consistency,
}

impl ReadPreference {
    /// Whether the client said anything: a read without an opt-in is the
    /// primary's (an as-of read may still go to a replica when final).
    pub fn opted_in(&self) -> bool {
        self.min_position.is_some() || self.consistency != Consistency::Primary
    }

    /// The store's consistency for this read.
    pub fn consistency(&self) -> ReadConsistency {
        match (self.min_position, self.consistency) {
            (Some(position), _) => ReadConsistency::AtLeast(position),
            (None, Consistency::Replica) => ReadConsistency::Replica,
            (None, Consistency::Primary) => ReadConsistency::Primary,
        }
    }

    /// Adds who served the read, and a stale read's lag, to its response.
    pub fn mark(&self, response: &mut HttpResponseBuilder, served_by: &ServedBy) {
        match served_by {
            ServedBy::Primary => {
                response.insert_header((SERVED_BY_HEADER, "primary"));
            }
            ServedBy::Replica { lag_ms, .. } => {
                response.insert_header((SERVED_BY_HEADER, "replica"));
                if self.consistency() == ReadConsistency::Replica {
                    response.insert_header((REPLICA_LAG_HEADER, lag_ms.to_string()));
                }
            }
        }
    }
}

/// Only the `consistency` key of a query string; the endpoint's own
/// parameters are checked by its own extractor.
#[derive(Deserialize)]
struct ConsistencyQuery {
    consistency: Option<Consistency>,
}

impl FromRequest for ReadPreference {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req))
    }
}

fn parse(req: &HttpRequest) -> Result<ReadPreference, ApiError> {
    let values: Vec<&HeaderValue> = req.headers().get_all(MIN_POSITION_HEADER).collect();
    let min_position = match values.as_slice() {
        [] => None,
        [value] => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<WalPosition>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_request(
                        "Ledger-Min-Position must be the Ledger-Position of a write response, e.g. 0/16B3748",
                    )
                })?,
        ),
        _ => {
            return Err(ApiError::invalid_request(
                "send at most one Ledger-Min-Position header",
            ))
        }
    };
    let consistency = web::Query::<ConsistencyQuery>::from_query(req.query_string())
        .map(|query| query.consistency.unwrap_or_default())
        .map_err(|_| ApiError::invalid_request("consistency must be primary or replica"))?;
    Ok(ReadPreference {
        min_position,
        consistency,
    })
}

/// The `Ledger-Min-Position` header as reads declare it
/// (`params(MinPositionHeader)`); `consistency` is in each read's own query
/// parameters.
pub struct MinPositionHeader;

impl IntoParams for MinPositionHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"))
            .examples(["0/16B3748"]);
        vec![ParameterBuilder::new()
            .name("Ledger-Min-Position")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "The `Ledger-Position` of the client's last write: the read is served by a \
                 replica that has replayed at least that far, or by the primary, never by \
                 anything older.",
            ))
            .schema(Some(schema))
            .build()]
    }
}

/// Middleware of every write route: a successful answer (2xx, replays
/// included) gets [`POSITION_HEADER`], read after the handler returned, so
/// after its commit. Failing to read it does not fail the write, which has
/// committed: the answer goes out without the header, and it is logged.
pub async fn mark_position(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut response = next.call(req).await?;
    if !response.status().is_success() {
        return Ok(response);
    }
    let Some(state) = state else {
        return Ok(response);
    };
    match state.ledger.wal_position().await {
        Ok(position) => {
            if let Ok(value) = HeaderValue::from_str(&position.to_string()) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(POSITION_HEADER), value);
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the WAL position after a write");
        }
    }
    Ok(response)
}
