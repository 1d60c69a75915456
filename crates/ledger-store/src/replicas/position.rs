//! A position in the primary's write-ahead log, as PostgreSQL writes it.

use std::fmt;
use std::str::FromStr;

/// A position in the primary's write-ahead log (an LSN), e.g. `0/3000060`.
/// Every write response carries one read after its commit; a replica that
/// has replayed that far sees the write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalPosition(pub(super) u64);

impl WalPosition {
    /// The position as one number (bytes since the start of the log).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl FromStr for WalPosition {
    type Err = String;

    /// Parses PostgreSQL's `pg_lsn` text: two hexadecimal halves, `X/Y`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a WAL position like 0/16B3748");
        let (high, low) = text.split_once('/').ok_or_else(bad)?;
        let half = |part: &str| {
            if part.is_empty() || part.len() > 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u32::from_str_radix(part, 16).map_err(|_| bad())
        };
        Ok(Self((u64::from(half(high)?) << 32) | u64::from(half(low)?)))
    }
}

impl fmt::Display for WalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_parse_and_print_as_postgresql_writes_them() {
        for text in ["0/0", "0/16B3748", "1/0", "FFFFFFFF/FFFFFFFF"] {
            let position: WalPosition = text.parse().expect(text);
            assert_eq!(position.to_string(), text);
        }
        let low: WalPosition = "0/FFFFFFFF".parse().expect("low");
        let high: WalPosition = "1/0".parse().expect("high");
        assert!(low < high, "the high half orders first");
    }

    #[test]
    fn malformed_wal_positions_are_refused() {
        for (text, why) in [
            ("", "empty"),
            ("16B3748", "no slash"),
            ("0/", "empty low half"),
            ("/1", "empty high half"),
            ("0/G", "not hexadecimal"),
            ("0/123456789", "more than 32 bits"),
            ("-1/0", "a sign"),
        ] {
            assert!(text.parse::<WalPosition>().is_err(), "{why}: {text:?}");
        }
    }
}
