//! The `Idempotency-Key` request header (IETF httpapi draft) on writes.
//!
//! The store does the real work: it records the key with a fingerprint of the
//! request in the same transaction as the write, so a retry with the same key
//! and the same request gets the original result ([`REPLAYED_HEADER`] tells
//! the client), the same key with another request gets 422
//! `idempotency_key_reused`, and a retry while the first attempt still runs
//! gets 409 `idempotency_in_flight`. Only successful writes are recorded: a
//! request that failed leaves no key behind, and its retry runs again.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderValue;
use actix_web::{FromRequest, HttpRequest, HttpResponseBuilder};
use ledger_domain::IdempotencyKey;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Required;
use utoipa::IntoParams;

use crate::error::ApiError;

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The response header that marks a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's idempotency key, if it sent one.
#[derive(Debug, Clone)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl IdempotencyKeyHeader {
    /// The key, as the store takes it.
    pub fn key(&self) -> Option<&IdempotencyKey> {
        self.0.as_ref()
    }
}

/// The header as every write declares it (`params(IdempotencyKeyHeader)`):
/// optional, and when sent, exactly what [`parse`] accepts. (A derived
/// `Option<String>` would render as a nullable string, but a header is
/// absent, never null.)
impl IntoParams for IdempotencyKeyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(IdempotencyKey::MAX_LEN))
            .pattern(Some("^[!-~]+$"))
            .examples(["0b5a2c7e-3f4d-4e8a-9c1b-6d2e8f0a4b3c"]);
        vec![ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes the request safe to retry: 1 to 255 visible ASCII characters.",
            ))
            .schema(Some(schema))
            .build()]
    }
}

impl FromRequest for IdempotencyKeyHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(
            req.headers().get_all(IDEMPOTENCY_KEY_HEADER).collect(),
        ))
    }
}

fn parse(values: Vec<&HeaderValue>) -> Result<IdempotencyKeyHeader, ApiError> {
    let value = match values.as_slice() {
        [] => return Ok(IdempotencyKeyHeader(None)),
        [value] => *value,
        _ => {
            return Err(ApiError::invalid_request(
                "send at most one Idempotency-Key header",
            ))
        }
    };
    let invalid = || {
        ApiError::invalid_request(format!(
            "Idempotency-Key must be 1 to {} visible ASCII characters (a UUID is a good choice)",
            IdempotencyKey::MAX_LEN
        ))
    };
    let text = value.to_str().map_err(|_| invalid())?;
    // The draft allows the key as a structured-field string ("…"); accept
    // both that and the bare form.
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    IdempotencyKey::parse(text)
        .map(|key| IdempotencyKeyHeader(Some(key)))
        .map_err(|_| invalid())
}

/// Marks a response as a replay when it is one.
pub fn mark_replayed(response: &mut HttpResponseBuilder, replayed: bool) {
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_accepted_bare_or_quoted_and_bad_ones_refused() {
        let ok = HeaderValue::from_static("9f1c-a");
        let quoted = HeaderValue::from_static("\"9f1c-a\"");
        let spaced = HeaderValue::from_static("has space");
        let empty = HeaderValue::from_static("");
        let long = HeaderValue::from_str(&"k".repeat(256)).expect("header value");
        let key = |v: &HeaderValue| parse(vec![v]).map(|h| h.0.map(|k| k.as_str().to_owned()));
        assert_eq!(key(&ok).expect("valid"), Some("9f1c-a".to_owned()));
        assert_eq!(key(&quoted).expect("valid"), Some("9f1c-a".to_owned()));
        for (bad, why) in [
            (&spaced, "a space"),
            (&empty, "empty"),
            (&long, "256 characters"),
        ] {
            assert!(key(bad).is_err(), "{why}");
        }
        assert!(parse(vec![&ok, &ok]).is_err(), "two headers");
        assert!(parse(vec![]).expect("no header is fine").0.is_none());
    }
}
