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

    /// Accepts a JSON object of bounded size.
    pub fn parse(value: Value) -> Result<Self, DomainError> {
        let invalid = DomainError::InvalidMetadata {
            max_bytes: Self::MAX_BYTES,
        };
        let Value::Object(map) = value else {
            return Err(invalid);
        };
        let size = serde_json::to_vec(&map)
            .map(|bytes| bytes.len())
            .unwrap_or(usize::MAX);
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
}
