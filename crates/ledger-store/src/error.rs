use ledger_domain::{AccountId, Currency, DomainError, Operation, TransferId};
use tokio_postgres::error::SqlState;

/// Everything the store can fail with. A [`StoreError::Domain`] is the
/// client's to fix; the others are the service's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A ledger rule refused the operation.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Leg `leg` (from 0) of a batch broke a ledger rule; nothing of the
    /// batch was applied.
    #[error("transfer {leg} of the batch: {error}")]
    LegRefused {
        /// The first failing leg, in the batch's order.
        leg: usize,
        /// Why it failed.
        error: DomainError,
    },
    /// The same idempotency key is held by a request still in flight.
    #[error("a request with this idempotency key is still in flight")]
    IdempotencyInFlight,
    /// A pagination cursor that this store did not issue.
    #[error("invalid pagination cursor")]
    InvalidCursor,
    /// A transfer kept losing its sequence-number race past the retry limit.
    #[error("account {0} is too contended, retry later")]
    Contention(AccountId),
    /// Too many writes out of this account are queued in this process
    /// already (`StoreConfig::source_queue_max_legs`): refused at once rather
    /// than left to wait without bound.
    #[error("too many writes out of account {0} are waiting; retry later")]
    QueueFull(AccountId),
    /// The database cannot be reached, or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The store was configured wrongly.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// A bug or an unexpected database answer; never the client's doing.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl StoreError {
    /// The kind of failure, as a short stable name (a metrics label): the
    /// variant, with a rule's refusal (`Domain`, `LegRefused`) as `refused`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Domain(_) | Self::LegRefused { .. } => "refused",
            Self::IdempotencyInFlight => "idempotency_in_flight",
            Self::InvalidCursor => "invalid_cursor",
            Self::Contention(_) => "contention",
            Self::QueueFull(_) => "queue_full",
            Self::Unavailable(_) => "unavailable",
            Self::Config(_) => "config",
            Self::Internal(_) => "internal",
        }
    }

    pub(crate) fn from_pool(err: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match err {
            PoolError::Backend(err) => Self::from(err),
            PoolError::Timeout(kind) => {
                Self::Unavailable(format!("connection pool timeout ({kind:?})"))
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Says what the store was doing when the database failed, the way
/// `anyhow::Context` does: `query(…).await.context("read the heads")?`.
/// The failure keeps its kind (unavailable or internal); only the text of
/// the logged cause grows. Refusals by a rule are mapped before this, where
/// the accounts involved are known, and carry no context.
pub(crate) trait Context<T> {
    /// Prefixes the failure with what was being done.
    fn context(self, doing: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn context(self, doing: &'static str) -> Result<T, StoreError> {
        self.map_err(|err| match StoreError::from(err) {
            StoreError::Internal(cause) => StoreError::Internal(cause.context(doing)),
            StoreError::Unavailable(text) => StoreError::Unavailable(format!("{doing}: {text}")),
            other => other,
        })
    }
}

impl From<tokio_postgres::Error> for StoreError {
    /// Errors that no rule explains: lost connections and timeouts become
    /// `Unavailable`, anything else `Internal`. Rule violations are mapped by
    /// [`constraint_violation`] where the caller knows the accounts involved.
    fn from(err: tokio_postgres::Error) -> Self {
        if is_unavailable(&err) {
            return Self::Unavailable(err.to_string());
        }
        Self::Internal(anyhow::Error::new(err))
    }
}

fn is_unavailable(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let Some(db) = err.as_db_error() else {
        // No server answer at all: an IO error or a closed connection.
        return true;
    };
    let code = db.code();
    code.code().starts_with("08") // connection exception
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::QUERY_CANCELED // statement_timeout
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION // failed over to a standby
}

/// The accounts a write names, so that a violation can say which one failed.
pub(crate) struct WriteContext {
    pub source: AccountId,
    pub destination: AccountId,
    pub currency: Currency,
    /// What the write does (a line change's overdraft is `OverdraftInUse`).
    pub operation: Operation,
    /// The hold a capture settles, or the transfer a reversal undoes.
    pub link: Option<TransferId>,
}

/// Declares [`Constraint`]: one variant per database constraint (or trigger
/// refusal) name, and [`Constraint::ALL`], so that the list a test checks
/// cannot miss a name the store matches.
macro_rules! constraints {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+) => {
        /// Every constraint name the store matches, so that a refusal by the
        /// database becomes a domain error or a lost race (never read from
        /// the message text). Matching takes a `Constraint`, not a string:
        /// a new name has to be added here, and the store's test suite then
        /// fails until a plain-SQL write fires it (`tests/store/append_only.rs`).
        /// docs/design.md, "Paired rules", pairs each with its Rust rule.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Constraint {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Constraint {
            /// Every name the store maps.
            pub const ALL: &'static [Constraint] = &[$(Constraint::$variant,)+];

            /// The name as the database reports it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Constraint::$variant => $name,)+
                }
            }
        }
    };
}

constraints! {
    /// `accounts.account_id` taken: the account exists already.
    AccountsPkey = "accounts_pkey",
    /// An account in a currency `ledger.currencies` does not know.
    AccountsCurrencyCodeFkey = "accounts_currency_code_fkey",
    /// `(source, seq)` taken: another transfer out of the source won the
    /// sequence number (a lost race, retried).
    TransfersPkey = "transfers_pkey",
    /// Trigger: the source does not exist.
    TransfersSourceAccountIdFkey = "transfers_source_account_id_fkey",
    /// Trigger: the destination does not exist.
    TransfersDestinationAccountIdFkey = "transfers_destination_account_id_fkey",
    /// Trigger: the source is closed.
    TransfersSourceOpen = "transfers_source_open",
    /// Trigger: the destination is closed.
    TransfersDestinationOpen = "transfers_destination_open",
    /// Trigger: a close of the source is in progress.
    TransfersSourceNotClosing = "transfers_source_not_closing",
    /// Trigger: a close of the destination is in progress.
    TransfersDestinationNotClosing = "transfers_destination_not_closing",
    /// Trigger: the transfer's currency is not both accounts'.
    TransfersCurrencyMatch = "transfers_currency_match",
    /// Trigger: more decimals than the currency's minor units.
    TransfersAmountScale = "transfers_amount_scale",
    /// Check: the amount is not above zero.
    TransfersAmountPositive = "transfers_amount_positive",
    /// Check: the amount is above the ledger's ceiling.
    TransfersAmountCeiling = "transfers_amount_ceiling",
    /// Check: source and destination are one account.
    TransfersDistinctAccounts = "transfers_distinct_accounts",
    /// Check: a customer source would go below zero.
    TransfersNoOverdraft = "transfers_no_overdraft",
    /// Trigger: a batch's time is before the source's previous row (a lost
    /// race with a row that committed after the heads were read, retried).
    TransfersBatchTimeOrder = "transfers_batch_time_order",
    /// Check: a negative overdraft line.
    TransfersOverdraftLimitNonNegative = "transfers_overdraft_limit_non_negative",
    /// Check: a hold expiring no later than it is placed.
    TransfersHoldExpiresAfterPlacement = "transfers_hold_expires_after_placement",
    /// Trigger: a capture names no hold of its source and destination.
    TransfersHoldIdFkey = "transfers_hold_id_fkey",
    /// Trigger: a capture at or after its hold's expiry.
    TransfersHoldPending = "transfers_hold_pending",
    /// Trigger: a capture of more than its hold.
    TransfersCaptureWithinHold = "transfers_capture_within_hold",
    /// Trigger: a reversal names no transfer it can undo.
    TransfersReversesTransferIdFkey = "transfers_reverses_transfer_id_fkey",
    /// Trigger: reversals of a transfer beyond its amount.
    TransfersReversalWithinOriginal = "transfers_reversal_within_original",
    /// `hold_resolutions.hold_id` taken: the hold was captured, voided or
    /// expired already (the one winner).
    HoldResolutionsPkey = "hold_resolutions_pkey",
    /// Trigger: a resolution of a hold that does not exist.
    HoldResolutionsHoldIdFkey = "hold_resolutions_hold_id_fkey",
    /// Trigger: a void at or after the hold's expiry.
    HoldResolutionsHoldPending = "hold_resolutions_hold_pending",
    /// Check: an opening line below zero.
    AccountsOverdraftLimitNonNegative = "accounts_overdraft_limit_non_negative",
}

impl Constraint {
    /// The mapped constraint an error names, if any.
    pub fn of(err: &tokio_postgres::Error) -> Option<Self> {
        let name = err.as_db_error()?.constraint()?;
        Self::ALL
            .iter()
            .copied()
            .find(|constraint| constraint.name() == name)
    }
}

/// Maps a violated, *named* constraint to the domain rule it enforces. The
/// names are those in `sql/V1__ledger.sql`; the message text is never read.
pub(crate) fn constraint_violation(
    err: &tokio_postgres::Error,
    context: &WriteContext,
) -> Option<DomainError> {
    let error = match Constraint::of(err)? {
        Constraint::TransfersSourceAccountIdFkey => DomainError::AccountNotFound(context.source),
        Constraint::TransfersDestinationAccountIdFkey => {
            DomainError::AccountNotFound(context.destination)
        }
        Constraint::TransfersSourceOpen => DomainError::AccountClosed(context.source),
        Constraint::TransfersDestinationOpen => DomainError::AccountClosed(context.destination),
        Constraint::TransfersSourceNotClosing => DomainError::AccountClosing(context.source),
        Constraint::TransfersDestinationNotClosing => {
            DomainError::AccountClosing(context.destination)
        }
        Constraint::TransfersCurrencyMatch => DomainError::CurrencyMismatch {
            expected: context.currency,
            found: None,
        },
        Constraint::TransfersAmountScale => DomainError::BadScale {
            currency: context.currency.code(),
            max_decimals: context.currency.minor_units(),
        },
        Constraint::TransfersAmountPositive => DomainError::NonPositiveAmount,
        Constraint::TransfersAmountCeiling => DomainError::AmountTooLarge {
            max: ledger_domain::MAX_AMOUNT,
        },
        Constraint::TransfersDistinctAccounts => DomainError::SameAccount,
        Constraint::TransfersNoOverdraft if context.operation == Operation::OverdraftChange => {
            DomainError::OverdraftInUse {
                account: context.source,
            }
        }
        Constraint::TransfersNoOverdraft => DomainError::InsufficientFunds {
            account: context.source,
        },
        Constraint::TransfersOverdraftLimitNonNegative
        | Constraint::AccountsOverdraftLimitNonNegative => DomainError::InvalidOverdraftLimit,
        Constraint::TransfersHoldExpiresAfterPlacement => {
            DomainError::InvalidHoldExpiry("expires_at must be after the hold is placed".to_owned())
        }
        Constraint::TransfersHoldIdFkey | Constraint::HoldResolutionsHoldIdFkey => {
            DomainError::HoldNotFound(context.link?)
        }
        Constraint::TransfersHoldPending
        | Constraint::HoldResolutionsPkey
        | Constraint::HoldResolutionsHoldPending => DomainError::HoldNotPending(context.link?),
        Constraint::TransfersCaptureWithinHold => DomainError::CaptureExceedsHold(context.link?),
        Constraint::TransfersReversesTransferIdFkey => DomainError::TransferNotFound(context.link?),
        Constraint::TransfersReversalWithinOriginal => {
            DomainError::ReversalExceedsTransfer { remaining: None }
        }
        // Mapped where they can happen: a lost race (transfers_pkey,
        // transfers_batch_time_order) or an account insert.
        Constraint::AccountsPkey
        | Constraint::AccountsCurrencyCodeFkey
        | Constraint::TransfersPkey
        | Constraint::TransfersBatchTimeOrder => return None,
    };
    Some(error)
}

/// The SQLSTATE of a unique violation on the named constraint.
pub(crate) fn is_unique_violation(err: &tokio_postgres::Error, constraint: Constraint) -> bool {
    err.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint.name())
    })
}

/// Whether the named constraint was violated (any SQLSTATE).
pub(crate) fn violates(err: &tokio_postgres::Error, constraint: Constraint) -> bool {
    Constraint::of(err) == Some(constraint)
}
