//! A retried write with the same idempotency key is applied once.

use futures::future::join_all;
use ledger_domain::{Currency, DomainError};
use ledger_store::{NewAccount, StoreError};

use ledger_testkit::{balance, dec, key, keyed_transfer, spawn_transfer, TestDatabase};

#[tokio::test]
async fn the_same_key_and_request_return_the_original_transfer_applied_once() {
    let (database, ledger, [source, destination]) =
        TestDatabase::with_accounts(["10.00", "0"]).await;
    let key = key("payment-42");

    let first = keyed_transfer(&ledger, source, destination, "3.00", &key)
        .await
        .expect("first");
    let after_first = database.snapshot().await;
    let second = keyed_transfer(&ledger, source, destination, "3.0", &key)
        .await
        .expect("replay");

    assert!(!first.replayed);
    assert!(second.replayed);
    assert_eq!(second.value, first.value);
    assert_eq!(database.snapshot().await, after_first);
    assert_eq!(balance(&ledger, destination).await, dec("3.00"));
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_refused() {
    let (database, ledger, [source, destination]) =
        TestDatabase::with_accounts(["10.00", "0"]).await;
    let key = key("payment-43");
    keyed_transfer(&ledger, source, destination, "3.00", &key)
        .await
        .expect("first");
    let before = database.snapshot().await;

    let different_amount = keyed_transfer(&ledger, source, destination, "4.00", &key).await;
    let different_operation = ledger
        .deposit(destination, dec("3.00"), None, Some(&key))
        .await;

    for result in [different_amount, different_operation] {
        assert!(matches!(
            result,
            Err(StoreError::Domain(DomainError::IdempotencyKeyReused))
        ));
    }
    assert_eq!(database.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_apply_once() {
    let (_database, ledger, [source, destination]) =
        TestDatabase::with_accounts(["100.00", "0"]).await;
    let key = key("retry-storm");

    let attempts =
        (0..16).map(|_| spawn_transfer(&ledger, source, destination, "7.00", Some(&key)));
    let mut ids = Vec::new();
    for result in join_all(attempts).await {
        match result.expect("task") {
            Ok(outcome) => ids.push(outcome.value.id),
            // A retry that finds the first still running is told so.
            Err(StoreError::IdempotencyInFlight) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "all successful attempts return the same transfer"
    );
    assert_eq!(balance(&ledger, destination).await, dec("7.00"));
}

#[tokio::test]
async fn opening_an_account_with_a_key_twice_opens_it_once() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let key = key("open-1");
    let request = || NewAccount {
        overdraft_limit: None,
        id: None,
        currency: Currency::parse("GBP").expect("GBP"),
        initial_balance: Some(dec("9.99")),
        metadata: None,
    };
    let first = ledger
        .open_account(request(), Some(&key))
        .await
        .expect("open");
    let after_first = database.snapshot().await;
    let again = ledger
        .open_account(request(), Some(&key))
        .await
        .expect("replay");

    assert!(again.replayed);
    assert_eq!(again.value.id, first.value.id);
    assert_eq!(database.snapshot().await, after_first);
}
