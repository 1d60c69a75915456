//! The JSON shapes of the API, one module per resource as in `handlers/`:
//! request bodies (strict: unknown fields are refused), query strings and
//! responses. Handlers turn requests into domain types and store records into
//! responses; the rules themselves (what an amount or metadata may be) live in
//! `ledger_domain`, so every caller gets the same ones.

mod accounts;
mod batches;
mod health;
mod holds;
mod journal;
mod keys;
mod queries;
mod statements;
mod transfers;

use std::borrow::Cow;

use ledger_domain::{
    parse_decimal_text, Currency, Decimal, DecimalTextError, Metadata, MAX_SIGNIFICANT_DIGITS,
};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

pub use accounts::*;
pub use batches::*;
pub use health::*;
pub use holds::*;
pub use journal::*;
pub use keys::*;
pub use queries::*;
pub use statements::*;
pub use transfers::*;

use crate::error::ApiError;

/// Decimal notation accepted in amounts and written in responses.
const DECIMAL_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// An exact amount or balance in a response: a decimal string with exactly
/// the currency's number of decimals (`"12.50"` USD, `"100"` JPY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money(pub Decimal);

impl Money {
    /// Writes `value` with the currency's number of decimals. The store's
    /// amounts are scaled already, but a sum over no rows is a bare `0`;
    /// padding never rounds (a value with more decimals is left as is).
    pub fn scaled(value: Decimal, currency: Currency) -> Self {
        let mut value = value;
        if value.scale() < currency.minor_units() {
            value.rescale(currency.minor_units());
        }
        Self(value)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(DECIMAL_PATTERN))
            .description(Some(
                "An exact decimal amount, as a string with the currency's number of decimals.",
            ))
            .examples(["12.50"])
            .into()
    }
}

impl ToSchema for Money {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }
}

/// An amount in a request: a JSON string (`"12.50"`) or a JSON number
/// (`12.5`), read from its text and never through a float. Exponent notation
/// (`1e3`), `NaN`, `Infinity`, signs other than a leading `-`, spaces and
/// empty strings are refused with 422 `validation_failed`; a value that is
/// neither a string nor a number (`true`, `{}`) is a malformed request (400).
#[derive(Clone, Debug)]
pub struct AmountInput {
    text: String,
}

impl<'de> Deserialize<'de> for AmountInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde_json's `arbitrary_precision` keeps a number's exact text.
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Self { text }),
            Value::Number(number) => Ok(Self {
                text: number.to_string(),
            }),
            other => Err(D::Error::custom(format!(
                "invalid type: {}, expected an amount as a decimal string or number",
                json_kind(&other)
            ))),
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl AmountInput {
    /// The exact value, read by the domain's one decimal parser. `field`
    /// names the field in error details.
    pub fn parse(&self, field: &str) -> Result<Decimal, ApiError> {
        let text = self.text.as_str();
        parse_decimal_text(text).map_err(|reason| {
            ApiError::validation(match reason {
                DecimalTextError::Exponent => format!(
                    "{field} must be written in plain decimal notation, without an exponent \
                     (e.g. \"1000.00\" rather than {text})"
                ),
                DecimalTextError::NotDecimal => {
                    format!("{field} must be a decimal number such as \"12.50\", got {text:?}")
                }
                DecimalTextError::TooManyDigits => {
                    format!("{field} has more than {MAX_SIGNIFICANT_DIGITS} significant digits")
                }
            })
        })
    }
}

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(DECIMAL_PATTERN))
                    .examples(["12.50"]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .examples([12.5]),
            )
            .description(Some(
                "An exact amount: a decimal string (preferred) or a JSON number, read \
                 without a float step. At most the currency's number of decimals (trailing \
                 zeros aside); no exponent notation.",
            ))
            .into()
    }
}

impl ToSchema for AmountInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AmountInput")
    }
}

/// Checks optional client metadata (see [`Metadata::parse`] for the rule).
pub fn parse_metadata(metadata: Option<Value>) -> Result<Option<Metadata>, ApiError> {
    metadata
        .map(Metadata::parse)
        .transpose()
        .map_err(ApiError::from)
}

/// The default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Checks a page size: 1 to [`ledger_store::MAX_PAGE_SIZE`].
pub fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=ledger_store::MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::invalid_request(format!(
            "limit must be between 1 and {}, got {limit}",
            ledger_store::MAX_PAGE_SIZE
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn parse_json(json: &str) -> Result<Decimal, String> {
        let input: AmountInput = serde_json::from_str(json).map_err(|e| format!("400: {e}"))?;
        input
            .parse("amount")
            .map_err(|e| format!("{}: {}", e.code().as_str(), e.detail()))
    }

    #[test]
    fn amounts_are_read_exactly_from_strings_and_numbers() {
        for (json, expected) in [("10", "10"), ("\"10.00\"", "10.00"), ("12.50", "12.5")] {
            let value = parse_json(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(
                value,
                Decimal::from_str(expected).expect("literal"),
                "{json}"
            );
        }
    }

    #[test]
    fn amounts_that_are_not_plain_decimals_are_refused_with_the_reason() {
        // The notation rules themselves are the domain's (`parse_decimal_text`);
        // here: each reason becomes a 422, a non-amount JSON type a 400.
        let cases = [
            (
                "\"NaN\"",
                "validation_failed: amount must be a decimal number",
                "NaN",
            ),
            (
                "1e3",
                "validation_failed: amount must be written in plain decimal notation",
                "exponent",
            ),
            (
                "\"12345678901234567890123456789\"",
                "validation_failed: amount has more than 28",
                "29 digits",
            ),
            ("true", "400", "a boolean is not an amount"),
            ("{}", "400", "an object is not an amount"),
            ("null", "400", "null is not an amount"),
        ];
        for (json, expected, why) in cases {
            let err = parse_json(json).expect_err(why);
            assert!(err.starts_with(expected), "{why}: {err}");
        }
    }

    #[test]
    fn money_is_written_as_a_string_with_the_currency_scale() {
        let usd = Currency::parse("USD").expect("USD");
        let cases = [
            ("12.50", "\"12.50\""),
            ("0", "\"0.00\""),
            ("-3", "\"-3.00\""),
        ];
        for (value, json) in cases {
            let money = Money::scaled(Decimal::from_str(value).expect("literal"), usd);
            assert_eq!(serde_json::to_string(&money).expect("serializable"), json);
        }
    }
}
