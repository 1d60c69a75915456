//! Finding transfers (`GET /transfers`) and the metadata filter it shares
//! with `GET /accounts`: `metadata[KEY]=VALUE`, OpenAPI's `deepObject`
//! style, which serde's query-string reader does not know. The handler
//! splits those pairs off ([`split_metadata_filter`]) before the rest is
//! read strictly, as every other query string is.

use ledger_store::{Page, Transfer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::TransferDto;
use crate::error::ApiError;
use crate::timestamp::Timestamp;

/// The most `metadata[…]` pairs one request may filter on.
pub const MAX_METADATA_FILTERS: usize = 16;

/// The longest key or value of a metadata filter, in bytes.
pub const MAX_METADATA_FILTER_BYTES: usize = 256;

/// Whether a list ends at the final horizon or includes what is not final.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Only transfers before the final horizon: none can still appear
    /// among them, so paging never misses one (the default).
    #[default]
    Final,
    /// Up to the newest committed transfer; a transfer that commits late
    /// with an earlier time can be missed by a client already past it.
    Latest,
}

/// Filters and pagination of `GET /transfers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTransfersParams {
    /// Only transfers into or out of this account (an unknown account lists
    /// nothing). Required for a key restricted to accounts.
    pub account: Option<Uuid>,
    /// Only transfers in this currency (ISO 4217 code; an unknown one is
    /// 422 `validation_failed`).
    #[param(example = "USD")]
    pub currency: Option<String>,
    /// Only transfers at or after this time (RFC 3339, years 0000–9999;
    /// truncated to whole microseconds).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<Timestamp>,
    /// Only transfers at or before this time (RFC 3339, years 0000–9999;
    /// truncated to whole microseconds).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<Timestamp>,
    /// `final` (default): the list ends at the final horizon, so a client
    /// paging through it never misses a transfer that commits late; the
    /// newest transfers appear once they are final (within
    /// `LEDGER_HORIZON_INTERVAL_MS` or so). `latest`: up to the newest
    /// committed transfer, without that guarantee.
    #[param(value_type = Option<Consistency>)]
    pub consistency: Option<Consistency>,
    /// Page size, 1 to 1000 (default 50); larger values are refused. A page
    /// also stops once it passes about 1 MiB (always holding at least one
    /// item), so it may hold fewer with a `next_cursor`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, unchanged (with the same
    /// filters): cursors are signed, and any other value is refused with
    /// 400 `invalid_request`.
    pub cursor: Option<String>,
}

/// A parsed metadata filter: the object every listed item's metadata
/// contains.
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataFilter(Value);

impl MetadataFilter {
    /// The JSON object the store matches with `@>`.
    pub fn into_value(self) -> Value {
        self.0
    }
}

/// Reads a query string with `metadata[KEY]=VALUE` pairs: the other
/// parameters into `T` (strictly, as `web::Query` does), the metadata pairs
/// into a filter. Every malformed part is 400 `invalid_request`.
pub fn split_metadata_filter<T: DeserializeOwned>(
    query: &str,
) -> Result<(T, Option<MetadataFilter>), ApiError> {
    let invalid = |detail: String| ApiError::invalid_request(detail);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|err| invalid(format!("invalid query string: {err}")))?;
    let mut filter = Map::new();
    let mut rest = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if !name.starts_with("metadata") {
            rest.push((name, value));
            continue;
        }
        let key = name
            .strip_prefix("metadata[")
            .and_then(|inner| inner.strip_suffix(']'))
            .filter(|key| !key.contains(['[', ']']))
            .ok_or_else(|| {
                invalid(format!(
                    "{name:?} is not a metadata filter: write metadata[KEY]=VALUE, \
                     KEY a top-level key"
                ))
            })?;
        for (what, text) in [("key", key), ("value", value.as_str())] {
            if text.is_empty() || text.len() > MAX_METADATA_FILTER_BYTES || text.contains('\0') {
                return Err(invalid(format!(
                    "a metadata filter {what} holds 1 to {MAX_METADATA_FILTER_BYTES} bytes \
                     and no NUL; {name:?} does not"
                )));
            }
        }
        if filter
            .insert(key.to_owned(), Value::String(value))
            .is_some()
        {
            return Err(invalid(format!(
                "metadata[{key}] is given twice; a key can equal one value"
            )));
        }
    }
    if filter.len() > MAX_METADATA_FILTERS {
        return Err(invalid(format!(
            "at most {MAX_METADATA_FILTERS} metadata filters, got {}",
            filter.len()
        )));
    }
    let rest = serde_urlencoded::to_string(&rest)
        .map_err(|err| invalid(format!("invalid query string: {err}")))?;
    let params = serde_urlencoded::from_str(&rest)
        .map_err(|err| invalid(format!("invalid query string: {err}")))?;
    let filter = (!filter.is_empty()).then_some(MetadataFilter(Value::Object(filter)));
    Ok((params, filter))
}

/// A page of transfers, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferPage {
    /// The transfers.
    pub items: Vec<TransferDto>,
    /// Pass as `cursor` (with the same filters) to get the next page; null
    /// on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<Transfer>> for TransferPage {
    fn from(page: Page<Transfer>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rest {
        limit: Option<u32>,
    }

    fn split(query: &str) -> Result<(Option<u32>, Option<Value>), String> {
        split_metadata_filter::<Rest>(query)
            .map(|(rest, filter)| (rest.limit, filter.map(MetadataFilter::into_value)))
            .map_err(|err| err.detail().to_owned())
    }

    #[test]
    fn metadata_pairs_become_one_object_and_the_rest_is_read_as_usual() {
        assert_eq!(
            split("limit=5&metadata%5Border_id%5D=A-17&metadata[shop]=n%C3%BC%20rd"),
            Ok((Some(5), Some(json!({"order_id": "A-17", "shop": "nü rd"}))))
        );
        assert_eq!(split(""), Ok((None, None)));
    }

    #[test]
    fn malformed_metadata_filters_are_refused_with_the_reason() {
        let long = "k".repeat(MAX_METADATA_FILTER_BYTES + 1);
        let many: Vec<String> = (0..=MAX_METADATA_FILTERS)
            .map(|i| format!("metadata[k{i}]=v"))
            .collect();
        let cases = [
            ("metadata=x".to_owned(), "no key"),
            ("metadata[]=x".to_owned(), "an empty key"),
            ("metadata[a][b]=x".to_owned(), "a nested key"),
            ("metadata[a=x".to_owned(), "no closing bracket"),
            ("metadata[a]=".to_owned(), "an empty value"),
            (
                "metadata[a]=%00".to_owned(),
                "a NUL, which jsonb cannot hold",
            ),
            (format!("metadata[{long}]=x"), "a key too long"),
            (
                "metadata[a]=1&metadata[a]=2".to_owned(),
                "a key given twice",
            ),
            (many.join("&"), "too many keys"),
            ("limit=5&colour=red".to_owned(), "an unknown parameter"),
        ];
        for (query, why) in cases {
            assert!(split(&query).is_err(), "{why}: {query}");
        }
    }
}
