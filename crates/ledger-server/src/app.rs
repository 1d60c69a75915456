//! The application: routes, extractor limits, middleware and the OpenAPI
//! document. `main` and the black-box tests both build the server here, so
//! the tests exercise exactly what runs in production.

use std::net::TcpListener;
use std::sync::{Arc, LazyLock};

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{guard, mime, web, App, HttpRequest, HttpResponse, HttpServer};
use ledger_domain::IdempotencyKey;
use ledger_store::Ledger;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use crate::body;
use crate::config::ApiConfig;
use crate::dto;
use crate::error::{ApiError, ErrorCode, Problem, PROBLEM_JSON};
use crate::handlers::{accounts, batches, fallback, health, journal, transfers, AppState};
use crate::telemetry;

/// The OpenAPI 3.1 document, served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ledger API",
        description = "An append-only double-entry ledger. Amounts are exact decimal strings \
            (requests also accept JSON numbers, read without a float step); timestamps are \
            RFC 3339 UTC; ids are UUIDs. Every error is an RFC 9457 problem \
            (`application/problem+json`) with a stable `code`. Every response carries an \
            `X-Request-ID` header (the client's, when it sent a sane one). Writes accept an \
            `Idempotency-Key` header; a replay returns the original status and body with \
            `Idempotent-Replayed: true`. Every GET route also answers HEAD (the same status \
            and headers, no body). Lists (`GET /accounts`, an account's history) are paged \
            by rows (`limit`) and by size: a page stops once it passes about 1 MiB, and \
            always holds at least one item; follow `next_cursor`. Cursors are signed: pass \
            them back unchanged."
    ),
    paths(
        health::health,
        health::ready,
        accounts::open_account,
        accounts::list_accounts,
        accounts::get_account,
        accounts::close_account,
        accounts::balance,
        accounts::history,
        accounts::deposit,
        accounts::withdraw,
        transfers::create_transfer,
        transfers::get_transfer,
        batches::create_batch,
        batches::get_batch,
        journal::digest,
        journal::proof,
        journal::consistency,
    ),
    components(schemas(Problem, ErrorCode, dto::Money, dto::AmountInput)),
    modifiers(&IdempotencyKeyHeaderSchema, &BodyResponses),
    tags(
        (name = "accounts", description = "Accounts, their balances and histories, deposits and withdrawals."),
        (name = "transfers", description = "Money moved between two customer accounts, one transfer at a time or in atomic batches."),
        (name = "journal", description = "The verifiable journal: a Merkle tree over every transfer: digests, inclusion proofs, consistency proofs."),
        (name = "operations", description = "Liveness and readiness probes."),
    ),
)]
pub struct ApiDoc;

/// Describes the `Idempotency-Key` header exactly: utoipa renders an optional
/// header as a nullable string, but a header is absent, never null.
struct IdempotencyKeyHeaderSchema;

impl Modify for IdempotencyKeyHeaderSchema {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schema = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(IdempotencyKey::MAX_LEN))
                .pattern(Some("^[!-~]+$"))
                .examples(["0b5a2c7e-3f4d-4e8a-9c1b-6d2e8f0a4b3c"])
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let RefOr::T(parameter) = parameter {
                        if parameter.name == "Idempotency-Key" {
                            parameter.schema = Some(schema().into());
                        }
                    }
                }
            }
        }
    }
}

/// The answers every operation with a request body can give, declared in one
/// place because [`body::guard`] gives them all: 415 also for a
/// Content-Encoding other than identity, and 408 for a body that took too
/// long.
struct BodyResponses;

impl Modify for BodyResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                if operation.request_body.is_none() {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "408".to_owned(),
                    problem(
                        "`request_timeout`: the body did not arrive within the body read \
                         timeout (`LEDGER_BODY_READ_TIMEOUT_MS`); the connection is closed.",
                    )
                    .into(),
                );
                responses.insert(
                    "415".to_owned(),
                    problem(
                        "`unsupported_media_type`: the body must be application/json, sent \
                         without a Content-Encoding (or `identity`); a refused coding is \
                         answered with `Accept-Encoding: identity`.",
                    )
                    .into(),
                );
            }
        }
    }
}

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
        .service(route(
            "/health",
            "GET, HEAD",
            vec![get().to(health::health)],
        ))
        .service(route("/ready", "GET, HEAD", vec![get().to(health::ready)]))
        .service(route(
            "/accounts",
            "POST, GET, HEAD",
            vec![
                web::post().to(accounts::open_account),
                get().to(accounts::list_accounts),
            ],
        ))
        .service(route(
            "/accounts/{id}",
            "GET, HEAD, DELETE",
            vec![
                get().to(accounts::get_account),
                web::delete().to(accounts::close_account),
            ],
        ))
        .service(route(
            "/accounts/{id}/balance",
            "GET, HEAD",
            vec![get().to(accounts::balance)],
        ))
        .service(route(
            "/accounts/{id}/transfers",
            "GET, HEAD",
            vec![get().to(accounts::history)],
        ))
        .service(route(
            "/accounts/{id}/deposits",
            "POST",
            vec![web::post().to(accounts::deposit)],
        ))
        .service(route(
            "/accounts/{id}/withdrawals",
            "POST",
            vec![web::post().to(accounts::withdraw)],
        ))
        .service(route(
            "/transfers",
            "POST",
            vec![web::post().to(transfers::create_transfer)],
        ))
        .service(route(
            "/transfers/{id}",
            "GET, HEAD",
            vec![get().to(transfers::get_transfer)],
        ))
        .service(
            route(
                "/batches",
                "POST",
                vec![web::post().to(batches::create_batch)],
            )
            // A batch's own limit: up to 8,189 legs do not fit the general one.
            .app_data(
                web::JsonConfig::default()
                    .limit(batch_body_limit)
                    .error_handler(json_error),
            ),
        )
        .service(route(
            "/batches/{id}",
            "GET, HEAD",
            vec![get().to(batches::get_batch)],
        ))
        .service(route(
            "/transfers/{id}/proof",
            "GET, HEAD",
            vec![get().to(journal::proof)],
        ))
        .service(route(
            "/journal/digest",
            "GET, HEAD",
            vec![get().to(journal::digest)],
        ))
        .service(route(
            "/journal/consistency",
            "GET, HEAD",
            vec![get().to(journal::consistency)],
        ))
        .service(route(
            "/openapi.json",
            "GET, HEAD",
            vec![get().to(openapi_json)],
        ))
        // The UI's pages use relative links, so they need the trailing slash.
        .service(route(
            "/docs",
            "GET, HEAD",
            vec![get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((header::LOCATION, "/docs/"))
                    .finish()
            })],
        ))
        .service(
            route("/docs/{asset:.*}", "GET, HEAD", vec![get().to(docs_asset)]).app_data(
                web::Data::new(utoipa_swagger_ui::Config::from("/openapi.json")),
            ),
        )
        .default_service(web::to(fallback))
        .wrap(Condition::new(
            !cors_origins.is_empty(),
            cors(&cors_origins),
        ))
        // Before any handler can read a body: refuse content codings it
        // would misread, and bound the time a body may take to arrive.
        .wrap(from_fn(body::guard))
        // Outermost: every response, errors from the layers above included,
        // gets the request id and one log line.
        .wrap(from_fn(telemetry::request_context))
}

/// A route for GET that also answers HEAD (RFC 9110 §9.3.2: wherever GET is
/// served). actix-web sends a HEAD response's headers, Content-Length
/// included, without its body.
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The OpenAPI document, serialized once.
async fn openapi_json() -> HttpResponse {
    static DOCUMENT: LazyLock<String> =
        LazyLock::new(|| ApiDoc::openapi().to_json().unwrap_or_default());
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

/// A resource with its methods; any other method gets a 405 problem that
/// lists `allow`.
fn route(path: &str, allow: &'static str, routes: Vec<actix_web::Route>) -> actix_web::Resource {
    routes
        .into_iter()
        .fold(web::resource(path), actix_web::Resource::route)
        .default_service(web::to(move || async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(allow))
        }))
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::DELETE])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static(crate::idempotency::IDEMPOTENCY_KEY_HEADER),
            header::HeaderName::from_static(telemetry::REQUEST_ID_HEADER),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static(crate::idempotency::REPLAYED_HEADER),
            header::HeaderName::from_static(telemetry::REQUEST_ID_HEADER),
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
    let state = AppState {
        ledger,
        api: Arc::new(api),
    };
    let server = HttpServer::new(move || build_app(state.clone()))
        .workers(workers)
        .shutdown_timeout(30)
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
