//! A randomized model check of holds, captures, voids, expiries, overdraft
//! lines and reversals: many tasks on two `Ledger`s interleave them with
//! transfers, deposits and withdrawals over a few accounts; afterwards every
//! balance, held figure and available balance must equal a replay of the
//! log, and at no point of the replay may a write out of a customer account
//! have taken it past its line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger_domain::{AccountId, Decimal, DomainError, TransferId};
use ledger_store::{HoldExpiry, NewHold, StoreError};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use ledger_testkit::{assert_invariants, open, total_of, TestDatabase};

/// Pending holds per source: (hold id, amount, expires_at).
type Pending = HashMap<Uuid, Vec<(Uuid, Decimal, DateTime<Utc>)>>;

/// The refusals the random operations may meet, all of them the rules at
/// work.
fn expected(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Domain(
            DomainError::InsufficientFunds { .. }
                | DomainError::SameAccount
                | DomainError::HoldNotPending(_)
                | DomainError::CaptureExceedsHold(_)
                | DomainError::ReversalExceedsTransfer { .. }
                | DomainError::OverdraftInUse { .. }
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_lines_and_reversals_interleaved_equal_a_replay_of_the_log() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let other_instance = database.ledger();
    let ticker = tokio::spawn(ledger.clone().run_horizon_ticker(Duration::from_millis(10)));
    let expiry = tokio::spawn(
        other_instance
            .clone()
            .run_hold_expiry(Duration::from_millis(20)),
    );
    let mut accounts = Vec::new();
    for _ in 0..6 {
        accounts.push(open(&ledger, "50.00").await);
    }
    let holds: Arc<Mutex<Vec<TransferId>>> = Arc::default();
    let transfers: Arc<Mutex<Vec<TransferId>>> = Arc::default();

    let tasks = (0..16u64).map(|seed| {
        let ledger = if seed % 2 == 0 {
            ledger.clone()
        } else {
            other_instance.clone()
        };
        let (accounts, holds, transfers) = (accounts.clone(), holds.clone(), transfers.clone());
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut accepted = 0u32;
            for _ in 0..50 {
                let a = accounts[rng.gen_range(0..accounts.len())];
                let b = accounts[rng.gen_range(0..accounts.len())];
                let amount = Decimal::new(rng.gen_range(1..=3_000), 2);
                let pick = |list: &Arc<Mutex<Vec<TransferId>>>, rng: &mut rand::rngs::StdRng| {
                    let list = list.lock().expect("list");
                    (!list.is_empty()).then(|| list[rng.gen_range(0..list.len())])
                };
                let result = match rng.gen_range(0..20) {
                    0..=1 => ledger.deposit(a, amount, None, None).await.map(drop),
                    2..=3 => ledger.withdraw(a, amount, None, None).await.map(drop),
                    4..=6 => {
                        let expiry = if rng.gen_bool(0.3) {
                            HoldExpiry::After(Duration::from_millis(rng.gen_range(1_000..1_500)))
                        } else {
                            HoldExpiry::Default
                        };
                        let request = NewHold {
                            source: a,
                            destination: b,
                            amount,
                            expiry,
                            metadata: None,
                        };
                        ledger.place_hold(request, None).await.map(|hold| {
                            holds.lock().expect("holds").push(hold.value.id);
                        })
                    }
                    7..=9 => match pick(&holds, &mut rng) {
                        Some(hold) => {
                            let part = rng.gen_bool(0.5).then_some(amount);
                            ledger.capture_hold(hold, part, None).await.map(drop)
                        }
                        None => Ok(()),
                    },
                    10 => match pick(&holds, &mut rng) {
                        Some(hold) => ledger.void_hold(hold, None).await.map(drop),
                        None => Ok(()),
                    },
                    11..=12 => match pick(&transfers, &mut rng) {
                        Some(original) => {
                            let part = rng.gen_bool(0.5).then_some(amount);
                            ledger.reverse(original, part, None, None).await.map(drop)
                        }
                        None => Ok(()),
                    },
                    13 => {
                        let line = Decimal::new(rng.gen_range(0..=6_000), 2);
                        ledger.set_overdraft_limit(a, line, None).await.map(drop)
                    }
                    _ => ledger
                        .transfer(a, b, amount, None, None)
                        .await
                        .map(|moved| transfers.lock().expect("transfers").push(moved.value.id)),
                };
                match result {
                    Ok(()) => accepted += 1,
                    Err(error) if expected(&error) => {}
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            accepted
        })
    });
    let accepted = total_of(tasks).await;
    // Let every short hold expire, and the expiry task record it.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    ticker.abort();
    expiry.abort();
    assert!(accepted > 200, "only {accepted} operations were accepted");

    // Replay: rows in time order (sequence order within a source), with
    // each void and expiry releasing its hold at its own time, and every
    // hold lapsing at its expiry.
    let client = database.connect().await.expect("connect");
    let rows = client
        .query(
            "select t.source_account_id, t.destination_account_id, t.amount, t.kind,
                    t.held_amount, t.hold_expires_at, t.hold_id, t.source_overdraft_limit,
                    t.transfer_id, t.created_at, s.is_system
               from ledger.transfers t join ledger.accounts s on s.account_id = t.source_account_id
              order by t.created_at, t.source_account_id, t.source_seq",
            &[],
        )
        .await
        .expect("log");
    let releases: HashMap<Uuid, DateTime<Utc>> = client
        .query(
            "select hold_id, resolved_at from ledger.hold_resolutions where outcome <> 'captured'",
            &[],
        )
        .await
        .expect("resolutions")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();

    let mut balances: HashMap<Uuid, Decimal> = HashMap::new();
    let mut lines: HashMap<Uuid, Decimal> = HashMap::new();
    let mut pending = Pending::new();
    let held_at = |pending: &Pending, account: Uuid, at: DateTime<Utc>| {
        pending
            .get(&account)
            .into_iter()
            .flatten()
            .filter(|(id, _, expires)| {
                *expires > at && releases.get(id).is_none_or(|released| *released > at)
            })
            .map(|(_, amount, _)| *amount)
            .sum::<Decimal>()
    };
    for row in &rows {
        let source: Uuid = row.get(0);
        let destination: Uuid = row.get(1);
        let amount: Decimal = row.get(2);
        let kind: &str = row.get(3);
        let at: DateTime<Utc> = row.get(9);
        let source_is_system: bool = row.get(10);
        match kind {
            "hold" => pending.entry(source).or_default().push((
                row.get(8),
                row.get::<_, Decimal>(4),
                row.get(5),
            )),
            "capture" => {
                let hold: Uuid = row.get(6);
                pending
                    .entry(source)
                    .or_default()
                    .retain(|(id, ..)| *id != hold);
            }
            "overdraft_change" => {
                lines.insert(source, row.get(7));
            }
            _ => {}
        }
        *balances.entry(source).or_default() -= amount;
        *balances.entry(destination).or_default() += amount;
        if !source_is_system {
            let available = balances[&source] - held_at(&pending, source, at)
                + lines.get(&source).copied().unwrap_or_default();
            assert!(
                available >= Decimal::ZERO,
                "a {kind} out of {source} at {at} left {available} available"
            );
        }
    }

    let now = Utc::now();
    for id in &accounts {
        let uuid = id.as_uuid();
        let balance = ledger.balance(*id).await.expect("balance");
        assert_eq!(
            balance.balance,
            balances.get(&uuid).copied().unwrap_or_default(),
            "{id}"
        );
        assert_eq!(balance.held, held_at(&pending, uuid, now), "held of {id}");
        assert_eq!(
            balance.overdraft_limit,
            lines.get(&uuid).copied().unwrap_or_default()
        );
        assert!(
            balance.available() >= Decimal::ZERO,
            "{id} available {}",
            balance.available()
        );
    }
    let system = AccountId::system(ledger_testkit::usd());
    let system_balance = ledger.balance(system).await.expect("system").balance;
    assert_eq!(system_balance, balances[&system.as_uuid()]);
    assert_invariants(&ledger).await;
    let kinds = client
        .query(
            "select kind, count(*) from ledger.transfers group by kind order by kind",
            &[],
        )
        .await
        .expect("kinds");
    let kinds: Vec<String> = kinds
        .iter()
        .map(|row| format!("{} {}", row.get::<_, i64>(1), row.get::<_, &str>(0)))
        .collect();
    eprintln!(
        "holds model check: {accepted} operations accepted; rows: {}; {} voids/expiries",
        kinds.join(", "),
        releases.len()
    );
    for kind in ["hold", "capture", "reversal", "overdraft_change"] {
        assert!(
            kinds.iter().any(|line| line.ends_with(kind)),
            "no {kind} happened: {kinds:?}"
        );
    }
}
