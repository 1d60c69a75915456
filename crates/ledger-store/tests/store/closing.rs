//! Closing accounts under concurrency: several closers at once, money moving
//! in and out meanwhile, and closes that end early for any reason. A closed
//! account must never hold money or see a transfer after its close; a close
//! that answers Ok must have closed; a close that fails must leave the
//! account open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use ledger_domain::{AccountId, DomainError};
use ledger_store::{Ledger, StoreError};
use rand::Rng;

use ledger_testkit::{
    assert_invariants, balance, close_in_progress, dec, is_closed, key, open, TestDatabase,
};

/// Rounds of the stress test; `LEDGER_CLOSE_STRESS_ROUNDS` overrides.
fn stress_rounds() -> usize {
    std::env::var("LEDGER_CLOSE_STRESS_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(500)
}

/// Deposits 1.00 and withdraws it again until told to stop, waiting out a
/// close in progress. Returns how many round trips completed.
async fn deposit_and_withdraw(ledger: Ledger, account: AccountId, stop: Arc<AtomicBool>) -> u32 {
    let mut completed = 0;
    while !stop.load(Ordering::Relaxed) && completed < 20 {
        match ledger.deposit(account, dec("1.00"), None, None).await {
            Ok(_) => {}
            Err(StoreError::Domain(
                DomainError::AccountClosed(_) | DomainError::AccountClosing(_),
            )) => {
                tokio::time::sleep(Duration::from_micros(500)).await;
                continue;
            }
            Err(other) => panic!("deposit failed: {other:?}"),
        }
        // The money is in: it must come out again, whatever the closers do.
        loop {
            match ledger.withdraw(account, dec("1.00"), None, None).await {
                Ok(_) => break,
                Err(StoreError::Domain(DomainError::AccountClosing(_))) => {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                Err(other) => panic!(
                    "1.00 is stuck in {account}: withdrawal failed: {other:?}; account now {:?}",
                    ledger.get_account(account).await
                ),
            }
        }
        completed += 1;
    }
    completed
}

async fn transfers_after_close(database: &TestDatabase, account: AccountId) -> i64 {
    let client = database.connect().await.expect("connect");
    client
        .query_one(
            "select count(*) from ledger.transfers t, ledger.accounts a
              where a.account_id = $1 and a.closed_at is not null
                and $1 in (t.source_account_id, t.destination_account_id)
                and t.created_at > a.closed_at",
            &[&account.as_uuid()],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_closes_amid_deposits_and_withdrawals_never_strand_money_or_freeze_an_account() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let rounds = stress_rounds();
    let (mut closed, mut refused) = (0, 0);
    for round in 0..rounds {
        let account = open(&ledger, "0").await;
        let stop = Arc::new(AtomicBool::new(false));
        let mover = tokio::spawn(deposit_and_withdraw(
            ledger.clone(),
            account,
            Arc::clone(&stop),
        ));
        let closers = (0..3).map(|_| {
            let ledger = ledger.clone();
            let pause = Duration::from_micros(rand::thread_rng().gen_range(0..3_000));
            tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                ledger.close_account(account, None).await
            })
        });
        let closes = join_all(closers).await;
        stop.store(true, Ordering::Relaxed);
        mover.await.expect("the mover never finds its money stuck");

        let now = ledger.get_account(account).await.expect("account");
        for close in closes {
            match close.expect("closer task") {
                Ok(outcome) => {
                    assert!(
                        outcome.value.closed_at.is_some(),
                        "round {round}: Ok without closed_at"
                    );
                    assert!(
                        now.closed_at.is_some(),
                        "round {round}: Ok but the account is open"
                    );
                }
                Err(StoreError::Domain(
                    DomainError::AccountNotEmpty(_)
                    | DomainError::AccountClosing(_)
                    | DomainError::AccountClosed(_),
                )) => {}
                Err(other) => panic!("round {round}: close failed with {other:?}"),
            }
        }
        if now.closed_at.is_some() {
            closed += 1;
            assert_eq!(
                balance(&ledger, account).await,
                dec("0"),
                "round {round}: closed with money"
            );
            assert_eq!(
                transfers_after_close(&database, account).await,
                0,
                "round {round}"
            );
        } else {
            // Not frozen: every attempt has ended, so money moves again.
            refused += 1;
            ledger
                .deposit(account, dec("1.00"), None, None)
                .await
                .unwrap_or_else(|err| panic!("round {round}: account left frozen: {err:?}"));
            ledger
                .withdraw(account, dec("1.00"), None, None)
                .await
                .expect("withdraw again");
        }
    }
    println!("{rounds} rounds: {closed} closed, {refused} stayed open");
    let report = ledger.verify().await.expect("verify");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_abandoned_at_any_point_leaves_the_account_open() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    for delay_us in (0..30_000).step_by(1_500) {
        let account = open(&ledger, "0").await;
        let close = {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.close_account(account, None).await })
        };
        tokio::time::sleep(Duration::from_micros(delay_us)).await;
        // As actix does when the client resets the connection: the request's
        // future is dropped wherever it stands.
        close.abort();
        let _ = close.await;

        // Dropped after its commit was sent, a close may have happened with
        // its answer lost, like any request whose client went away: then it
        // is a whole close. Anything short of that must leave no trace.
        let now = ledger.get_account(account).await.expect("read");
        if now.closed_at.is_some() {
            assert_eq!(now.balance, dec("0"));
            continue;
        }
        // The dropped close's transaction ends as its connection rolls it
        // back; until then the account may answer "closing", never "closed".
        let mut deposited = false;
        for _ in 0..200 {
            match ledger.deposit(account, dec("1.00"), None, None).await {
                Ok(_) => {
                    deposited = true;
                    break;
                }
                Err(StoreError::Domain(DomainError::AccountClosing(_))) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(StoreError::Domain(DomainError::AccountClosed(_))) => {
                    // Its commit was on the wire when it was dropped, and
                    // landed after the read above: a whole close after all.
                    let now = ledger.get_account(account).await.expect("read");
                    assert!(now.closed_at.is_some() && now.balance.is_zero(), "{now:?}");
                    deposited = true;
                    break;
                }
                Err(other) => panic!("after a close dropped at {delay_us} µs: {other:?}"),
            }
        }
        assert!(
            deposited,
            "account frozen by a close dropped at {delay_us} µs"
        );
    }
}

#[tokio::test]
async fn a_close_refused_for_a_reused_idempotency_key_leaves_its_account_open() {
    let (_database, ledger, [first, second]) = TestDatabase::with_accounts(["0", "0"]).await;
    let key = key("close-once");

    let (a, b) = tokio::join!(
        ledger.close_account(first, Some(&key)),
        ledger.close_account(second, Some(&key)),
    );
    let (winner, loser) = match (&a, &b) {
        (Ok(_), Err(_)) => (first, second),
        (Err(_), Ok(_)) => (second, first),
        other => panic!("exactly one close may use the key: {other:?}"),
    };
    assert!(is_closed(&ledger, winner).await);
    assert!(!is_closed(&ledger, loser).await);
    ledger
        .deposit(loser, dec("1.00"), None, None)
        .await
        .expect("the loser's account still takes money");
    assert_eq!(balance(&ledger, loser).await, dec("1.00"));
}

#[tokio::test]
async fn transfers_meet_a_close_in_progress_with_a_retryable_refusal_and_its_outcome_after() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    for (outcome, expected_after) in [("rollback", "open"), ("commit", "closed")] {
        let account = open(&ledger, "0").await;
        let closer = close_in_progress(&database, account).await;

        assert!(matches!(
            ledger.deposit(account, dec("1.00"), None, None).await,
            Err(StoreError::Domain(DomainError::AccountClosing(id))) if id == account
        ));
        // A commit without closed_at set: the attempt's commit is what
        // closes, for every reader.
        closer.batch_execute(outcome).await.expect(outcome);
        let after = ledger.deposit(account, dec("1.00"), None, None).await;
        match expected_after {
            "open" => assert!(after.is_ok(), "{after:?}"),
            _ => assert!(
                matches!(
                    after,
                    Err(StoreError::Domain(DomainError::AccountClosed(_)))
                ),
                "{after:?}"
            ),
        }
    }
}
