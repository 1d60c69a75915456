//! Holds, overdraft lines and reversals under concurrency: the races the
//! issue names, each decided by a unique key (a hold's one resolution, a
//! source's sequence number), never by a lock.

use std::time::Duration;

use ledger_domain::{AccountId, Decimal, DomainError, TransferId};
use ledger_store::{HoldExpiry, HoldStatus, Ledger, NewHold, StoreError};
use ledger_testkit::{assert_invariants, dec, open, transfer, TestDatabase};

async fn place(
    ledger: &Ledger,
    source: AccountId,
    destination: AccountId,
    amount: &str,
    expiry: HoldExpiry,
) -> TransferId {
    ledger
        .place_hold(
            NewHold {
                source,
                destination,
                amount: dec(amount),
                expiry,
                metadata: None,
            },
            None,
        )
        .await
        .expect("hold placed")
        .value
        .id
}

fn refusal(result: Result<impl std::fmt::Debug, StoreError>) -> Option<DomainError> {
    match result {
        Ok(_) => None,
        Err(StoreError::Domain(error)) => Some(error),
        Err(other) => panic!("not a refusal: {other}"),
    }
}

async fn resolutions(database: &TestDatabase, hold: TransferId) -> i64 {
    let client = database.connect().await.expect("connect");
    client
        .query_one(
            "select count(*) from ledger.hold_resolutions where hold_id = $1",
            &[&hold.as_uuid()],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_captures_and_voids_of_one_hold_exactly_one_wins() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let other_instance = database.ledger();
    for round in 0..5 {
        let payer = open(&ledger, "100.00").await;
        let merchant = open(&ledger, "0").await;
        let hold = place(&ledger, payer, merchant, "40", HoldExpiry::Default).await;
        let attempts = (0..20).map(|i| {
            let ledger = if i % 2 == 0 {
                ledger.clone()
            } else {
                other_instance.clone()
            };
            tokio::spawn(async move {
                if i % 3 == 0 {
                    refusal(ledger.void_hold(hold, None).await).map(|e| ("void", e))
                } else {
                    refusal(ledger.capture_hold(hold, Some(dec("30")), None).await)
                        .map(|e| ("capture", e))
                }
            })
        });
        let mut won = 0;
        for attempt in attempts {
            match attempt.await.expect("task") {
                None => won += 1,
                Some((_, DomainError::HoldNotPending(id))) => assert_eq!(id, hold),
                Some((what, other)) => panic!("{what} refused with {other}"),
            }
        }
        assert_eq!(won, 1, "round {round}: one capture or void, not {won}");
        assert_eq!(resolutions(&database, hold).await, 1);
        let status = ledger.get_hold(hold).await.expect("hold").status;
        let payer_balance = ledger.balance(payer).await.expect("balance");
        assert_eq!(payer_balance.held, Decimal::ZERO);
        match status {
            HoldStatus::Captured => assert_eq!(payer_balance.balance, dec("70.00")),
            HoldStatus::Voided => assert_eq!(payer_balance.balance, dec("100.00")),
            other => panic!("status {other:?}"),
        }
    }
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capture_racing_the_expiry_either_lands_before_it_or_loses_to_it() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let other_instance = database.ledger();
    let (mut captured, mut expired) = (0, 0);
    for round in 0..12i64 {
        let payer = open(&ledger, "10.00").await;
        let merchant = open(&ledger, "0").await;
        let hold = place(
            &ledger,
            payer,
            merchant,
            "10",
            HoldExpiry::After(Duration::from_secs(1)),
        )
        .await;
        let read = ledger.get_hold(hold).await.expect("hold");
        // Aim both at the expiry: a capture from 30 ms before it to 25 ms
        // after it, and the expiry task of another instance polling through.
        let start = read.expires_at + chrono::Duration::milliseconds(round * 5 - 30);
        let wait = (start - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let capturing = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                match ledger.capture_hold(hold, None, None).await {
                    Ok(done) => Some(done.value),
                    Err(StoreError::Domain(DomainError::HoldNotPending(_))) => None,
                    Err(other) => panic!("capture: {other}"),
                }
            })
        };
        let expiring = {
            let ledger = other_instance.clone();
            tokio::spawn(async move {
                let mut recorded = 0;
                for _ in 0..30 {
                    recorded += ledger.expire_holds(100).await.expect("expire");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                recorded
            })
        };
        let capture = capturing.await.expect("task");
        let recorded = expiring.await.expect("task");
        assert_eq!(resolutions(&database, hold).await, 1, "exactly one outcome");
        let hold_now = ledger.get_hold(hold).await.expect("hold");
        match capture {
            Some(transfer) => {
                captured += 1;
                assert!(
                    transfer.created_at < read.expires_at,
                    "captured after expiry"
                );
                assert_eq!(recorded, 0);
                assert_eq!(hold_now.status, HoldStatus::Captured);
                assert_eq!(
                    ledger.balance(merchant).await.expect("b").balance,
                    dec("10.00")
                );
            }
            None => {
                expired += 1;
                assert_eq!(hold_now.status, HoldStatus::Expired);
                assert_eq!(
                    ledger.balance(merchant).await.expect("b").balance,
                    dec("0.00")
                );
            }
        }
    }
    eprintln!("capture vs expiry: {captured} captured, {expired} expired");
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiries_are_recorded_exactly_once_by_several_instances() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let payer = open(&ledger, "1000.00").await;
    let merchant = open(&ledger, "0").await;
    for _ in 0..50 {
        place(
            &ledger,
            payer,
            merchant,
            "1",
            HoldExpiry::After(Duration::from_secs(1)),
        )
        .await;
    }
    assert_eq!(ledger.balance(payer).await.expect("b").held, dec("50.00"));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Expired by time already, recorded or not.
    assert_eq!(ledger.balance(payer).await.expect("b").held, Decimal::ZERO);
    let instances: Vec<Ledger> = (0..3).map(|_| database.ledger()).collect();
    let runs = instances.into_iter().map(|instance| {
        tokio::spawn(async move {
            let mut recorded = 0;
            for _ in 0..5 {
                recorded += instance.expire_holds(7).await.expect("expire");
            }
            recorded
        })
    });
    let mut total = 0;
    for run in runs {
        total += run.await.expect("task");
    }
    let later = ledger.expire_holds(1_000).await.expect("expire");
    assert_eq!(total + later, 50, "each expiry recorded once");
    let client = database.connect().await.expect("connect");
    let rows: i64 = client
        .query_one(
            "select count(*) from ledger.hold_resolutions where outcome = 'expired'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 50);
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_reversals_never_move_back_more_than_the_original() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let other_instance = database.ledger();
    let payer = open(&ledger, "100.00").await;
    let payee = open(&ledger, "500.00").await;
    let original = transfer(&ledger, payer, payee, "100").await;
    let attempts = (0..20).map(|i| {
        let ledger = if i % 2 == 0 {
            ledger.clone()
        } else {
            other_instance.clone()
        };
        // Half ask for a fixed part, half for "the rest".
        let amount = (i % 2 == 0).then(|| dec("15"));
        tokio::spawn(async move { ledger.reverse(original.id, amount, None, None).await })
    });
    let mut moved_back = Decimal::ZERO;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(reversal) => moved_back += reversal.value.amount,
            Err(StoreError::Domain(DomainError::ReversalExceedsTransfer { .. })) => {}
            Err(other) => panic!("reversal: {other}"),
        }
    }
    assert!(moved_back <= dec("100"), "reversed {moved_back} of 100");
    assert_eq!(
        ledger.reversed_amount(original.id).await.expect("sum"),
        moved_back
    );
    assert_eq!(ledger.balance(payer).await.expect("b").balance, moved_back);
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_line_lowered_concurrently_with_a_spend_never_lets_both_through() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let other_instance = database.ledger();
    let (mut spent, mut lowered) = (0, 0);
    for _ in 0..40 {
        let account = open(&ledger, "0").await;
        let payee = open(&ledger, "0").await;
        ledger
            .set_overdraft_limit(account, dec("100"), None)
            .await
            .expect("line granted");
        // Spending 60 needs the line above 60; lowering it to 50 needs less
        // than 50 in use. Whichever commits second must be refused.
        let spend = {
            let ledger = ledger.clone();
            tokio::spawn(
                async move { ledger.transfer(account, payee, dec("60"), None, None).await },
            )
        };
        let lower = {
            let ledger = other_instance.clone();
            tokio::spawn(async move { ledger.set_overdraft_limit(account, dec("50"), None).await })
        };
        let spend = refusal(spend.await.expect("task"));
        let lower = refusal(lower.await.expect("task"));
        match (spend, lower) {
            (None, Some(DomainError::OverdraftInUse { .. })) => spent += 1,
            (Some(DomainError::InsufficientFunds { .. }), None) => lowered += 1,
            other => panic!("both or neither went through: {other:?}"),
        }
        let balance = ledger.balance(account).await.expect("b");
        assert!(balance.available() >= Decimal::ZERO);
    }
    eprintln!("line vs spend: {spent} spends first, {lowered} lowerings first");
    assert_invariants(&ledger).await;
}
