use rust_decimal::Decimal;

use crate::{AccountId, Amount, DomainError};

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

/// A transfer that has passed every check that needs no ledger state.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferRequest {
    source: AccountId,
    destination: AccountId,
    amount: Amount,
}

impl TransferRequest {
    /// Refuses a transfer from an account to itself.
    pub fn new(
        source: AccountId,
        destination: AccountId,
        amount: Amount,
    ) -> Result<Self, DomainError> {
        if source == destination {
            return Err(DomainError::SameAccount);
        }
        Ok(Self {
            source,
            destination,
            amount,
        })
    }

    /// The account money leaves.
    pub fn source(&self) -> AccountId {
        self.source
    }

    /// The account money arrives in.
    pub fn destination(&self) -> AccountId {
        self.destination
    }

    /// How much moves.
    pub fn amount(&self) -> Amount {
        self.amount
    }
}

/// The overdraft rule: a customer account's balance must cover the amount.
/// The database enforces the same rule (`transfers_no_overdraft`).
pub fn check_funds(
    account: AccountId,
    kind: AccountKind,
    balance: Decimal,
    amount: &Amount,
) -> Result<(), DomainError> {
    match kind {
        AccountKind::System => Ok(()),
        AccountKind::Customer if balance >= amount.value() => Ok(()),
        AccountKind::Customer => Err(DomainError::InsufficientFunds { account }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn amount(value: i64) -> Amount {
        Amount::new(Decimal::from(value), Currency::parse("EUR").expect("EUR")).expect("valid")
    }

    #[test]
    fn a_transfer_to_the_same_account_is_refused() {
        let a = AccountId::generate();
        assert_eq!(
            TransferRequest::new(a, a, amount(1)),
            Err(DomainError::SameAccount)
        );
    }

    #[test]
    fn customers_cannot_overdraw_but_the_system_account_can() {
        let a = AccountId::generate();
        let ten = Decimal::from(10);
        assert!(check_funds(a, AccountKind::Customer, ten, &amount(10)).is_ok());
        assert_eq!(
            check_funds(a, AccountKind::Customer, ten, &amount(11)),
            Err(DomainError::InsufficientFunds { account: a })
        );
        assert!(check_funds(a, AccountKind::System, -ten, &amount(11)).is_ok());
    }
}
