//! Balances at any point in time, and which of those answers are final.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger_domain::AccountId;
use ledger_store::Ledger;

use ledger_testkit::{assert_invariants, balance, dec, open, transfer, TestDatabase};

async fn db_now(ledger: &Ledger, account: AccountId) -> DateTime<Utc> {
    ledger.balance(account).await.expect("balance").at
}

/// Advances the horizon until `at` is behind it.
async fn wait_until_final(ledger: &Ledger, at: DateTime<Utc>) {
    for _ in 0..200 {
        if ledger
            .advance_horizon()
            .await
            .expect("horizon")
            .is_some_and(|h| h > at)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the horizon never passed {at}");
}

#[tokio::test]
async fn balances_as_of_past_times_are_the_balances_then() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let before_anything = chrono::Utc::now() - chrono::Duration::hours(1);
    let account = open(&ledger, "100.00").await;
    let after_opening = db_now(&ledger, account).await;
    ledger
        .withdraw(account, dec("30.00"), None, None)
        .await
        .expect("withdraw");
    let after_withdrawal = db_now(&ledger, account).await;
    ledger
        .deposit(account, dec("5.00"), None, None)
        .await
        .expect("deposit");

    let at = |time| {
        let ledger = ledger.clone();
        async move {
            ledger
                .balance_at(account, time)
                .await
                .expect("as-of")
                .balance
        }
    };
    assert_eq!(
        at(before_anything).await,
        dec("0"),
        "before the account existed"
    );
    assert_eq!(at(after_opening).await, dec("100.00"), "after opening");
    assert_eq!(
        at(after_withdrawal).await,
        dec("70.00"),
        "between two transfers"
    );
    let now = db_now(&ledger, account).await;
    assert_eq!(at(now).await, balance(&ledger, account).await, "now");
    assert_eq!(at(now).await, dec("75.00"));
    assert_invariants(&ledger).await;
}

#[tokio::test]
async fn a_final_answer_never_changes() {
    let (_database, ledger, [account, other]) = TestDatabase::with_accounts(["100.00", "0"]).await;
    transfer(&ledger, account, other, "10.00").await;
    let asked_at = db_now(&ledger, account).await;

    wait_until_final(&ledger, asked_at).await;
    let first = ledger.balance_at(account, asked_at).await.expect("as-of");
    assert!(first.is_final);
    assert_eq!(first.balance, dec("90.00"));

    // Later activity on both sides of the account.
    for _ in 0..5 {
        transfer(&ledger, account, other, "1.00").await;
        transfer(&ledger, other, account, "0.50").await;
    }
    wait_until_final(&ledger, db_now(&ledger, account).await).await;

    let again = ledger.balance_at(account, asked_at).await.expect("as-of");
    assert_eq!(again, first);
}

#[tokio::test]
async fn an_answer_is_not_final_while_a_transaction_that_could_change_it_is_in_flight() {
    let (database, ledger, [source, destination]) =
        TestDatabase::with_accounts(["50.00", "0"]).await;

    // A slow writer: its row is stamped now, but commits later.
    let mut slow = database.connect().await.expect("connect");
    let slow_tx = slow.transaction().await.expect("begin");
    slow_tx
        .execute(
            "insert into ledger.transfers (source_account_id, source_seq, transfer_id,
                 destination_account_id, currency_code, amount)
             values ($1, 0, gen_random_uuid(), $2, 'USD', 20)",
            &[&source.as_uuid(), &destination.as_uuid()],
        )
        .await
        .expect("slow insert");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let asked_at = db_now(&ledger, destination).await;
    for _ in 0..5 {
        ledger.advance_horizon().await.expect("horizon");
    }

    let while_in_flight = ledger
        .balance_at(destination, asked_at)
        .await
        .expect("as-of");
    assert_eq!(while_in_flight.balance, dec("0"));
    assert!(
        !while_in_flight.is_final,
        "the slow transfer may still commit"
    );

    slow_tx.commit().await.expect("commit");
    wait_until_final(&ledger, asked_at).await;
    let settled = ledger
        .balance_at(destination, asked_at)
        .await
        .expect("as-of");
    assert!(settled.is_final);
    assert_eq!(
        settled.balance,
        dec("20.00"),
        "the slow transfer happened before asked_at"
    );
}

#[tokio::test]
async fn checkpointed_balances_agree_with_the_log_at_every_point_in_time() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let account = open(&ledger, "0").await;
    let mut moments = Vec::new();
    for round in 0..6 {
        for _ in 0..50 {
            ledger
                .deposit(account, dec("1.25"), None, None)
                .await
                .expect("deposit");
        }
        ledger.advance_horizon().await.expect("horizon");
        moments.push((db_now(&ledger, account).await, round));
    }
    let client = database.connect().await.expect("connect");
    let checkpoints: i64 = client
        .query_one(
            "select count(*) from ledger.incoming_checkpoints where account_id = $1",
            &[&account.as_uuid()],
        )
        .await
        .expect("count")
        .get(0);
    assert!(
        checkpoints >= 2,
        "only {checkpoints} checkpoints were taken"
    );

    for (moment, round) in moments {
        let expected = dec("62.50") * ledger_domain::Decimal::from(round + 1);
        let plain: ledger_domain::Decimal = client
            .query_one(
                "select coalesce(sum(amount), 0) from ledger.transfers
                  where destination_account_id = $1 and created_at <= $2",
                &[&account.as_uuid(), &moment],
            )
            .await
            .expect("plain sum")
            .get(0);
        assert_eq!(plain, expected);
        let derived = ledger.balance_at(account, moment).await.expect("as-of");
        assert_eq!(derived.balance, expected, "as of round {round}");
    }
    assert_eq!(balance(&ledger, account).await, dec("375.00"));
    assert_invariants(&ledger).await;
}
