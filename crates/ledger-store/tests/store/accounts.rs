//! Opening, listing and closing accounts.

use std::time::Duration;

use futures::future::join_all;
use ledger_domain::{AccountId, AccountKind, DomainError, Metadata};
use ledger_store::{NewAccount, StoreError};
use serde_json::json;

use ledger_testkit::{assert_invariants, balance, dec, open, usd, TestDatabase};

#[tokio::test]
async fn an_account_opens_with_its_initial_balance_from_the_system_account() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let id = AccountId::generate();
    let metadata = Metadata::parse(json!({"owner": "alice"})).expect("metadata");
    let account = ledger
        .open_account(
            NewAccount {
                overdraft_limit: None,
                id: Some(id),
                currency: usd(),
                initial_balance: Some(dec("250.00")),
                metadata: Some(metadata),
            },
            None,
        )
        .await
        .expect("open")
        .value;

    assert_eq!(account.id, id);
    assert_eq!(account.balance, dec("250.00"));
    assert_eq!(account.kind, AccountKind::Customer);
    assert_eq!(account.metadata, Some(json!({"owner": "alice"})));
    let system = ledger
        .get_account(AccountId::system(usd()))
        .await
        .expect("system account");
    assert_eq!(system.kind, AccountKind::System);
    assert_eq!(system.balance, dec("-250.00"));
    assert_invariants(&ledger).await;
}

#[tokio::test]
async fn accounts_are_listed_page_by_page_without_repeats() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let mut opened = Vec::new();
    for _ in 0..7 {
        opened.push(open(&ledger, "1.00").await);
    }
    opened.push(AccountId::system(usd()));
    opened.sort();

    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = ledger
            .list_accounts(cursor.as_deref(), 3)
            .await
            .expect("page");
        assert!(page.items.len() <= 3);
        listed.extend(page.items.iter().map(|account| account.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, opened);
    assert!(matches!(
        ledger.list_accounts(Some("not-a-cursor"), 3).await,
        Err(StoreError::InvalidCursor)
    ));
}

#[tokio::test]
async fn an_account_closes_only_at_a_zero_balance() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let account = open(&ledger, "5.00").await;
    assert!(matches!(
        ledger.close_account(account, None).await,
        Err(StoreError::Domain(DomainError::AccountNotEmpty(_)))
    ));

    ledger
        .withdraw(account, dec("5.00"), None, None)
        .await
        .expect("withdraw everything");
    let closed = ledger
        .close_account(account, None)
        .await
        .expect("close")
        .value;

    assert!(closed.closed_at.is_some());
    assert_eq!(closed.balance, dec("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_close_racing_with_deposits_never_leaves_money_in_a_closed_account() {
    for _round in 0..5 {
        let (database, ledger) = TestDatabase::with_ledger().await;
        let account = open(&ledger, "0").await;

        let deposits = (0..20).map(|_| {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.deposit(account, dec("1.00"), None, None).await })
        });
        let closer = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                ledger.close_account(account, None).await
            })
        };
        let deposited = join_all(deposits)
            .await
            .into_iter()
            .filter(|result| matches!(result, Ok(Ok(_))))
            .count();
        let close = closer.await.expect("task");

        let final_balance = balance(&ledger, account).await;
        assert_eq!(
            final_balance,
            dec("1.00") * ledger_domain::Decimal::from(deposited)
        );
        let account_now = ledger.get_account(account).await.expect("account");
        if account_now.closed_at.is_some() {
            assert!(close.is_ok());
            assert_eq!(final_balance, dec("0"), "closed with money in it");
        }
        assert_invariants(&ledger).await;
        drop(database.snapshot().await);
    }
}
