//! API keys: what a key may do (its [`Scope`]) and what a key looks like
//! ([`ApiKeySecret`]). No IO: the store keeps keys, the HTTP layer asks.

use std::fmt;

use sha2::{Digest, Sha256};

/// What a key may do. `Read` < `Write` < `Treasury` < `Admin`, each granting
/// everything the ones before it grant; `Metrics` grants only scraping
/// `/metrics` (which `Admin` may do too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every GET.
    Read,
    /// Read, plus moving money between accounts: transfers, batches,
    /// opening accounts without money.
    Write,
    /// Write, plus what creates or removes money: deposits, withdrawals,
    /// openings with an initial balance.
    Treasury,
    /// Everything, including closing accounts and managing keys.
    Admin,
    /// Only `/metrics`.
    Metrics,
}

impl Scope {
    /// Every scope, in the order of the hierarchy (then `Metrics`).
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Write,
        Scope::Treasury,
        Scope::Admin,
        Scope::Metrics,
    ];

    /// Reads a scope's name (`read`, `write`, `treasury`, `admin`, `metrics`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Treasury => "treasury",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
        }
    }

    /// Whether a key with this scope may do what `needed` allows.
    pub fn grants(self, needed: Scope) -> bool {
        let rank = |scope: Scope| match scope {
            Scope::Read => Some(0),
            Scope::Write => Some(1),
            Scope::Treasury => Some(2),
            Scope::Admin => Some(3),
            Scope::Metrics => None,
        };
        match (self, needed) {
            (Scope::Admin, _) | (Scope::Metrics, Scope::Metrics) => true,
            (held, needed) => match (rank(held), rank(needed)) {
                (Some(held), Some(needed)) => held >= needed,
                _ => false,
            },
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key as the client holds it: `lk_` and 64 lower-case hex digits (256
/// random bits). Shown once, when made; the ledger keeps only its SHA-256.
/// Its `Debug` never shows the secret, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// What every key starts with, so that a leaked one is recognisable
    /// (secret scanners match on it).
    pub const MARKER: &'static str = "lk_";
    /// How many leading characters identify a key in listings and logs:
    /// the marker and 9 hex digits (36 bits: collisions are possible and
    /// harmless, the hash decides).
    pub const PREFIX_LEN: usize = 12;

    /// A new key from 32 random bytes.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Self(format!("{}{hex}", Self::MARKER))
    }

    /// Reads a key as a client sent it; `None` when it cannot be one.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(Self::MARKER)?;
        let well_formed = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self(text.to_owned()))
    }

    /// The identifying prefix, safe to show and log.
    pub fn prefix(&self) -> &str {
        &self.0[..Self::PREFIX_LEN]
    }

    /// What the ledger stores.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The secret itself, to show once to whoever made the key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", self.prefix())
    }
}

/// Compares two hashes in time that does not depend on where they differ,
/// so that response times cannot be used to guess a stored hash byte by
/// byte.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_grants_itself_and_the_ones_below_it() {
        use Scope::{Admin, Metrics, Read, Treasury, Write};
        for (held, needed, granted) in [
            (Read, Read, true),
            (Read, Write, false),
            (Write, Read, true),
            (Write, Treasury, false),
            (Treasury, Write, true),
            (Treasury, Admin, false),
            (Admin, Treasury, true),
            (Admin, Metrics, true),
            (Metrics, Metrics, true),
            (Metrics, Read, false),
            (Read, Metrics, false),
            (Treasury, Metrics, false),
        ] {
            assert_eq!(held.grants(needed), granted, "{held} for {needed}");
        }
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("root"), None);
    }

    #[test]
    fn a_key_is_the_marker_and_64_hex_digits_and_never_debug_prints_its_secret() {
        let key = ApiKeySecret::from_random([0xab; 32]);
        assert_eq!(key.expose().len(), 67);
        assert_eq!(ApiKeySecret::parse(key.expose()), Some(key.clone()));
        assert_eq!(key.prefix(), "lk_ababababa");
        assert!(!format!("{key:?}").contains(&key.expose()[12..]));
        for bad in [
            "",
            "lk_",
            "lk_ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB",
            "xx_abababababababababababababababababababababababababababababababab",
            "lk_abababababababababababababababababababababababababababababababa",
        ] {
            assert_eq!(ApiKeySecret::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_compare_equal_only_when_every_byte_is() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}
