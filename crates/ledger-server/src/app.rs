//! The application: routes, extractor limits, middleware and the OpenAPI
//! document. `main` and the black-box tests both build the server here, so
//! the tests exercise exactly what runs in production.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use ledger_domain::IdempotencyKey;
use ledger_store::Ledger;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::ApiConfig;
use crate::dto;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::handlers::{accounts, fallback, health, journal, transfers, AppState};
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
            `Idempotent-Replayed: true`."
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
        journal::digest,
        journal::proof,
    ),
    components(schemas(Problem, ErrorCode, dto::Money, dto::AmountInput)),
    modifiers(&IdempotencyKeyHeaderSchema),
    tags(
        (name = "accounts", description = "Accounts, their balances and histories, deposits and withdrawals."),
        (name = "transfers", description = "Money moved between two customer accounts."),
        (name = "journal", description = "The verifiable journal: a digest of every account's hash chain, and inclusion proofs."),
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
        .service(route("/health", "GET", vec![web::get().to(health::health)]))
        .service(route("/ready", "GET", vec![web::get().to(health::ready)]))
        .service(route(
            "/accounts",
            "POST, GET",
            vec![
                web::post().to(accounts::open_account),
                web::get().to(accounts::list_accounts),
            ],
        ))
        .service(route(
            "/accounts/{id}",
            "GET, DELETE",
            vec![
                web::get().to(accounts::get_account),
                web::delete().to(accounts::close_account),
            ],
        ))
        .service(route(
            "/accounts/{id}/balance",
            "GET",
            vec![web::get().to(accounts::balance)],
        ))
        .service(route(
            "/accounts/{id}/transfers",
            "GET",
            vec![web::get().to(accounts::history)],
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
            "GET",
            vec![web::get().to(transfers::get_transfer)],
        ))
        .service(route(
            "/transfers/{id}/proof",
            "GET",
            vec![web::get().to(journal::proof)],
        ))
        .service(route(
            "/journal/digest",
            "GET",
            vec![web::get().to(journal::digest)],
        ))
        // The UI's pages use relative links, so they need the trailing slash.
        .service(web::resource("/docs").route(web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/docs/"))
                .finish()
        })))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()))
        .default_service(web::to(fallback))
        .wrap(Condition::new(
            !cors_origins.is_empty(),
            cors(&cors_origins),
        ))
        // Outermost: every response, errors from the layers above included,
        // gets the request id and one log line.
        .wrap(from_fn(telemetry::request_context))
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

/// Body errors: 413 over the limit, 415 for a non-JSON content type, 400 for
/// everything else (malformed JSON, wrong types, unknown fields).
fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        ),
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than the limit",
        ),
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
        other => ApiError::invalid_request(format!("cannot read the request body: {other}")),
    };
    api.into()
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
