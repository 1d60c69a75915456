use sha2::{Digest, Sha256};

use crate::DomainError;

/// A client-chosen key that makes a write safe to retry: the same key with the
/// same request returns the original result without applying it again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Accepts 1 to 255 visible ASCII characters (the IETF draft's keys are
    /// opaque strings; UUIDs are the usual choice).
    pub fn parse(key: &str) -> Result<Self, DomainError> {
        let visible = key.bytes().all(|b| b.is_ascii_graphic());
        if key.is_empty() || key.len() > Self::MAX_LEN || !visible {
            return Err(DomainError::InvalidIdempotencyKey);
        }
        Ok(Self(key.to_owned()))
    }

    /// The key within the namespace of API key `owner` (`<owner>:<key>`,
    /// up to 292 characters): the ledger stores keys this way, so that one
    /// client's keys can neither block nor reveal another's.
    pub fn scoped_to(&self, owner: uuid::Uuid) -> Self {
        Self(format!("{owner}:{}", self.0))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of everything that makes two requests "the same request" for
/// idempotency: the operation and its canonical parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFingerprint([u8; 32]);

impl RequestFingerprint {
    /// Hashes an operation name and its canonical fields. Each field is
    /// length-prefixed, so that no two different field lists collide by
    /// concatenation.
    pub fn of(operation: &str, fields: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        for part in std::iter::once(operation).chain(fields.iter().copied()) {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        Self(hasher.finalize().into())
    }

    /// The digest bytes, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("9f1c-a").is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_separate_fields() {
        assert_ne!(
            RequestFingerprint::of("transfer", &["ab", "c"]),
            RequestFingerprint::of("transfer", &["a", "bc"])
        );
        assert_eq!(
            RequestFingerprint::of("deposit", &["x"]),
            RequestFingerprint::of("deposit", &["x"])
        );
    }
}
