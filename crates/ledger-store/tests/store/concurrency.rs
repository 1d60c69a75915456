//! The unique key is the only concurrency control: these tests race many
//! writers and check that nothing is lost, doubled, overdrawn or deadlocked.

use std::time::{Duration, Instant};

use futures::future::join_all;
use ledger_domain::DomainError;
use ledger_store::StoreError;
use rand::{Rng, SeedableRng};

use ledger_testkit::{
    assert_invariants, balance, dec, open, open_in, open_many, spawn_transfer, total_of,
    TestDatabase,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequence_numbers_are_gap_free_from_zero_under_64_concurrent_writers() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let ledger = ledger;
    let [source, destination] = open_many(&ledger, ["1000.00", "0"]).await;

    let writers = (0..64).map(|_| spawn_transfer(&ledger, source, destination, "1.00", None));
    let results = join_all(writers).await;

    let mut sequences: Vec<i64> = results
        .into_iter()
        .map(|joined| joined.expect("task").expect("transfer").value.source_seq)
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (0..64).collect::<Vec<i64>>());
    assert_eq!(balance(&ledger, source).await, dec("936.00"));
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_beyond_the_balance_never_overdraw() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let account = open(&ledger, "1000.00").await;
    let amount = dec("30.00");

    let withdrawals = (0..100).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.withdraw(account, amount, None, None).await })
    });
    let results = join_all(withdrawals).await;

    let mut successes = 0;
    for result in results {
        match result.expect("task") {
            Ok(_) => successes += 1,
            Err(StoreError::Domain(DomainError::InsufficientFunds { account: refused })) => {
                assert_eq!(refused, account);
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    // floor(1000 / 30) = 33 withdrawals fit.
    assert_eq!(successes, 33);
    assert_eq!(balance(&ledger, account).await, dec("10.00"));
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_transfers_between_two_accounts_all_succeed_without_deadlock() {
    let (_database, ledger, [a, b]) = TestDatabase::with_accounts(["500.00", "500.00"]).await;

    let started = Instant::now();
    let transfers = (0..200).map(|i| {
        let (source, destination) = if i % 2 == 0 { (a, b) } else { (b, a) };
        spawn_transfer(&ledger, source, destination, "1.00", None)
    });
    let results = tokio::time::timeout(Duration::from_secs(30), join_all(transfers))
        .await
        .expect("no deadlock: all transfers finish");
    let elapsed = started.elapsed();

    for result in results {
        result.expect("task").expect("every transfer succeeds");
    }
    assert_eq!(
        balance(&ledger, a).await + balance(&ledger, b).await,
        dec("1000.00")
    );
    assert_eq!(balance(&ledger, a).await, dec("500.00"));
    assert!(
        elapsed < Duration::from_secs(5),
        "200 opposite transfers took {elapsed:?}"
    );
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_stress_keeps_every_currency_summing_to_zero() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    // The horizon ticker lets the write path take incoming checkpoints, so
    // this also exercises checkpointed balances.
    let ticker = tokio::spawn(ledger.clone().run_horizon_ticker(Duration::from_millis(20)));
    let usd = ledger_domain::Currency::parse("USD").expect("USD");
    let eur = ledger_domain::Currency::parse("EUR").expect("EUR");
    let mut accounts = Vec::new();
    for i in 0..20 {
        let currency = if i % 2 == 0 { usd } else { eur };
        accounts.push((currency, open_in(&ledger, currency, "100.00").await));
    }
    let by_currency: Vec<Vec<_>> = [usd, eur]
        .iter()
        .map(|c| {
            accounts
                .iter()
                .filter(|(cur, _)| cur == c)
                .map(|(_, id)| *id)
                .collect()
        })
        .collect();

    let tasks = (0..16u64).map(|task| {
        let ledger = ledger.clone();
        let by_currency = by_currency.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(task);
            let mut applied = 0u32;
            for _ in 0..(5_000 / 16) {
                let group = &by_currency[rng.gen_range(0..2)];
                let source = group[rng.gen_range(0..group.len())];
                let destination = group[rng.gen_range(0..group.len())];
                let cents = rng.gen_range(1..=5_000);
                let amount = ledger_domain::Decimal::new(cents, 2);
                let result = match rng.gen_range(0..10) {
                    0 => ledger.deposit(source, amount, None, None).await,
                    1 => ledger.withdraw(source, amount, None, None).await,
                    _ => {
                        ledger
                            .transfer(source, destination, amount, None, None)
                            .await
                    }
                };
                match result {
                    Ok(_) => applied += 1,
                    Err(StoreError::Domain(
                        DomainError::InsufficientFunds { .. } | DomainError::SameAccount,
                    )) => {}
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            applied
        })
    });
    let applied = total_of(tasks).await;
    ticker.abort();

    assert!(applied > 1_000, "only {applied} postings applied");
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deposits_race_on_the_system_account_without_losing_any() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let accounts: Vec<_> = join_all((0..8).map(|_| open(&ledger, "0"))).await;

    let deposits = (0..64).map(|i| {
        let ledger = ledger.clone();
        let account = accounts[i % accounts.len()];
        tokio::spawn(async move { ledger.deposit(account, dec("2.50"), None, None).await })
    });
    for result in join_all(deposits).await {
        result.expect("task").expect("deposit");
    }

    for account in accounts {
        assert_eq!(balance(&ledger, account).await, dec("20.00"));
    }
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_deposits_in_a_new_currency_race_to_create_its_system_account() {
    for _round in 0..5 {
        let (_database, ledger) = TestDatabase::with_ledger().await;
        let chf = ledger_domain::Currency::parse("CHF").expect("CHF");
        // Open accounts without funding: the system account does not exist yet.
        let accounts: Vec<_> = join_all((0..8).map(|_| open_in(&ledger, chf, "0"))).await;

        let first_deposits = accounts.iter().map(|&account| {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.deposit(account, dec("1.00"), None, None).await })
        });
        for result in join_all(first_deposits).await {
            result.expect("task").expect("every first deposit succeeds");
        }
        assert_invariants(&ledger).await;
    }
}
