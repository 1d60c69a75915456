//! The application: extractor limits, middleware, the route table
//! ([`crate::routes`]) and the OpenAPI document it yields
//! ([`crate::openapi`]). `main` and the black-box tests both build the server here, so
//! the tests exercise exactly what runs in production.

use std::net::TcpListener;
use std::sync::LazyLock;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{mime, web, App, HttpRequest, HttpResponse, HttpServer};
use ledger_domain::Scope;
use ledger_store::Ledger;
use utoipa::openapi::path::HttpMethod;

use crate::config::ApiConfig;
use crate::error::{ApiError, ErrorCode};
use crate::handlers::{fallback, AppState};
use crate::{admission, body, console, metrics, openapi, routes, telemetry};

/// Builds the application around a ledger. Called once per worker.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = state.api.body_limit_bytes;
    let batch_body_limit = state.api.batch_body_limit_bytes;
    let cors_origins = state.api.cors_origins.clone();
    App::new()
        .app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(json_error),
        )
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            ApiError::invalid_request(format!("invalid path parameter: {err}")).into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            ApiError::invalid_request(format!("invalid query string: {err}")).into()
        }))
        .service(routes::register(
            routes::operations(batch_body_limit),
            json_error,
        ))
        // Not part of the API document, like the document itself.
        .service(metrics::resource(Some(Scope::Metrics)))
        .service(routes::resource(
            "/openapi.json",
            vec![(
                HttpMethod::Get,
                routes::actix_route(&HttpMethod::Get).to(openapi_json),
            )],
        ))
        // The web console: static pages, loaded without a key.
        .service(console::resources())
        // The UI's pages use relative links, so they need the trailing slash.
        .service(routes::resource(
            "/docs",
            vec![(
                HttpMethod::Get,
                routes::actix_route(&HttpMethod::Get).to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, "/docs/"))
                        .finish()
                }),
            )],
        ))
        .service(
            routes::resource(
                "/docs/{asset:.*}",
                vec![(
                    HttpMethod::Get,
                    routes::actix_route(&HttpMethod::Get).to(docs_asset),
                )],
            )
            .app_data(web::Data::new(utoipa_swagger_ui::Config::from(
                "/openapi.json",
            ))),
        )
        .default_service(web::to(fallback))
        .wrap(Condition::new(
            !cors_origins.is_empty(),
            cors(&cors_origins),
        ))
        // Before any handler can read a body: refuse content codings it
        // would misread, and bound the time a body may take to arrive.
        .wrap(from_fn(body::guard))
        // Before the body guard, so that a shed request costs nothing: its
        // body is never read.
        .wrap(from_fn(admission::shed))
        // Counts every answer, shed ones and the router's own included.
        .wrap(from_fn(metrics::observe))
        // Outermost: every response, errors from the layers above included,
        // gets the request id and one log line.
        .wrap(from_fn(telemetry::request_context))
}

/// The OpenAPI document, serialized once.
async fn openapi_json() -> HttpResponse {
    // The document does not depend on the configuration: any body limit
    // builds the same operations.
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        openapi::document(routes::operations(0))
            .to_json()
            .unwrap_or_default()
    });
    HttpResponse::Ok()
        .content_type(mime::APPLICATION_JSON)
        .body(DOCUMENT.as_str())
}

/// A file of the Swagger UI; a name it does not have is a 404 problem, like
/// any other missing resource (utoipa-swagger-ui's own handler answers an
/// empty 404).
async fn docs_asset(
    req: HttpRequest,
    asset: web::Path<String>,
    config: web::Data<utoipa_swagger_ui::Config<'static>>,
) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&asset, config.into_inner()) {
        Ok(Some(file)) => {
            let mut response = HttpResponse::Ok();
            if file.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            Ok(response
                .content_type(file.content_type)
                .body(file.bytes.into_owned()))
        }
        Ok(None) => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no documentation asset at {}", req.path()),
        )),
        Err(err) => {
            tracing::error!(error = %err, "the Swagger UI could not be served");
            Err(ApiError::new(
                ErrorCode::Internal,
                "an internal error occurred; it has been logged with this request id",
            ))
        }
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::DELETE])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static(crate::idempotency::IDEMPOTENCY_KEY_HEADER),
            header::HeaderName::from_static(telemetry::REQUEST_ID_HEADER),
            header::HeaderName::from_static(crate::replication::MIN_POSITION_HEADER),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static(crate::idempotency::REPLAYED_HEADER),
            header::HeaderName::from_static(telemetry::REQUEST_ID_HEADER),
            header::HeaderName::from_static(crate::replication::POSITION_HEADER),
            header::HeaderName::from_static(crate::replication::SERVED_BY_HEADER),
            header::HeaderName::from_static(crate::replication::REPLICA_LAG_HEADER),
        ])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Body errors: 413 over the limit, 415 for a non-JSON content type, 408
/// when the body took too long, 400 for everything else (malformed JSON,
/// wrong types, unknown fields). Details are sentences for people, never a
/// Rust `Debug` rendering.
fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    body_error(&err).into()
}

fn body_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        ),
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than the limit",
        ),
        JsonPayloadError::Payload(PayloadError::Io(io))
            if io.kind() == std::io::ErrorKind::TimedOut =>
        {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!("{}; the connection is closed", body::BODY_READ_TIMED_OUT),
            )
        }
        JsonPayloadError::Payload(PayloadError::Incomplete(_)) => {
            ApiError::invalid_request("the request body ended before the length it announced")
        }
        JsonPayloadError::Payload(PayloadError::EncodingCorrupted) => {
            ApiError::invalid_request("the request body could not be decoded")
        }
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON, sent with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(err)
            if err.is_eof() && err.line() == 1 && err.column() == 0 =>
        {
            ApiError::invalid_request("the request body is empty; send a JSON object")
        }
        JsonPayloadError::Deserialize(err) => {
            ApiError::invalid_request(format!("invalid JSON body: {err}"))
        }
        _ => ApiError::invalid_request("the request body could not be read"),
    }
}

/// Builds the HTTP server on `listener`, with `workers` threads sharing one
/// ledger (its pool is shared, not per worker). In-flight requests get up to
/// 30 s to finish on SIGTERM/SIGINT.
pub fn server(
    ledger: Ledger,
    api: ApiConfig,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    serve(AppState::new(ledger, api), listener, workers)
}

/// [`server`] with a given state, e.g. one shared with [`metrics_server`].
pub fn serve(state: AppState, listener: TcpListener, workers: usize) -> std::io::Result<Server> {
    let server = HttpServer::new(move || build_app(state.clone()))
        .workers(workers)
        .shutdown_timeout(30)
        .listen(listener)?
        .run();
    Ok(server)
}

/// A server of `/metrics` alone, on a listener of its own
/// (`LEDGER_METRICS_ADDR`), with one worker: a scraper kept off the API's
/// port, and answered even when the API's workers are all busy. It reads
/// the same state as the main server. It does not stop on a signal by
/// itself: stop it through its handle once the main server has stopped.
pub fn metrics_server(state: AppState, listener: TcpListener) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .service(metrics::resource(None))
            .default_service(web::to(fallback))
            .wrap(from_fn(telemetry::request_context))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_read_errors_are_explained_in_sentences_not_debug_output() {
        let io = |kind| PayloadError::Io(std::io::Error::new(kind, "inner detail"));
        let cases = [
            (
                JsonPayloadError::Payload(PayloadError::Incomplete(Some(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "inner detail",
                )))),
                400,
            ),
            (
                JsonPayloadError::Payload(PayloadError::EncodingCorrupted),
                400,
            ),
            (
                JsonPayloadError::Payload(io(std::io::ErrorKind::ConnectionReset)),
                400,
            ),
            (JsonPayloadError::Payload(PayloadError::UnknownLength), 400),
            (
                JsonPayloadError::Payload(io(std::io::ErrorKind::TimedOut)),
                408,
            ),
        ];
        for (err, status) in cases {
            let what = format!("{err:?}");
            let api = body_error(&err);
            assert_eq!(api.code().status().as_u16(), status, "{what}");
            let detail = api.detail();
            for debug_marker in ["Some(", "Custom", "kind:", "inner detail", "{", "Io("] {
                assert!(!detail.contains(debug_marker), "{what}: {detail}");
            }
        }
    }
}
