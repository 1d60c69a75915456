//! The one parser for timestamps in query strings (`at`, `from`, `to`).
//!
//! Every handler takes a [`Timestamp`], never a raw `DateTime`, so the rules
//! live here once:
//! - RFC 3339 only: a four-digit year (0000–9999) and an explicit offset.
//!   chrono's own `FromStr` also takes `+10000-…` and `-262143-…`, which no
//!   RFC 3339 client sends and which lie partly outside PostgreSQL's range.
//! - Truncated to whole microseconds, the precision the ledger stores. Rust
//!   compares nanoseconds and SQL microseconds: an untruncated `T + 500ns`
//!   made a proof's Rust check include a row that its SQL left out. Rounding
//!   up would pull in rows of the next microsecond, so it truncates; the
//!   response echoes the truncated value.

use chrono::{DateTime, SubsecRound, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A point in time from a query parameter: RFC 3339, whole microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Parses RFC 3339 text (`2025-01-31T23:59:59.123456Z`, any offset) and
    /// truncates it to microseconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "{text:?} is not an RFC 3339 timestamp with a year from 0000 to 9999 \
                 (e.g. 2025-01-31T23:59:59Z)"
            )
        };
        // RFC 3339's year is exactly four digits; chrono's parser is looser
        // about signs and lengths, so the shape is checked first.
        let year = text.get(..4).ok_or_else(expected)?;
        if !year.bytes().all(|b| b.is_ascii_digit()) || text.as_bytes().get(4) != Some(&b'-') {
            return Err(expected());
        }
        let time = DateTime::parse_from_rfc3339(text).map_err(|_| expected())?;
        // Years 0000–9999 (even `0000-01-01T00:00:00+01:00`, year -1 in UTC)
        // lie well inside PostgreSQL's range (4713 BC to 294276 AD), so no
        // query can fail on them.
        Ok(Self(time.with_timezone(&Utc).trunc_subsecs(6)))
    }

    /// The instant, in whole microseconds.
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(D::Error::custom)
    }
}

/// `Option<Timestamp>` to what the store takes.
pub fn instant(timestamp: Option<Timestamp>) -> Option<DateTime<Utc>> {
    timestamp.map(Timestamp::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_are_read_and_truncated_to_microseconds() {
        let cases = [
            ("2025-01-31T23:59:59Z", "2025-01-31T23:59:59Z"),
            (
                "2025-01-31T23:59:59.1234565Z",
                "2025-01-31T23:59:59.123456Z",
            ),
            (
                "2025-01-31T23:59:59.999999999Z",
                "2025-01-31T23:59:59.999999Z",
            ),
            ("2025-02-01T01:00:00+01:00", "2025-02-01T00:00:00Z"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ];
        for (text, expected) in cases {
            let parsed = Timestamp::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                parsed
                    .get()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn timestamps_that_are_not_rfc3339_are_refused() {
        let cases = [
            ("+10000-01-01T00:00:00Z", "a five-digit year"),
            ("-262143-01-01T00:00:00Z", "a negative year"),
            ("-4714-11-24T00:00:00Z", "before PostgreSQL's first day"),
            ("+2025-01-01T00:00:00Z", "a signed four-digit year"),
            ("2025-01-01", "a date without a time"),
            ("2025-01-01T00:00:00", "no offset"),
            ("yesterday", "not a timestamp"),
            ("", "empty"),
            ("2025-13-01T00:00:00Z", "month 13"),
        ];
        for (text, why) in cases {
            assert!(Timestamp::parse(text).is_err(), "{why}: {text}");
        }
    }
}
