use serde_json::{Map, Value};

use crate::DomainError;

/// Free-form JSON attached to an account or transfer by the client: an
/// object, at most [`Metadata::MAX_BYTES`] when serialized. Stored as `jsonb`,
/// never interpreted by the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Largest serialized size accepted.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Accepts a JSON object of bounded size, measured as PostgreSQL stores
    /// it: `jsonb` writes numbers out in full, so `1e99999` is stored (and
    /// returned) as a hundred thousand digits, and `1e999999` is beyond what
    /// it holds. Counting numbers at their written-out length means a few
    /// bytes of input can neither fail the insert nor blow up every later
    /// response.
    pub fn parse(value: Value) -> Result<Self, DomainError> {
        let invalid = DomainError::InvalidMetadata {
            max_bytes: Self::MAX_BYTES,
        };
        let Value::Object(map) = value else {
            return Err(invalid);
        };
        let size = serde_json::to_vec(&map)
            .map(|bytes| bytes.len())
            .unwrap_or(usize::MAX)
            .saturating_add(
                map.values()
                    .map(number_expansion)
                    .fold(0, usize::saturating_add),
            );
        if size > Self::MAX_BYTES || contains_nul(&map) {
            return Err(invalid);
        }
        Ok(Self(map))
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The object as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// A canonical string (keys sorted, as serde_json's map keeps them) for
    /// request fingerprints.
    pub fn canonical(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

/// How many bytes writing every number of `value` out in full (without an
/// exponent) adds to its serialized size; saturates on absurd exponents.
fn number_expansion(value: &Value) -> usize {
    match value {
        Value::Number(number) => {
            let text = number.to_string();
            let Some((mantissa, exponent)) = text.split_once(['e', 'E']) else {
                return 0;
            };
            let exponent = exponent
                .trim_start_matches('+')
                .parse::<i64>()
                .map_or(usize::MAX, |e| {
                    usize::try_from(e.unsigned_abs()).unwrap_or(usize::MAX)
                });
            mantissa
                .len()
                .saturating_add(exponent)
                .saturating_sub(text.len())
        }
        Value::Array(items) => items
            .iter()
            .map(number_expansion)
            .fold(0, usize::saturating_add),
        Value::Object(map) => map
            .values()
            .map(number_expansion)
            .fold(0, usize::saturating_add),
        Value::Null | Value::Bool(_) | Value::String(_) => 0,
    }
}

/// PostgreSQL's `jsonb` cannot hold U+0000 in strings; refuse it up front
/// rather than fail in the database.
fn contains_nul(map: &Map<String, Value>) -> bool {
    fn walk(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(walk),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    map.iter().any(|(k, v)| k.contains('\0') || walk(v))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_bounded_objects_are_metadata() {
        assert!(Metadata::parse(json!({"order": "A-17", "tags": [1, 2]})).is_ok());
        let too_big = json!({ "blob": "x".repeat(Metadata::MAX_BYTES) });
        for (bad, why) in [
            (json!([1, 2]), "an array is not an object"),
            (json!("text"), "a string is not an object"),
            (too_big, "over the size limit"),
            (json!({"k": "nul\u{0}byte"}), "jsonb cannot store NUL"),
        ] {
            assert!(Metadata::parse(bad).is_err(), "{why}");
        }
    }

    #[test]
    fn metadata_is_measured_with_its_numbers_written_out() {
        let parse = |json: &str| Metadata::parse(serde_json::from_str(json).expect("JSON"));
        assert!(
            parse(r#"{"x": 1e6, "y": [1.5e-3, 7]}"#).is_ok(),
            "small exponents are fine"
        );
        for (json, why) in [
            (
                r#"{"x": 1e999999}"#,
                "beyond what PostgreSQL's numeric holds",
            ),
            (
                r#"{"x": 1e20000}"#,
                "twenty thousand digits once written out",
            ),
            (r#"{"x": [1e-20000]}"#, "tiny numbers expand too"),
            (
                r#"{"x": 1e99999999999999999999}"#,
                "an exponent that overflows",
            ),
        ] {
            assert!(parse(json).is_err(), "{why}");
        }
    }
}
