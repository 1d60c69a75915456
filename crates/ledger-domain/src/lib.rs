//! The ledger's domain: identifiers, currencies, exact amounts and the rules a
//! transfer must satisfy. Nothing here does IO; the store and the HTTP layer
//! parse their inputs into these types first, so that past the boundary an
//! [`Amount`] is known to be positive and correctly scaled for its currency.
//!
//! Every rule checked here is enforced a second time by the database (see
//! `sql/`), so that a bug in one is caught by the other.

mod amount;
mod auth;
mod currency;
mod error;
mod idempotency;
mod ids;
pub mod journal;
mod metadata;
mod transfer;

pub use amount::{
    parse_decimal_text, Amount, DecimalTextError, MAX_AMOUNT, MAX_SIGNIFICANT_DIGITS,
};
pub use auth::{constant_time_eq, ApiKeySecret, Scope};
pub use currency::{Currency, CURRENCIES};
pub use error::DomainError;
pub use idempotency::{IdempotencyKey, RequestFingerprint};
pub use ids::{AccountId, BatchId, TransferId};
pub use metadata::Metadata;
pub use transfer::{
    check_amount, check_batch_size, check_overdraft_limit, check_request, decide, AccountKind,
    AccountState, Decision, DestinationState, Operation, SourceHead, MAX_BATCH_LEGS,
};

/// Exact decimal number used for every amount and balance. Never a float.
pub use rust_decimal::Decimal;
