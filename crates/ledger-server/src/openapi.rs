//! The OpenAPI 3.1 document, served at `/openapi.json`: a frame
//! ([`ApiDoc`]), the operations of the route table, and the answers many
//! operations share, each declared once here rather than on every handler.

use ledger_domain::Scope;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::error::{ErrorCode, Problem, PROBLEM_JSON};
use crate::routes::Operation;

/// The whole document: the frame, every operation of the route table with
/// the schemas they name, then the shared answers.
pub fn document(operations: Vec<Operation>) -> utoipa::openapi::OpenApi {
    let mut openapi = ApiDoc::openapi();
    openapi
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key, `lk_` and 64 hex digits (`ledger keys create`, or \
                         `POST /keys` with an admin key).",
                    ))
                    .build(),
            ),
        );
    for mut operation in operations {
        if let Some(scope) = operation.scope {
            for item in operation.paths.paths.values_mut() {
                let operations = [
                    &mut item.get,
                    &mut item.post,
                    &mut item.put,
                    &mut item.delete,
                ];
                for op in operations.into_iter().flatten() {
                    require_key(op, scope);
                }
            }
        }
        openapi.paths.merge(operation.paths);
        openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(operation.schemas);
    }
    for modifier in [&BodyResponses as &dyn Modify, &ServerResponses] {
        modifier.modify(&mut openapi);
    }
    openapi
}

/// The document's frame: title, description, tags and the schemas no
/// operation names. The paths come from the route table ([`document`]).
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
    components(schemas(Problem, ErrorCode, dto::Money, dto::AmountInput)),
    tags(
        (name = "accounts", description = "Accounts, their balances and histories, deposits and withdrawals."),
        (name = "transfers", description = "Money moved between two customer accounts, one transfer at a time or in atomic batches; reversals."),
        (name = "holds", description = "Two-phase transfers: a hold reserves money (the available balance drops), then a capture moves it, or a void or the expiry releases it."),
        (name = "journal", description = "The verifiable journal: a digest of every account's hash chain, and inclusion proofs."),
        (name = "keys", description = "API keys (admin keys only): make, list, revoke."),
        (name = "operations", description = "Liveness and readiness probes."),
    ),
)]
pub struct ApiDoc;

/// The answers every operation with a request body can give, declared in one
/// place because [`crate::body::guard`] and the JSON extractor give them all:
/// 413 over the body limit (an operation with its own limit says so itself),
/// 415 also for a Content-Encoding other than identity, and 408 for a body
/// that took too long.
struct BodyResponses;

impl Modify for BodyResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.post, &mut item.put, &mut item.delete];
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
                responses
                    .entry("413".to_owned())
                    .or_insert_with(|| problem("`payload_too_large`.").into());
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

/// The answers of the service itself, on every operation but the probes
/// (which declare exactly what they answer): 500 for a bug, logged with the
/// request id and never explained, and 503 when the database or a bounded
/// queue cannot take the request now, or the service is at its bound of
/// requests in flight (the probes are never shed).
struct ServerResponses;

impl Modify for ServerResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let probe = operation
                    .tags
                    .as_ref()
                    .is_some_and(|tags| tags.iter().any(|tag| tag == "operations"));
                if probe {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses
                    .entry("500".to_owned())
                    .or_insert_with(|| problem("`internal`.").into());
                responses.entry("503".to_owned()).or_insert_with(|| {
                    let mut unavailable = problem(
                        "`unavailable`: the database cannot take the request now (unreachable, \
                         timed out, or a bounded queue is full); or `overloaded`: the service \
                         has `LEDGER_MAX_IN_FLIGHT` requests in flight and refused this one \
                         before doing anything. Either way, retry after `Retry-After` seconds.",
                    );
                    unavailable
                        .headers
                        .insert("Retry-After".to_owned(), retry_after().into());
                    unavailable.into()
                });
            }
        }
    }
}

const BEARER: &str = "bearer";

/// Marks an operation as needing a key with `scope`, with the answers that
/// come with that (declared here, once, for every protected operation).
fn require_key(operation: &mut utoipa::openapi::path::Operation, scope: Scope) {
    operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    let note = format!("\n\nNeeds an API key with the `{scope}` scope (or one that includes it).");
    match &mut operation.description {
        Some(description) => description.push_str(&note),
        None => operation.description = Some(note.trim_start().to_owned()),
    }
    let responses = &mut operation.responses.responses;
    responses.entry("401".to_owned()).or_insert_with(|| {
        let mut unauthorized = problem(
            "`unauthorized`: no key, or a malformed, unknown or revoked one (the answer does \
             not say which).",
        );
        unauthorized.headers.insert(
            "WWW-Authenticate".to_owned(),
            string_header("`Bearer`.").into(),
        );
        unauthorized.into()
    });
    responses.entry("403".to_owned()).or_insert_with(|| {
        problem("`forbidden`: the key's scope does not allow this operation.").into()
    });
    responses.entry("429".to_owned()).or_insert_with(|| {
        let mut limited = problem(
            "`rate_limited`: the key made more requests per second than \
             `LEDGER_RATE_LIMIT_PER_KEY` allows.",
        );
        limited
            .headers
            .insert("Retry-After".to_owned(), retry_after().into());
        limited.into()
    });
}

/// A `Retry-After` header: seconds to wait before retrying.
fn retry_after() -> Header {
    string_header("Seconds to wait before retrying.")
}

/// A response header whose value is a string.
fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .build()
}

/// A problem+json answer.
fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
