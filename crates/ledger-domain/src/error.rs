use rust_decimal::Decimal;

use crate::{AccountId, Currency, TransferId};

/// Every way a ledger operation can be refused for a reason the client can
/// act on.
///
/// The rules of a write are paired: `AccountNotFound`, `AccountClosed`,
/// `AccountClosing`, `CurrencyMismatch`, `BadScale`, `NonPositiveAmount`,
/// `AmountTooLarge`, `SameAccount`, `InsufficientFunds`, `AccountExists` and
/// `UnknownCurrency` each have a named database counterpart (a constraint or
/// trigger refusal that `ledger_store::Constraint` maps back to the variant),
/// so that the rule holds even when a bug lets a request past the Rust
/// check. The other variants have none: they are about the request itself,
/// a read, or a decision the store makes from what it read. The table is in
/// docs/design.md, "Paired rules".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// No account has this id.
    #[error("account {0} does not exist")]
    AccountNotFound(AccountId),
    /// No transfer has this id.
    #[error("transfer {0} does not exist")]
    TransferNotFound(TransferId),
    /// No hold has this id.
    #[error("hold {0} does not exist")]
    HoldNotFound(TransferId),
    /// The hold was captured, voided or has expired.
    #[error("hold {0} is no longer pending (captured, voided or expired)")]
    HoldNotPending(TransferId),
    /// A capture of more than the hold reserves.
    #[error("the capture exceeds what hold {0} reserves")]
    CaptureExceedsHold(TransferId),
    /// Reversals of a transfer would move back more than it moved.
    #[error(
        "reversal exceeds what is left of the transfer{}",
        .remaining.map_or_else(String::new, |left| format!(" ({left} not yet reversed)"))
    )]
    ReversalExceedsTransfer {
        /// What may still be reversed (known when the store decided it).
        remaining: Option<Decimal>,
    },
    /// The transfer is not one a reversal can undo (a reversal itself).
    #[error("transfer {0} cannot be reversed (it is a reversal)")]
    NotReversible(TransferId),
    /// A line lower than what the account already uses (its debt plus its
    /// pending holds).
    #[error("account {account} uses more than the new overdraft line")]
    OverdraftInUse {
        /// The account.
        account: AccountId,
    },
    /// A negative overdraft line.
    #[error("overdraft_limit must not be negative")]
    InvalidOverdraftLimit,
    /// A hold's expiry in the past, or beyond the longest allowed timeout.
    #[error("{0}")]
    InvalidHoldExpiry(String),
    /// No API key has this id.
    #[error("API key {0} does not exist")]
    ApiKeyNotFound(uuid::Uuid),
    /// No batch has this id.
    #[error("batch {0} does not exist")]
    BatchNotFound(crate::BatchId),
    /// A batch with no legs, or more than [`crate::MAX_BATCH_LEGS`].
    #[error("a batch has 1 to {max} transfers; this one has {legs}")]
    BatchSize {
        /// How many legs it had.
        legs: usize,
        /// The most a batch may have.
        max: usize,
    },
    /// The source's balance does not cover the amount.
    #[error("account {account} has insufficient funds")]
    InsufficientFunds {
        /// The account that would go negative.
        account: AccountId,
    },
    /// Source and destination are the same account.
    #[error("source and destination must be different accounts")]
    SameAccount,
    /// Zero or negative amount.
    #[error("amount must be greater than zero")]
    NonPositiveAmount,
    /// More decimals than the currency's minor units.
    #[error("{currency} amounts have at most {max_decimals} decimals")]
    BadScale {
        /// The currency's code.
        currency: &'static str,
        /// Its minor units.
        max_decimals: u32,
    },
    /// The amount is above the ledger's ceiling (or a configured maximum).
    #[error("amount exceeds the maximum of {max}")]
    AmountTooLarge {
        /// The ceiling that was exceeded.
        max: Decimal,
    },
    /// An initial balance below zero.
    #[error("initial balance must not be negative")]
    NegativeInitialBalance,
    /// Not an active ISO 4217 code.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    /// The two accounts of a transfer differ in currency.
    #[error(
        "currency mismatch: the source holds {expected}, the destination {}",
        .found.map_or_else(|| "another currency".to_owned(), |found| found.to_string())
    )]
    CurrencyMismatch {
        /// The source's currency.
        expected: Currency,
        /// The destination's, when known (a refusal by the database names
        /// only the rule).
        found: Option<Currency>,
    },
    /// The account is closed and accepts no transfers, for good.
    #[error("account {0} is closed")]
    AccountClosed(AccountId),
    /// A close of the account is in progress: transfers are refused until it
    /// completes (then the account is closed) or fails (then it is open).
    /// Transient: retrying later is right.
    #[error("account {0} is being closed; retry later")]
    AccountClosing(AccountId),
    /// Closing requires a zero balance.
    #[error("account {0} has a non-zero balance")]
    AccountNotEmpty(AccountId),
    /// An account with this id exists already.
    #[error("account {0} already exists")]
    AccountExists(AccountId),
    /// The operation is not allowed on a system account (e.g. closing it, or
    /// choosing an id in the range reserved for them).
    #[error("{0} is a system account")]
    SystemAccount(AccountId),
    /// A journal digest or proof was asked for a time that is not final yet
    /// (transfers stamped before it may still commit).
    #[error("{at} is not final yet; the final horizon is {horizon}")]
    NotYetFinal {
        /// The time asked for.
        at: String,
        /// The current final horizon.
        horizon: String,
    },
    /// The idempotency key was used before with a different request.
    #[error("idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// Malformed idempotency key.
    #[error("idempotency key must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    /// Metadata that is not a JSON object or is too large.
    #[error(
        "metadata must be a JSON object of at most {max_bytes} bytes (numbers counted written \
         out in full, as they are stored: 1e6 counts as 1000000)"
    )]
    InvalidMetadata {
        /// The size limit.
        max_bytes: usize,
    },
}
