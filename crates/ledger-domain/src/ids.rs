use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Currency;

/// Declares an id: a UUID newtype, made from and shown as its UUID, with a
/// new time-ordered value from `generate`.
macro_rules! uuid_id {
    ($(#[doc = $doc:tt])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7), which keeps b-tree inserts
            /// local.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id! {
    /// Identifies an account. Clients may choose it; otherwise it is a UUIDv7.
    AccountId
}

uuid_id! {
    /// Identifies a transfer. Always chosen by the ledger (UUIDv7).
    TransferId
}

uuid_id! {
    /// Identifies an atomic batch of transfers. Always chosen by the ledger
    /// (UUIDv7).
    BatchId
}

impl AccountId {
    /// The system account of a currency: the one account through which money
    /// enters and leaves the ledger. Its id is derived from the ISO 4217
    /// numeric code (`…-000000000840` for USD) so that anyone can name it
    /// without a lookup.
    pub fn system(currency: Currency) -> Self {
        // Read the decimal digits as hex digits, so the id shows the code as is.
        let digits = currency.numeric_code().to_string();
        let value = u128::from_str_radix(&digits, 16).unwrap_or_default();
        Self(Uuid::from_u128(value))
    }

    /// Whether this id is in the range reserved for system accounts.
    pub fn is_reserved_for_system(&self) -> bool {
        self.0.as_u128() < 0x1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_account_id_is_derived_from_the_numeric_currency_code() {
        let usd = Currency::parse("USD").expect("USD is a currency");
        assert_eq!(
            AccountId::system(usd).to_string(),
            "00000000-0000-0000-0000-000000000840"
        );
        assert!(AccountId::system(usd).is_reserved_for_system());
        assert!(!AccountId::generate().is_reserved_for_system());
    }
}
