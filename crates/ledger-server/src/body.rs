//! Guards on request bodies, applied before any handler reads one.
//!
//! - **Content-Encoding**: only `identity` (or none). actix-web decodes
//!   gzip, br and zstd by itself and read any other coding (`rot13`) as
//!   identity; bodies here are small JSON documents (64 KiB at most), so
//!   compression buys little and a decompressor is one more thing to attack.
//!   Anything else gets 415 `unsupported_media_type` with
//!   `Accept-Encoding: identity` (RFC 9110 §12.5.3).
//! - **Read time**: a body must arrive within `LEDGER_BODY_READ_TIMEOUT_MS`
//!   of its headers (actix-web bounds the headers, 5 s, but not the body:
//!   one byte every 5 s held a connection forever). When the time is up the
//!   handler's read fails with a timeout, answered 408 `request_timeout`
//!   with `Connection: close`.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpMessage, ResponseError};
use futures::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, ErrorCode};
use crate::handlers::AppState;

/// The message of the I/O error a timed-out body read fails with; the JSON
/// error handler turns it into 408.
pub(crate) const BODY_READ_TIMED_OUT: &str = "the request body did not arrive in time";

/// Middleware: refuses content codings other than identity, and puts a
/// deadline on reading the body.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if has_body(&req) {
        if let Some(coding) = unsupported_coding(&req) {
            let error = ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "Content-Encoding {coding:?} is not supported: send the body uncompressed \
                     (no Content-Encoding, or identity)"
                ),
            );
            let mut response = error.error_response();
            response.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            return Ok(req.into_response(response).map_into_right_body());
        }
        let timeout = req
            .app_data::<Data<AppState>>()
            .map(|state| state.api.body_read_timeout);
        if let Some(timeout) = timeout {
            let payload = req.take_payload();
            req.set_payload(Payload::from(Box::pin(Deadline::new(payload, timeout))
                as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>));
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Whether the request says it carries a body (a non-zero Content-Length, or
/// Transfer-Encoding); a GET with a stray Content-Encoding and no body is
/// left alone.
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// The first content coding other than identity, if any.
fn unsupported_coding(req: &ServiceRequest) -> Option<String> {
    for value in req.headers().get_all(header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Some(String::from_utf8_lossy(value.as_bytes()).into_owned());
        };
        for coding in text.split(',').map(str::trim) {
            if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                return Some(coding.to_owned());
            }
        }
    }
    None
}

/// A body stream that fails once its deadline has passed.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<Sleep>>,
    expired: bool,
}

impl Deadline {
    fn new(inner: Payload, timeout: Duration) -> Self {
        Self {
            inner,
            // An absolute deadline from now, when the headers are in: the
            // timer only starts ticking for requests whose body is read.
            sleep: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
            expired: false,
        }
    }
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired = true;
                Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    BODY_READ_TIMED_OUT,
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
