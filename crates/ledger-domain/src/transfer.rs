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
    /// The amount, scaled to the currency.
    pub amount: Amount,
    /// The source's balance once the row is in.
    pub source_balance_after: Decimal,
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

/// The rules that need no ledger state: checked before any database round
/// trip, and again inside [`decide`].
pub fn check_request(
    operation: Operation,
    source: AccountId,
    destination: AccountId,
    amount: Decimal,
) -> Result<(), DomainError> {
    check_amount(amount)?;
    if source == destination {
        return Err(DomainError::SameAccount);
    }
    // Money enters only by a deposit and leaves only by a withdrawal, each
    // with its own endpoint and idempotency scope. The id range below
    // 0x1000 is reserved for system accounts (a CHECK in the schema).
    if operation == Operation::Transfer {
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
/// ledger, in the order a client would want to hear about them.
pub fn decide(
    operation: Operation,
    source: &SourceHead,
    destination: &DestinationState,
    amount: Decimal,
) -> Result<Decision, DomainError> {
    check_request(operation, source.account, destination.account, amount)?;
    let (source_kind, destination_kind) = match operation {
        Operation::Transfer => (AccountKind::Customer, AccountKind::Customer),
        Operation::Deposit => (AccountKind::System, AccountKind::Customer),
        Operation::Withdrawal => (AccountKind::Customer, AccountKind::System),
    };
    if source.kind != source_kind {
        return Err(DomainError::SystemAccount(source.account));
    }
    if destination.kind != destination_kind {
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
    let amount = Amount::new(amount, source.currency)?;
    let source_balance_after = source.balance - amount.value();
    if source.kind == AccountKind::Customer && source_balance_after < Decimal::ZERO {
        return Err(DomainError::InsufficientFunds {
            account: source.account,
        });
    }
    Ok(Decision {
        seq: source.next_seq,
        amount,
        source_balance_after,
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
        assert_eq!(decision.amount.value().to_string(), "2.50");
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
    fn account_states_are_read_from_the_database_words() {
        assert_eq!(AccountState::parse("open"), Some(AccountState::Open));
        assert_eq!(AccountState::parse("closing"), Some(AccountState::Closing));
        assert_eq!(AccountState::parse("closed"), Some(AccountState::Closed));
        assert_eq!(AccountState::parse("frozen"), None);
    }
}
