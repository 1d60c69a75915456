//! Every domain error, and the ledger unchanged after each.

use ledger_domain::{AccountId, Currency, DomainError, TransferId};
use ledger_store::{NewAccount, StoreError};

use ledger_testkit::{dec, key, keyed_transfer, open_in, usd, TestDatabase};

/// A request to open a USD account.
fn usd_account(id: Option<AccountId>, initial_balance: Option<&str>) -> NewAccount {
    NewAccount {
        overdraft_limit: None,
        id,
        currency: usd(),
        initial_balance: initial_balance.map(dec),
        metadata: None,
    }
}

fn domain(result: Result<impl std::fmt::Debug, StoreError>) -> DomainError {
    match result {
        Err(StoreError::Domain(error)) => error,
        other => panic!("expected a domain error, got {other:?}"),
    }
}

#[tokio::test]
async fn each_refused_operation_names_its_reason_and_changes_nothing() {
    let (database, ledger, [rich, poor, empty]) =
        TestDatabase::with_accounts(["100.00", "1.00", "0"]).await;
    let euro = open_in(&ledger, Currency::parse("EUR").expect("EUR"), "5.00").await;
    let missing = AccountId::generate();
    let key = key("key-1");
    keyed_transfer(&ledger, rich, poor, "1.00", &key)
        .await
        .expect("first use of the key");
    let before = database.snapshot().await;

    assert_eq!(
        domain(ledger.transfer(missing, rich, dec("1"), None, None).await),
        DomainError::AccountNotFound(missing),
        "unknown source"
    );
    assert_eq!(
        domain(ledger.transfer(rich, missing, dec("1"), None, None).await),
        DomainError::AccountNotFound(missing),
        "unknown destination"
    );
    assert_eq!(
        domain(ledger.deposit(missing, dec("1"), None, None).await),
        DomainError::AccountNotFound(missing),
        "deposit to an unknown account"
    );
    assert_eq!(
        domain(ledger.get_account(missing).await),
        DomainError::AccountNotFound(missing)
    );
    let unknown_transfer = TransferId::generate();
    assert_eq!(
        domain(ledger.get_transfer(unknown_transfer).await),
        DomainError::TransferNotFound(unknown_transfer)
    );
    assert_eq!(
        domain(ledger.transfer(poor, rich, dec("2.01"), None, None).await),
        DomainError::InsufficientFunds { account: poor },
        "more than the balance"
    );
    assert_eq!(
        domain(ledger.withdraw(empty, dec("0.01"), None, None).await),
        DomainError::InsufficientFunds { account: empty },
        "withdrawal from an empty account"
    );
    assert_eq!(
        domain(ledger.transfer(rich, rich, dec("1"), None, None).await),
        DomainError::SameAccount
    );
    for amount in ["0", "-1", "-0.00"] {
        assert_eq!(
            domain(ledger.transfer(rich, poor, dec(amount), None, None).await),
            DomainError::NonPositiveAmount,
            "amount {amount}"
        );
    }
    assert!(matches!(
        domain(ledger.transfer(rich, poor, dec("0.001"), None, None).await),
        DomainError::BadScale {
            currency: "USD",
            max_decimals: 2
        }
    ));
    assert!(matches!(
        domain(
            ledger
                .transfer(rich, poor, dec("1000000000000001"), None, None)
                .await
        ),
        DomainError::AmountTooLarge { .. }
    ));
    assert!(matches!(
        domain(ledger.transfer(rich, euro, dec("1"), None, None).await),
        DomainError::CurrencyMismatch { .. }
    ));
    assert_eq!(
        domain(ledger.close_account(rich, None).await),
        DomainError::AccountNotEmpty(rich)
    );
    assert_eq!(
        domain(
            ledger
                .open_account(usd_account(Some(rich), None), None)
                .await
        ),
        DomainError::AccountExists(rich)
    );
    assert_eq!(
        domain(
            ledger
                .open_account(usd_account(None, Some("-1")), None)
                .await
        ),
        DomainError::NegativeInitialBalance
    );
    assert!(matches!(
        domain(
            ledger
                .open_account(usd_account(None, Some("0.005")), None)
                .await
        ),
        DomainError::BadScale { .. }
    ));
    let system = AccountId::system(usd());
    assert_eq!(
        domain(ledger.transfer(system, rich, dec("1"), None, None).await),
        DomainError::SystemAccount(system),
        "the system account is not a transfer source"
    );
    assert_eq!(
        domain(ledger.close_account(system, None).await),
        DomainError::SystemAccount(system)
    );
    assert_eq!(
        domain(keyed_transfer(&ledger, rich, poor, "2.00", &key).await),
        DomainError::IdempotencyKeyReused,
        "same key, different amount"
    );

    assert_eq!(database.snapshot().await, before);
}

#[tokio::test]
async fn a_closed_account_accepts_no_transfers_in_either_direction() {
    let (database, ledger, [open_account, closed]) =
        TestDatabase::with_accounts(["10.00", "0"]).await;
    ledger.close_account(closed, None).await.expect("close");
    let before = database.snapshot().await;

    assert_eq!(
        domain(
            ledger
                .transfer(open_account, closed, dec("1"), None, None)
                .await
        ),
        DomainError::AccountClosed(closed)
    );
    assert_eq!(
        domain(ledger.deposit(closed, dec("1"), None, None).await),
        DomainError::AccountClosed(closed)
    );
    assert_eq!(
        domain(ledger.close_account(closed, None).await),
        DomainError::AccountClosed(closed),
        "closing twice"
    );
    assert_eq!(database.snapshot().await, before);
}
