//! Logs and request ids. Every request gets an id (the client's
//! `X-Request-ID` when it is sane, else a new UUIDv7), which is echoed in the
//! response header, put in every problem body, and carried by the request's
//! tracing span so that every log line of the request shows it. One line is
//! logged per request; bodies are never logged.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The request id header, in requests and responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest client-supplied request id that is accepted as is.
pub const MAX_REQUEST_ID_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served; a fresh one outside of a request
/// (which only happens in unit tests).
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| uuid::Uuid::now_v7().to_string())
}

/// The request's id, also stored in the request extensions for handlers.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Installs the global subscriber: `RUST_LOG` filters (default `info`),
/// `format` chooses pretty or JSON lines.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("logging was already initialised: {err}");
    }
}

/// A client's request id is kept when it is 1 to 128 visible ASCII
/// characters; anything else is replaced, never rejected.
fn accept_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| value.to_owned())
}

/// Middleware: assigns the request id, runs the rest of the chain inside the
/// request's span and task-local id, echoes the id, logs one line.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let id = accept_request_id(req.headers().get(REQUEST_ID_HEADER))
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_owned();
    let span = tracing::info_span!(
        "request",
        request.id = %id,
        http.method = %method,
        http.path = %path,
        // Filled in by `auth::authorize`: the key's prefix, never its secret.
        key.prefix = tracing::field::Empty,
    );

    let result = REQUEST_ID
        .scope(id.clone(), async {
            next.call(req).await.map_err(|err| {
                // An error that escaped the handlers (a middleware's): render
                // it here, inside the scope, so that a problem body gets the id.
                let response = err.error_response();
                (err, response)
            })
        })
        .instrument(span.clone())
        .await;

    let header = HeaderValue::from_str(&id).ok();
    let name = HeaderName::from_static(REQUEST_ID_HEADER);
    let log = |status: u16| {
        // Milliseconds with microsecond precision, as a JSON number.
        let latency_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1_000.0;
        span.in_scope(|| {
            tracing::info!(http.status = status, latency_ms, "{method} {path} {status}");
        });
    };
    match result {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            if let Some(value) = header {
                response.headers_mut().insert(name, value);
            }
            log(response.status().as_u16());
            Ok(response)
        }
        Err((err, mut response)) => {
            if let Some(value) = header {
                response.headers_mut().insert(name, value);
            }
            log(response.status().as_u16());
            Err(InternalError::from_response(err.to_string(), response).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_client_request_ids_are_kept_and_others_replaced() {
        let long = "r".repeat(MAX_REQUEST_ID_LEN + 1);
        let cases = [
            ("abc-123", true, "visible ASCII"),
            ("", false, "empty"),
            ("has space", false, "spaces are not visible"),
            (long.as_str(), false, "longer than 128 characters"),
        ];
        for (value, kept, why) in cases {
            let header = HeaderValue::from_str(value).expect("valid header value");
            assert_eq!(accept_request_id(Some(&header)).is_some(), kept, "{why}");
        }
    }
}
