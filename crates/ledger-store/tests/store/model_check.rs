//! A randomized model check: many tasks interleave deposits, withdrawals,
//! transfers and closes over a few accounts; afterwards the state must equal
//! a replay of the recorded log, and no accepted transfer may have made a
//! customer balance negative at any point of that replay.
//!
//! Writes are grouped per source (group commit): a third of the tasks
//! always pay out of one hot account, every deposit leaves the system
//! account, and half the tasks run on a second `Ledger` on the same
//! database, so groups form and race another process's groups.

use std::collections::HashMap;
use std::time::Duration;

use ledger_domain::{AccountId, Decimal, DomainError};
use ledger_store::StoreError;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use ledger_testkit::{assert_invariants, open, total_of, TestDatabase};

/// Withdraws whatever the account holds, then closes it: both may lose to
/// concurrent operations, which is the point.
async fn drain_and_close(
    ledger: &ledger_store::Ledger,
    account: AccountId,
) -> Result<(), StoreError> {
    let balance = ledger.balance(account).await?.balance;
    if balance > Decimal::ZERO {
        ledger.withdraw(account, balance, None, None).await?;
    }
    ledger.close_account(account, None).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_operations_equal_a_replay_of_the_log() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let other_instance = database.ledger();
    let ticker = tokio::spawn(ledger.clone().run_horizon_ticker(Duration::from_millis(10)));
    let mut accounts = Vec::new();
    for _ in 0..8 {
        accounts.push(open(&ledger, "50.00").await);
    }

    let tasks = (0..24u64).map(|seed| {
        let ledger = if seed % 2 == 0 {
            ledger.clone()
        } else {
            other_instance.clone()
        };
        let accounts = accounts.clone();
        let hot = seed % 3 == 0;
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut accepted = 0u32;
            for _ in 0..60 {
                let a = if hot {
                    accounts[0]
                } else {
                    accounts[rng.gen_range(0..accounts.len())]
                };
                let b = accounts[rng.gen_range(0..accounts.len())];
                let amount = Decimal::new(rng.gen_range(1..=4_000), 2);
                let result = match rng.gen_range(0..20) {
                    0..=2 => ledger.deposit(a, amount, None, None).await.map(drop),
                    3..=6 => ledger.withdraw(a, amount, None, None).await.map(drop),
                    // The hot account stays open, or the hot tasks would
                    // have nothing left to do.
                    7 if a != accounts[0] => drain_and_close(&ledger, a).await,
                    _ => ledger.transfer(a, b, amount, None, None).await.map(drop),
                };
                match result {
                    Ok(()) => accepted += 1,
                    Err(StoreError::Domain(
                        DomainError::InsufficientFunds { .. }
                        | DomainError::SameAccount
                        | DomainError::AccountClosed(_)
                        | DomainError::AccountClosing(_)
                        | DomainError::AccountNotEmpty(_),
                    )) => {}
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            accepted
        })
    });
    let accepted = total_of(tasks).await;
    ticker.abort();
    assert!(accepted > 200, "only {accepted} operations were accepted");

    // Replay the log in created_at order (which is sequence order within
    // each source) from zero balances.
    let client = database.connect().await.expect("connect");
    let log = client
        .query(
            "select t.source_account_id, t.destination_account_id, t.amount, s.is_system
               from ledger.transfers t join ledger.accounts s on s.account_id = t.source_account_id
              order by t.created_at, t.source_account_id, t.source_seq",
            &[],
        )
        .await
        .expect("log");
    let mut replayed: HashMap<Uuid, Decimal> = HashMap::new();
    for row in &log {
        let (source, destination, amount, source_is_system): (Uuid, Uuid, Decimal, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let balance = replayed.entry(source).or_default();
        *balance -= amount;
        assert!(
            source_is_system || *balance >= Decimal::ZERO,
            "replaying the log overdraws {source} to {balance}"
        );
        *replayed.entry(destination).or_default() += amount;
    }

    let mut closed = 0;
    for id in &accounts {
        let account = ledger.get_account(*id).await.expect("account");
        let expected = replayed.get(&id.as_uuid()).copied().unwrap_or_default();
        assert_eq!(account.balance, expected, "account {id}");
        if account.closed_at.is_some() {
            closed += 1;
            assert!(account.balance.is_zero(), "closed account {id} holds money");
        }
    }
    let system = AccountId::system(ledger_testkit::usd());
    let system_balance = ledger.get_account(system).await.expect("system").balance;
    assert_eq!(system_balance, replayed[&system.as_uuid()]);
    assert_invariants(&ledger).await;
    assert!(ledger.verify().await.expect("verify").violations.is_empty());
    eprintln!(
        "model check: {accepted} operations accepted, {} rows, {closed} accounts closed",
        log.len()
    );
    let (one, two) = (
        ledger.group_commit_metrics().snapshot(),
        other_instance.group_commit_metrics().snapshot(),
    );
    eprintln!("model check, first instance: {one}");
    eprintln!("model check, second instance: {two}");
    assert!(
        one.largest_group.max(two.largest_group) > 1,
        "no group formed"
    );
}
