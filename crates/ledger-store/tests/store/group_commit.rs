//! Group commit per source: writes out of one account queue up in the
//! process and are applied as one multi-row insert. These tests make groups
//! happen (many writers at once, or a first write held up in the database
//! while the others queue behind it) and check that each leg still gets its
//! own answer.

use std::time::{Duration, Instant};

use futures::future::join_all;
use ledger_domain::{AccountId, DomainError, IdempotencyKey};
use ledger_store::{Ledger, NewAccount, Outcome, StoreError, Transfer};

use ledger_testkit::{
    assert_invariants, balance, dec, key, keyed_transfer, open, open_many, spawn_transfer, usd,
    TestDatabase,
};

/// Makes every insert into `account` wait `seconds` in the database, so that
/// the writes behind it in its source's queue form one group.
async fn hold_up_transfers_into(database: &TestDatabase, account: AccountId, seconds: f64) {
    let client = database.connect().await.expect("connect");
    client
        .batch_execute(&format!(
            "create or replace function public.test_hold_up() returns trigger
             language plpgsql as $$ begin perform pg_sleep({seconds}); return new; end $$;
             create trigger test_hold_up before insert on ledger.transfers
                for each row when (new.destination_account_id = '{account}')
                execute function public.test_hold_up();"
        ))
        .await
        .expect("hold-up trigger");
}

/// Makes the database refuse every transfer into `account` as if it were
/// closed, although the Rust decision (which reads the account open) lets
/// it through: the two sides legitimately disagreeing, as when a close
/// lands between the head read and the insert.
async fn refuse_transfers_into(database: &TestDatabase, account: AccountId) {
    let client = database.connect().await.expect("connect");
    client
        .batch_execute(&format!(
            "create function public.test_refuse() returns trigger
             language plpgsql as $$ begin
                 raise exception 'destination closed behind the store''s back'
                     using errcode = 'check_violation', constraint = 'transfers_destination_open';
             end $$;
             create trigger test_refuse before insert on ledger.transfers
                for each row when (new.destination_account_id = '{account}')
                execute function public.test_refuse();"
        ))
        .await
        .expect("refusal trigger");
}

/// Holds `source` up: makes every insert into `held_up` wait `seconds` in
/// the database, starts a transfer of 1.00 from `source` into it, and gives
/// that time to reach the database, where it holds its source's leader. The
/// writes out of `source` that follow queue behind it and form one group.
async fn hold_up_source(
    database: &TestDatabase,
    ledger: &Ledger,
    source: AccountId,
    held_up: AccountId,
    seconds: f64,
) -> tokio::task::JoinHandle<Result<Outcome<Transfer>, StoreError>> {
    hold_up_transfers_into(database, held_up, seconds).await;
    let handle = spawn_transfer(ledger, source, held_up, "1.00", None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle
}

fn is_service_error(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Unavailable(_)
            | StoreError::QueueFull(_)
            | StoreError::Contention(_)
            | StoreError::Internal(_)
            | StoreError::Config(_)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_out_of_one_source_are_grouped_without_a_service_error() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let source = open(&ledger, "1000.00").await;
    let destinations = [open(&ledger, "0").await, open(&ledger, "0").await];

    let writers =
        (0..64).map(|i| spawn_transfer(&ledger, source, destinations[i % 2], "1.00", None));
    let results = join_all(writers).await;

    let mut sequences = Vec::new();
    for result in results {
        match result.expect("task") {
            Ok(outcome) => sequences.push(outcome.value.source_seq),
            Err(err) => panic!("a writer got {err:?}"),
        }
    }
    sequences.sort_unstable();
    assert_eq!(sequences, (0..64).collect::<Vec<i64>>());
    assert_eq!(balance(&ledger, source).await, dec("936.00"));
    let stats = ledger.group_commit_metrics().snapshot();
    eprintln!("group commit: {stats}");
    assert!(stats.largest_group > 1, "no group formed: {stats}");
    assert!(stats.most_lost_races_in_a_group <= 1, "{stats}");
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leg_that_would_overdraw_fails_alone_and_the_rest_of_its_group_applies() {
    let (database, ledger, [source, held_up, destination]) =
        TestDatabase::with_accounts(["11.00", "0", "0"]).await;

    let first = hold_up_source(&database, &ledger, source, held_up, 0.5).await;
    // Queued behind it: 4 × 1.00 that fit and one 100.00 that does not.
    let amounts = ["1.00", "1.00", "100.00", "1.00", "1.00"];
    let legs = amounts.map(|amount| spawn_transfer(&ledger, source, destination, amount, None));
    let results = join_all(legs).await;
    first.await.expect("task").expect("the held-up transfer");

    for (amount, result) in amounts.iter().zip(results) {
        match (*amount, result.expect("task")) {
            ("100.00", Err(StoreError::Domain(DomainError::InsufficientFunds { account }))) => {
                assert_eq!(account, source);
            }
            ("1.00", Ok(_)) => {}
            (amount, other) => panic!("{amount}: unexpected {other:?}"),
        }
    }
    assert_eq!(balance(&ledger, source).await, dec("6.00"));
    assert_eq!(balance(&ledger, destination).await, dec("4.00"));
    let stats = ledger.group_commit_metrics().snapshot();
    assert!(
        stats.largest_group >= 5,
        "the five did not form one group: {stats}"
    );
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_refusal_inside_a_group_fails_only_its_own_leg() {
    let (database, ledger, [source, held_up, refusing, destination]) =
        TestDatabase::with_accounts(["100.00", "0", "0", "0"]).await;
    refuse_transfers_into(&database, refusing).await;

    let first = hold_up_source(&database, &ledger, source, held_up, 0.5).await;
    let targets = [destination, destination, refusing, destination, destination];
    let legs = targets.map(|target| spawn_transfer(&ledger, source, target, "1.00", None));
    let results = join_all(legs).await;
    first.await.expect("task").expect("the held-up transfer");

    for (target, result) in targets.iter().zip(results) {
        match result.expect("task") {
            Err(StoreError::Domain(DomainError::AccountClosed(account))) if *target == refusing => {
                assert_eq!(account, refusing);
            }
            Ok(outcome) if *target == destination => {
                assert_eq!(outcome.value.destination, destination);
            }
            other => panic!("into {target}: unexpected {other:?}"),
        }
    }
    assert_eq!(balance(&ledger, destination).await, dec("4.00"));
    assert_eq!(balance(&ledger, refusing).await, dec("0.00"));
    let stats = ledger.group_commit_metrics().snapshot();
    assert!(stats.refused_groups >= 1, "no group was refused: {stats}");
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_legs_with_one_idempotency_key_in_one_group_apply_once() {
    let (database, ledger, [source, held_up, destination]) =
        TestDatabase::with_accounts(["100.00", "0", "0"]).await;
    let key = key("same-key-twice");

    let first = hold_up_source(&database, &ledger, source, held_up, 0.5).await;
    let legs = (0..2).map(|_| spawn_transfer(&ledger, source, destination, "5.00", Some(&key)));
    let results: Vec<_> = join_all(legs)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("transfer"))
        .collect();
    first.await.expect("task").expect("the held-up transfer");

    assert_eq!(
        results[0].value, results[1].value,
        "both answer one transfer"
    );
    let replays = results.iter().filter(|outcome| outcome.replayed).count();
    assert_eq!(replays, 1, "exactly one leg replays the other");
    assert_eq!(balance(&ledger, destination).await, dec("5.00"));
    assert!(ledger.group_commit_metrics().snapshot().largest_group >= 2);
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_leg_refused_inside_a_group_leaves_no_key_behind() {
    let (database, ledger, [source, held_up, destination]) =
        TestDatabase::with_accounts(["10.00", "0", "0"]).await;
    let key = key("too-much-for-now");

    let first = hold_up_source(&database, &ledger, source, held_up, 0.5).await;
    let too_much = spawn_transfer(&ledger, source, destination, "50.00", Some(&key));
    let fits = spawn_transfer(&ledger, source, destination, "2.00", None);
    let refused = too_much.await.expect("task");
    fits.await.expect("task").expect("the leg that fits");
    first.await.expect("task").expect("the held-up transfer");
    assert!(
        matches!(
            refused,
            Err(StoreError::Domain(DomainError::InsufficientFunds { .. }))
        ),
        "{refused:?}"
    );

    // Funded now, the same request with the same key applies: the refused
    // attempt left no key.
    ledger
        .deposit(source, dec("100.00"), None, None)
        .await
        .expect("deposit");
    let retried = keyed_transfer(&ledger, source, destination, "50.00", &key)
        .await
        .expect("the retried transfer");
    assert!(!retried.replayed);
    assert_eq!(balance(&ledger, destination).await, dec("52.00"));
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_unavailable_at_once() {
    let database = TestDatabase::create().await.expect("a fresh test database");
    let ledger = database.ledger_with(|config| {
        config.source_queue_max_legs = 2;
        config.group_max_legs = 1;
    });
    let [source, held_up, destination] = open_many(&ledger, ["100.00", "0", "0"]).await;

    let first = hold_up_source(&database, &ledger, source, held_up, 1.0).await;
    let writers = (0..20).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = ledger
                .transfer(source, destination, dec("1.00"), None, None)
                .await;
            (result, started.elapsed())
        })
    });
    let results = join_all(writers).await;
    first.await.expect("task").expect("the held-up transfer");

    let mut applied = 0;
    let mut refused = 0;
    for result in results {
        match result.expect("task") {
            (Ok(_), _) => applied += 1,
            (Err(StoreError::QueueFull(account)), waited) => {
                assert_eq!(account, source);
                assert!(
                    waited < Duration::from_millis(200),
                    "refused after {waited:?}"
                );
                refused += 1;
            }
            (Err(other), _) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 2, "the queue holds two");
    assert_eq!(refused, 18);
    assert_eq!(ledger.group_commit_metrics().snapshot().queue_full, 18);
    assert_invariants(&ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deposits_and_openings_share_the_system_accounts_groups() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let accounts = [open(&ledger, "0").await, open(&ledger, "0").await];

    let deposits = (0..64).map(|i| {
        let ledger = ledger.clone();
        let account = accounts[i % 2];
        tokio::spawn(async move { ledger.deposit(account, dec("1.00"), None, None).await })
    });
    let openings = (0..16).map(|i| {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let key = IdempotencyKey::parse(&format!("open-{}", i / 2)).expect("key");
            let request = NewAccount {
                overdraft_limit: None,
                id: None,
                currency: usd(),
                initial_balance: Some(dec("2.50")),
                metadata: None,
            };
            ledger.open_account(request, Some(&key)).await
        })
    });
    let (deposits, openings) = tokio::join!(join_all(deposits), join_all(openings));
    for result in deposits {
        result.expect("task").expect("deposit");
    }
    // Two openings per key: one opens, the other replays it, whichever
    // order they run in (the same group or not).
    let mut opened: Vec<AccountId> = Vec::new();
    for result in openings {
        let outcome = result.expect("task").expect("opening");
        assert_eq!(outcome.value.balance, dec("2.50"));
        opened.push(outcome.value.id);
    }
    for pair in opened.chunks(2) {
        assert_eq!(pair[0], pair[1], "one key, one account");
    }
    assert_eq!(balance(&ledger, accounts[0]).await, dec("32.00"));
    let system = AccountId::system(usd());
    assert_eq!(balance(&ledger, system).await, dec("-84.00"));
    let stats = ledger.group_commit_metrics().snapshot();
    eprintln!("system account group commit: {stats}");
    assert!(stats.largest_group > 1, "no group formed: {stats}");
    assert_invariants(&ledger).await;
    assert!(ledger.verify().await.expect("verify").violations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_service_instances_on_one_database_keep_every_invariant() {
    let (database, first) = TestDatabase::with_ledger().await;
    let second = database.ledger();
    let sources = [open(&first, "500.00").await, open(&first, "500.00").await];
    let destinations = [open(&first, "0").await, open(&first, "0").await];

    let writers = (0..64).map(|writer| {
        // 32 writers per instance, all on the same two sources.
        let ledger = if writer % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tokio::spawn(async move {
            let mut errors = Vec::new();
            for round in 0..10 {
                let source = sources[(writer + round) % 2];
                let result = match round % 5 {
                    0 => ledger
                        .deposit(source, dec("3.00"), None, None)
                        .await
                        .map(drop),
                    1 => ledger
                        .withdraw(source, dec("2.00"), None, None)
                        .await
                        .map(drop),
                    _ => ledger
                        .transfer(source, destinations[round % 2], dec("1.50"), None, None)
                        .await
                        .map(drop),
                };
                if let Err(err) = result {
                    errors.push(err);
                }
            }
            errors
        })
    });
    for errors in join_all(writers).await {
        for err in errors.expect("task") {
            assert!(!is_service_error(&err), "a writer got {err:?}");
        }
    }

    assert_invariants(&first).await;
    let report = first.verify().await.expect("verify");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    for (name, ledger) in [("first", &first), ("second", &second)] {
        eprintln!(
            "{name} instance: {}",
            ledger.group_commit_metrics().snapshot()
        );
    }
}
