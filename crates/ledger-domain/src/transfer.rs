//! The transfer rules, decided without IO: the store reads the accounts'
//! state (a *head*), asks [`decide`], and inserts what it answers. The
//! database checks every rule again in its insert trigger, by constraint
//! name, so that a bug on one side is caught by the other.

use rust_decimal::Decimal;

use crate::{AccountId, Amount, Currency, DomainError, MAX_AMOUNT};

/// Whether an account belongs to a client or is the system account through
/// which money enters and leaves the ledger. Only a system account may have a
/// negative balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountKind {
    /// A client's account: its balance never goes below zero.
    Customer,
    /// The one account per currency that deposits come from and withdrawals
    /// go to. Its balance is minus the money held by all customers.
    System,
}

/// Where an account stands with respect to closing (`ledger.close_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountState {
    /// Takes transfers.
    Open,
    /// A close is in progress: refused for now, retryable.
    Closing,
    /// Closed for good.
    Closed,
}

impl AccountState {
    /// Reads `ledger.close_state`'s answer.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "closing" => Some(Self::Closing),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// What a write does, which decides where a system account may stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Between two customer accounts.
    Transfer,
    /// From the currency's system account into a customer account.
    Deposit,
    /// From a customer account to the currency's system account.
    Withdrawal,
    /// Reserves the amount out of a customer account for another: nothing
    /// moves, the source's available balance drops.
    Hold,
    /// Settles (part of) a hold of `held`: the money moves, the hold's
    /// reservation is released.
    Capture {
        /// The hold.
        hold: crate::TransferId,
        /// What the hold reserves.
        held: Decimal,
    },
    /// Moves money back from a transfer's destination to its source, at most
    /// `remaining` (what is not reversed yet). Either end may be a system
    /// account (a reversed deposit or withdrawal).
    Reversal {
        /// What may still be reversed.
        remaining: Decimal,
    },
    /// Sets the source's overdraft line to the amount (which may be zero).
    OverdraftChange,
}

impl Operation {
    /// Whether the write reads the source's available balance at all: a
    /// capture spends its own reservation, a line change is judged by
    /// [`DomainError::OverdraftInUse`].
    fn spends_available(self) -> bool {
        matches!(
            self,
            Self::Transfer | Self::Withdrawal | Self::Hold | Self::Reversal { .. }
        )
    }
}

/// The source of a write as the ledger stands: what its next row must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceHead {
    /// The account.
    pub account: AccountId,
    /// Customer or system.
    pub kind: AccountKind,
    /// Its currency.
    pub currency: Currency,
    /// Open, closing or closed.
    pub state: AccountState,
    /// The sequence number its next outgoing row takes.
    pub next_seq: i64,
    /// Its balance now. Incoming transfers only ever raise it, so a head
    /// read earlier is a safe lower bound while `next_seq` is unchanged.
    pub balance: Decimal,
    /// Its pending holds now. They only ever fall without a row out of the
    /// source (a void, an expiry), so a head read earlier is a safe upper
    /// bound while `next_seq` is unchanged.
    pub held: Decimal,
    /// Its overdraft line (0 for none): how far below zero its balance may
    /// go. Changed only by a row out of it.
    pub overdraft_limit: Decimal,
}

impl SourceHead {
    /// What the account can still spend: balance − held + line.
    pub fn available(&self) -> Decimal {
        self.balance - self.held + self.overdraft_limit
    }
}

/// The destination of a write as the ledger stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationState {
    /// The account.
    pub account: AccountId,
    /// Customer or system.
    pub kind: AccountKind,
    /// Its currency.
    pub currency: Currency,
    /// Open, closing or closed.
    pub state: AccountState,
}

/// What [`decide`] allows: the row to insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The source's sequence number for the row.
    pub seq: i64,
    /// The row's amount, scaled to the currency: what moves (zero for a hold
    /// or a line change, which move nothing).
    pub amount: Decimal,
    /// A hold's reservation, scaled.
    pub held_amount: Option<Decimal>,
    /// The source's balance once the row is in.
    pub source_balance_after: Decimal,
    /// The source's pending holds once the row is in.
    pub held_after: Decimal,
    /// The source's line once the row is in.
    pub overdraft_limit_after: Decimal,
}

/// The amount rules that need no currency: positive, at most [`MAX_AMOUNT`]
/// (the scale is checked against the currency by [`Amount::new`]).
pub fn check_amount(amount: Decimal) -> Result<(), DomainError> {
    if amount <= Decimal::ZERO {
        return Err(DomainError::NonPositiveAmount);
    }
    if amount > MAX_AMOUNT {
        return Err(DomainError::AmountTooLarge { max: MAX_AMOUNT });
    }
    Ok(())
}

/// An overdraft line: zero or more, at most [`MAX_AMOUNT`].
pub fn check_overdraft_limit(limit: Decimal) -> Result<(), DomainError> {
    if limit < Decimal::ZERO {
        return Err(DomainError::InvalidOverdraftLimit);
    }
    if limit > MAX_AMOUNT {
        return Err(DomainError::AmountTooLarge { max: MAX_AMOUNT });
    }
    Ok(())
}

/// The rules that need no ledger state: checked before any database round
/// trip, and again inside [`decide`].
pub fn check_request(
    operation: Operation,
    source: AccountId,
    destination: AccountId,
    amount: Decimal,
) -> Result<(), DomainError> {
    if operation == Operation::OverdraftChange {
        check_overdraft_limit(amount)?;
    } else {
        check_amount(amount)?;
    }
    if source == destination {
        return Err(DomainError::SameAccount);
    }
    // Money enters only by a deposit and leaves only by a withdrawal, each
    // with its own endpoint and idempotency scope. The id range below
    // 0x1000 is reserved for system accounts (a CHECK in the schema).
    if matches!(
        operation,
        Operation::Transfer | Operation::Hold | Operation::Capture { .. }
    ) {
        for account in [source, destination] {
            if account.is_reserved_for_system() {
                return Err(DomainError::SystemAccount(account));
            }
        }
    }
    Ok(())
}

/// The most transfers one batch may carry. A batch is one transaction and
/// one multi-row insert; the bound keeps its time (and the time other writes
/// out of its accounts wait for it) in the order of a second, and is what a
/// body of 8,189 legs without metadata (about 1 MB) holds.
pub const MAX_BATCH_LEGS: usize = 8_189;

/// A batch has 1 to [`MAX_BATCH_LEGS`] legs.
pub fn check_batch_size(legs: usize) -> Result<(), DomainError> {
    if legs == 0 || legs > MAX_BATCH_LEGS {
        return Err(DomainError::BatchSize {
            legs,
            max: MAX_BATCH_LEGS,
        });
    }
    Ok(())
}

/// Decides one write against the heads of its accounts: every rule of the
/// ledger, in the order a client would want to hear about them. `amount` is
/// what moves (or is held; for a line change, the new line).
pub fn decide(
    operation: Operation,
    source: &SourceHead,
    destination: &DestinationState,
    amount: Decimal,
) -> Result<Decision, DomainError> {
    check_request(operation, source.account, destination.account, amount)?;
    use AccountKind::{Customer, System};
    // Which end may be which kind; the first end that may not is named.
    let (source_allowed, destination_allowed) = match operation {
        Operation::Transfer | Operation::Hold | Operation::Capture { .. } => {
            (source.kind == Customer, destination.kind == Customer)
        }
        Operation::Deposit => (source.kind == System, destination.kind == Customer),
        // A line is granted by the currency's system account.
        Operation::Withdrawal | Operation::OverdraftChange => {
            (source.kind == Customer, destination.kind == System)
        }
        // Back along any transfer, deposit or withdrawal.
        Operation::Reversal { .. } => (
            true,
            source.kind == Customer || destination.kind == Customer,
        ),
    };
    if !source_allowed {
        return Err(DomainError::SystemAccount(source.account));
    }
    if !destination_allowed {
        return Err(DomainError::SystemAccount(destination.account));
    }
    for (account, state) in [
        (source.account, source.state),
        (destination.account, destination.state),
    ] {
        match state {
            AccountState::Open => {}
            AccountState::Closing => return Err(DomainError::AccountClosing(account)),
            AccountState::Closed => return Err(DomainError::AccountClosed(account)),
        }
    }
    if destination.currency != source.currency {
        return Err(DomainError::CurrencyMismatch {
            expected: source.currency,
            found: Some(destination.currency),
        });
    }
    if operation == Operation::OverdraftChange {
        let line = Amount::scale_non_negative(amount, source.currency)?;
        if source.balance - source.held + line < Decimal::ZERO {
            return Err(DomainError::OverdraftInUse {
                account: source.account,
            });
        }
        return Ok(Decision {
            seq: source.next_seq,
            amount: Decimal::ZERO,
            held_amount: None,
            source_balance_after: source.balance,
            held_after: source.held,
            overdraft_limit_after: line,
        });
    }
    let scaled = Amount::new(amount, source.currency)?;
    let value = scaled.value();
    let (moved, held_after) = match operation {
        Operation::Hold => (Decimal::ZERO, source.held + value),
        Operation::Capture { hold, held } => {
            if value > held {
                return Err(DomainError::CaptureExceedsHold(hold));
            }
            (value, (source.held - held).max(Decimal::ZERO))
        }
        Operation::Reversal { remaining } => {
            if value > remaining {
                return Err(DomainError::ReversalExceedsTransfer {
                    remaining: Some(remaining),
                });
            }
            (value, source.held)
        }
        _ => (value, source.held),
    };
    let source_balance_after = source.balance - moved;
    if source.kind == Customer
        && operation.spends_available()
        && source_balance_after - held_after + source.overdraft_limit < Decimal::ZERO
    {
        return Err(DomainError::InsufficientFunds {
            account: source.account,
        });
    }
    Ok(Decision {
        seq: source.next_seq,
        amount: moved,
        held_amount: (operation == Operation::Hold).then_some(value),
        source_balance_after,
        held_after,
        overdraft_limit_after: source.overdraft_limit,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).expect("decimal")
    }

    fn currency(code: &str) -> Currency {
        Currency::parse(code).expect("currency")
    }

    fn customer(balance: &str) -> SourceHead {
        SourceHead {
            account: AccountId::generate(),
            kind: AccountKind::Customer,
            currency: currency("USD"),
            state: AccountState::Open,
            next_seq: 7,
            balance: dec(balance),
            held: Decimal::ZERO,
            overdraft_limit: Decimal::ZERO,
        }
    }

    fn system(currency_code: &str) -> SourceHead {
        let currency = currency(currency_code);
        SourceHead {
            account: AccountId::system(currency),
            kind: AccountKind::System,
            currency,
            state: AccountState::Open,
            next_seq: 0,
            balance: dec("-100"),
            held: Decimal::ZERO,
            overdraft_limit: Decimal::ZERO,
        }
    }

    fn receiving(head: &SourceHead) -> DestinationState {
        DestinationState {
            account: head.account,
            kind: head.kind,
            currency: head.currency,
            state: head.state,
        }
    }

    #[test]
    fn a_covered_transfer_takes_the_next_sequence_number_and_lowers_the_balance() {
        let source = customer("10.00");
        let destination = receiving(&customer("0"));
        let decision =
            decide(Operation::Transfer, &source, &destination, dec("2.5")).expect("allowed");
        assert_eq!(decision.seq, 7);
        assert_eq!(decision.amount.to_string(), "2.50");
        assert_eq!(decision.source_balance_after, dec("7.50"));
    }

    #[test]
    fn the_system_account_may_go_negative_on_a_deposit() {
        let source = system("USD");
        let destination = receiving(&customer("0"));
        let decision =
            decide(Operation::Deposit, &source, &destination, dec("50")).expect("allowed");
        assert_eq!(decision.source_balance_after, dec("-150"));
    }

    #[test]
    fn every_rule_refuses_with_its_own_error() {
        let rich = customer("100");
        let other = customer("0");
        let usd_system = system("USD");
        let eur = SourceHead {
            currency: currency("EUR"),
            ..customer("0")
        };
        let closed = SourceHead {
            state: AccountState::Closed,
            ..customer("0")
        };
        let closing = SourceHead {
            state: AccountState::Closing,
            ..customer("0")
        };
        let jpy_rich = SourceHead {
            currency: currency("JPY"),
            ..customer("100")
        };
        let jpy_other = SourceHead {
            currency: currency("JPY"),
            ..customer("0")
        };
        // (operation, source, destination, amount, expected error, why)
        let cases = [
            (
                Operation::Transfer,
                rich,
                other,
                "0",
                DomainError::NonPositiveAmount,
                "zero",
            ),
            (
                Operation::Transfer,
                rich,
                other,
                "-1",
                DomainError::NonPositiveAmount,
                "negative",
            ),
            (
                Operation::Transfer,
                rich,
                other,
                "1000000000000000.01",
                DomainError::AmountTooLarge { max: MAX_AMOUNT },
                "above 10^15",
            ),
            (
                Operation::Transfer,
                rich,
                rich,
                "1",
                DomainError::SameAccount,
                "to itself",
            ),
            (
                Operation::Transfer,
                usd_system,
                other,
                "1",
                DomainError::SystemAccount(usd_system.account),
                "a transfer out of the system account is a deposit",
            ),
            (
                Operation::Transfer,
                rich,
                usd_system,
                "1",
                DomainError::SystemAccount(usd_system.account),
                "a transfer into the system account is a withdrawal",
            ),
            (
                Operation::Deposit,
                rich,
                other,
                "1",
                DomainError::SystemAccount(rich.account),
                "a deposit comes from the system account",
            ),
            (
                Operation::Withdrawal,
                rich,
                other,
                "1",
                DomainError::SystemAccount(other.account),
                "a withdrawal goes to the system account",
            ),
            (
                Operation::Transfer,
                closed,
                other,
                "1",
                DomainError::AccountClosed(closed.account),
                "closed source",
            ),
            (
                Operation::Transfer,
                rich,
                closed,
                "1",
                DomainError::AccountClosed(closed.account),
                "closed destination",
            ),
            (
                Operation::Transfer,
                rich,
                closing,
                "1",
                DomainError::AccountClosing(closing.account),
                "a close in progress is transient",
            ),
            (
                Operation::Transfer,
                rich,
                eur,
                "1",
                DomainError::CurrencyMismatch {
                    expected: Currency::parse("USD").expect("USD"),
                    found: Currency::parse("EUR").ok(),
                },
                "currencies differ",
            ),
            (
                Operation::Transfer,
                rich,
                other,
                "0.001",
                DomainError::BadScale {
                    currency: "USD",
                    max_decimals: 2,
                },
                "three decimals in USD",
            ),
            (
                Operation::Transfer,
                jpy_rich,
                jpy_other,
                "1.5",
                DomainError::BadScale {
                    currency: "JPY",
                    max_decimals: 0,
                },
                "decimals in JPY",
            ),
            (
                Operation::Transfer,
                rich,
                other,
                "100.01",
                DomainError::InsufficientFunds {
                    account: rich.account,
                },
                "one cent more than the balance",
            ),
        ];
        for (operation, source, destination, amount, expected, why) in cases {
            assert_eq!(
                decide(operation, &source, &receiving(&destination), dec(amount)),
                Err(expected),
                "{why}"
            );
        }
    }

    #[test]
    fn the_whole_balance_may_be_spent_and_trailing_zeros_do_not_count_as_decimals() {
        let source = customer("100");
        let destination = receiving(&customer("0"));
        let decision = decide(Operation::Transfer, &source, &destination, dec("100.000"))
            .expect("exactly the balance");
        assert_eq!(decision.source_balance_after, Decimal::ZERO);
    }

    #[test]
    fn holds_lines_captures_and_reversals_are_judged_by_the_available_balance() {
        // balance 100, holds 30, line 20: available 90.
        let source = SourceHead {
            held: dec("30"),
            overdraft_limit: dec("20"),
            ..customer("100")
        };
        let destination = receiving(&customer("0"));
        let system_end = receiving(&system("USD"));

        let hold = decide(Operation::Hold, &source, &destination, dec("90")).expect("covered");
        assert_eq!(
            (hold.amount, hold.held_amount, hold.held_after),
            (Decimal::ZERO, Some(dec("90.00")), dec("120.00")),
            "a hold moves nothing and reserves its amount"
        );
        assert_eq!(hold.source_balance_after, dec("100"));
        assert_eq!(
            decide(Operation::Hold, &source, &destination, dec("90.01")),
            Err(DomainError::InsufficientFunds {
                account: source.account
            })
        );
        let spend = decide(Operation::Transfer, &source, &destination, dec("90")).expect("line");
        assert_eq!(spend.source_balance_after, dec("10.00"));
        assert!(decide(Operation::Transfer, &source, &destination, dec("90.01")).is_err());

        // A capture spends its own reservation, even with nothing else left.
        let spent = SourceHead {
            balance: dec("-20"),
            held: dec("30"),
            overdraft_limit: dec("50"),
            ..source
        };
        assert_eq!(spent.available(), Decimal::ZERO);
        let hold_id = crate::TransferId::generate();
        let capture = decide(
            Operation::Capture {
                hold: hold_id,
                held: dec("30"),
            },
            &spent,
            &destination,
            dec("25"),
        )
        .expect("its own money");
        assert_eq!(
            (capture.source_balance_after, capture.held_after),
            (dec("-45.00"), Decimal::ZERO)
        );
        assert_eq!(
            decide(
                Operation::Capture {
                    hold: hold_id,
                    held: dec("30"),
                },
                &spent,
                &destination,
                dec("30.01")
            ),
            Err(DomainError::CaptureExceedsHold(hold_id))
        );

        assert_eq!(
            decide(
                Operation::Reversal {
                    remaining: dec("5")
                },
                &source,
                &destination,
                dec("5.01")
            ),
            Err(DomainError::ReversalExceedsTransfer {
                remaining: Some(dec("5"))
            })
        );
        // A reversed deposit goes back to the system account.
        assert!(decide(
            Operation::Reversal {
                remaining: dec("5")
            },
            &source,
            &system_end,
            dec("5")
        )
        .is_ok());

        // Lines: down to what is in use (debt + holds), never below.
        let owing = SourceHead {
            balance: dec("-10"),
            held: dec("5"),
            overdraft_limit: dec("50"),
            ..customer("0")
        };
        let lowered = decide(Operation::OverdraftChange, &owing, &system_end, dec("15"))
            .expect("exactly what is used");
        assert_eq!(lowered.overdraft_limit_after, dec("15.00"));
        assert_eq!(lowered.amount, Decimal::ZERO);
        assert_eq!(
            decide(
                Operation::OverdraftChange,
                &owing,
                &system_end,
                dec("14.99")
            ),
            Err(DomainError::OverdraftInUse {
                account: owing.account
            })
        );
        assert_eq!(
            decide(Operation::OverdraftChange, &owing, &system_end, dec("-1")),
            Err(DomainError::InvalidOverdraftLimit)
        );
        assert!(decide(
            Operation::OverdraftChange,
            &customer("0"),
            &system_end,
            dec("0")
        )
        .is_ok());
        assert_eq!(
            decide(Operation::Hold, &source, &system_end, dec("1")),
            Err(DomainError::SystemAccount(system_end.account)),
            "holds are between customer accounts"
        );
    }

    #[test]
    fn account_states_are_read_from_the_database_words() {
        assert_eq!(AccountState::parse("open"), Some(AccountState::Open));
        assert_eq!(AccountState::parse("closing"), Some(AccountState::Closing));
        assert_eq!(AccountState::parse("closed"), Some(AccountState::Closed));
        assert_eq!(AccountState::parse("frozen"), None);
    }
}
