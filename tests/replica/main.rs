//! Reads on a real streaming replica: the service against the project's own
//! primary and hot standby (`scripts/replica.sh`), started by
//! `scripts/replica-tests.sh`, which exports
//!
//! - `LEDGER_TEST_DATABASE_URL`: the primary (test databases are made there
//!   and reach the replica by replication);
//! - `LEDGER_TEST_REPLICA_URL`: the standby;
//! - `LEDGER_TEST_REPLICA_CTL`: `scripts/replica.sh`, to stop and start the
//!   standby mid-test.
//!
//! Without them every test says it was skipped and passes, so that
//! `cargo test --workspace` on a machine without the pair stays green;
//! `scripts/replica-tests.sh` sets `LEDGER_TEST_REPLICA_REQUIRED=1`, which
//! turns a missing pair into a failure. The tests pause the standby's
//! replay, which the whole standby shares: run them one at a time
//! (`--test-threads=1`, as the script does).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ledger_testkit::service::{spawn_app_on, ApiResponse, TestApp};
use ledger_testkit::{connect, TestDatabase};
use reqwest::Method;
use serde_json::json;

/// The standby's admin URL, or `None` (and a note) when the pair is not
/// there.
fn replica_url(test: &str) -> Option<String> {
    match std::env::var("LEDGER_TEST_REPLICA_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("LEDGER_TEST_REPLICA_REQUIRED").is_err(),
                "LEDGER_TEST_REPLICA_URL is not set; run scripts/replica-tests.sh"
            );
            eprintln!("{test}: skipped, no replica (run scripts/replica-tests.sh)");
            None
        }
    }
}

/// A service on a fresh database of the primary, reading from its replica,
/// with the standby's replay running.
async fn spawn_with_replica(replica_admin: &str) -> (TestApp, String) {
    set_replay(replica_admin, true).await;
    let db = TestDatabase::create()
        .await
        .expect("Failed to create a test database");
    let replica = db.url_on(replica_admin);
    let app = spawn_app_on(db, |config| {
        config.replica_urls = vec![replica.clone()];
        config.replica_wait = Duration::from_millis(50);
        config.replica_max_lag = Duration::from_secs(2);
    })
    .await;
    (app, replica)
}

/// Pauses or resumes the standby's replay (the whole standby).
async fn set_replay(replica_admin: &str, running: bool) {
    let client = connect(replica_admin).await.expect("the replica answers");
    let sql = if running {
        "select pg_wal_replay_resume()"
    } else {
        "select pg_wal_replay_pause()"
    };
    client.batch_execute(sql).await.expect("replay control");
}

/// `at` as the API takes it (a `+` would need escaping in a query string).
fn rfc3339(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn position(response: &ApiResponse) -> String {
    response
        .header("ledger-position")
        .unwrap_or_else(|| panic!("a write without Ledger-Position: {:?}", response.status))
        .to_owned()
}

fn served_by(response: &ApiResponse) -> &str {
    response
        .header("ledger-served-by")
        .expect("Ledger-Served-By")
}

async fn balance_after(app: &TestApp, account: &str, position: &str) -> ApiResponse {
    let request = app
        .request(Method::GET, &format!("/accounts/{account}/balance"))
        .header("Ledger-Min-Position", position);
    let response = app.send(request).await;
    response.expect_status(200);
    response
}

#[tokio::test]
async fn a_read_with_the_writes_position_waits_or_goes_to_the_primary_while_replay_is_paused() {
    let Some(replica_admin) = replica_url("position_with_replay_paused") else {
        return;
    };
    let (app, _) = spawn_with_replica(&replica_admin).await;
    let source = app.funded_account("100.00").await;
    let destination = app.funded_account("0.00").await;

    let first = app.transfer(&source, &destination, json!("1.00")).await;
    first.expect_status(201);
    let read = balance_after(&app, &source, &position(&first)).await;
    assert_eq!(read.str("balance"), "99.00");

    set_replay(&replica_admin, false).await;
    let second = app
        .send(
            app.request(Method::POST, "/transfers")
                .header("Idempotency-Key", "replica-paused-1")
                .json(&json!({ "source": source, "destination": destination, "amount": "2.00" })),
        )
        .await;
    second.expect_status(201);
    let started = Instant::now();
    let read = balance_after(&app, &source, &position(&second)).await;
    let waited = started.elapsed();
    // The replica cannot have it: the answer must be the primary's.
    assert_eq!(read.str("balance"), "97.00", "never older than the write");
    assert_eq!(served_by(&read), "primary");
    assert!(
        waited >= Duration::from_millis(50),
        "it waited for the replica first ({waited:?})"
    );

    // A replay of the write carries a position too, at or after the first.
    let replay = app
        .send(
            app.request(Method::POST, "/transfers")
                .header("Idempotency-Key", "replica-paused-1")
                .json(&json!({ "source": source, "destination": destination, "amount": "2.00" })),
        )
        .await;
    replay.expect_status(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let replayed_at: ledger_store::WalPosition = position(&replay).parse().expect("a position");
    let written_at: ledger_store::WalPosition = position(&second).parse().expect("a position");
    assert!(replayed_at >= written_at);

    // A stale read may be served by the paused replica, and says how stale.
    let stale = app
        .get(&format!("/accounts/{source}/balance?consistency=replica"))
        .await;
    stale.expect_status(200);
    if served_by(&stale) == "replica" {
        let lag: u64 = stale
            .header("ledger-replica-lag")
            .expect("a stale read says its lag")
            .parse()
            .expect("milliseconds");
        assert!(lag <= 2_000, "within the bound: {lag} ms");
        assert!(["99.00", "97.00"].contains(&stale.str("balance")));
    }

    set_replay(&replica_admin, true).await;
    let read = balance_after(&app, &source, &position(&second)).await;
    assert_eq!(read.str("balance"), "97.00");
}

/// `ledger.balance_at` and whether it is final, read straight from one
/// server's SQL.
async fn balance_at_on(url: &str, account: &str, at: DateTime<Utc>) -> (String, bool) {
    let client = connect(url).await.expect("the server answers");
    let account: uuid::Uuid = account.parse().expect("a uuid");
    let row = client
        .query_one(
            "select ledger.balance_at($1, $2)::text, $2 < ledger.final_horizon()",
            &[&account, &at],
        )
        .await
        .expect("balance_at");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_final_balance_served_by_the_replica_equals_the_primarys_and_never_changes() {
    let Some(replica_admin) = replica_url("final_on_replica") else {
        return;
    };
    let (app, replica) = spawn_with_replica(&replica_admin).await;
    let primary = app.database().url().to_owned();
    let account = app.funded_account("50.00").await;
    let other = app.funded_account("0.00").await;
    for _ in 0..3 {
        app.transfer(&account, &other, json!("1.50"))
            .await
            .expect_status(201);
    }
    let at = Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    app.transfer(&account, &other, json!("10.00"))
        .await
        .expect_status(201);

    // Final on the primary first, then on the replica once it has the mark.
    let path = format!("/accounts/{account}/balance?at={}", rfc3339(at));
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        let response = app.get(&path).await;
        response.expect_status(200);
        if served_by(&response) == "replica" {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "no final answer from the replica within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(served.str("balance"), "45.50");
    assert_eq!(served.body["final"], json!(true));
    assert_eq!(
        balance_at_on(&primary, &account, at).await,
        ("45.50".to_owned(), true),
        "the primary's answer"
    );

    // Replay paused: the replica keeps the same final answer while the
    // primary moves on, and does not call a later time final.
    set_replay(&replica_admin, false).await;
    for _ in 0..3 {
        app.transfer(&account, &other, json!("0.25"))
            .await
            .expect_status(201);
    }
    let later = Utc::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        balance_at_on(&replica, &account, at).await,
        ("45.50".to_owned(), true)
    );
    let (_, later_final_on_replica) = balance_at_on(&replica, &account, later).await;
    assert!(
        !later_final_on_replica,
        "a paused replica cannot know that a time after its replay point is final"
    );
    let (later_on_primary, later_final_on_primary) = balance_at_on(&primary, &account, later).await;
    assert!(later_final_on_primary, "the primary's horizon moved on");
    let response = app
        .get(&format!(
            "/accounts/{account}/balance?at={}",
            rfc3339(later)
        ))
        .await;
    assert_eq!(served_by(&response), "primary", "not final there: primary");
    assert_eq!(response.str("balance"), later_on_primary);

    set_replay(&replica_admin, true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (value, is_final) = balance_at_on(&replica, &account, later).await;
        if is_final {
            assert_eq!(value, later_on_primary, "final on both, the same");
            break;
        }
        assert!(Instant::now() < deadline, "the replica caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        balance_at_on(&replica, &account, at).await,
        ("45.50".to_owned(), true),
        "and the earlier one never changed"
    );
}

#[tokio::test]
async fn a_thousand_writes_each_read_back_with_its_position_are_never_stale() {
    let Some(replica_admin) = replica_url("thousand_pairs") else {
        return;
    };
    let (app, _) = spawn_with_replica(&replica_admin).await;
    const USERS: usize = 4;
    const PAIRS_PER_USER: usize = 250;
    let mut pairs = Vec::new();
    for _ in 0..USERS {
        pairs.push((
            app.funded_account("1000.00").await,
            app.funded_account("0.00").await,
        ));
    }
    let app = &app;
    let started = Instant::now();
    let results = futures::future::join_all(pairs.iter().map(|(source, destination)| async move {
        let mut by_replica = 0_usize;
        for i in 1..=PAIRS_PER_USER {
            let write = app.transfer(source, destination, json!("0.01")).await;
            write.expect_status(201);
            let read = balance_after(app, destination, &position(&write)).await;
            let expected = format!("{}.{:02}", i / 100, i % 100);
            assert_eq!(read.str("balance"), expected, "read {i} is not stale");
            if served_by(&read) == "replica" {
                by_replica += 1;
            }
        }
        by_replica
    }))
    .await;
    let by_replica: usize = results.iter().sum();
    let total = USERS * PAIRS_PER_USER;
    eprintln!(
        "write-then-read pairs: {total}, read by the replica: {by_replica} ({:.1} %), in {:?}",
        100.0 * by_replica as f64 / total as f64,
        started.elapsed()
    );
    assert!(by_replica > 0, "the replica served none of {total} reads");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("a text body");
    let counted: u64 = metrics
        .lines()
        .find(|line| {
            line.starts_with("ledger_replica_reads_total{")
                && line.contains(r#"read="min_position""#)
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no replica read counter in /metrics:\n{metrics}"));
    assert_eq!(
        counted, by_replica as u64,
        "/metrics counts the replica's reads"
    );
}

#[tokio::test]
async fn reads_succeed_while_the_replica_is_stopped_and_go_back_to_it_after() {
    let Some(replica_admin) = replica_url("replica_stopped") else {
        return;
    };
    let control = std::env::var("LEDGER_TEST_REPLICA_CTL").expect("LEDGER_TEST_REPLICA_CTL");
    let (app, _) = spawn_with_replica(&replica_admin).await;
    let source = app.funded_account("100.00").await;
    let destination = app.funded_account("0.00").await;
    let at = Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let stop = {
        let control = control.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(&control)
                .arg("stop-replica")
                .status()
        })
    };
    let mut reads = 0;
    let mut by_replica_during = 0;
    let mut expected = 10_000_u32;
    while !stop.is_finished() || reads < 60 {
        let write = app.transfer(&source, &destination, json!("0.01")).await;
        write.expect_status(201);
        expected -= 1;
        for path in [
            format!("/accounts/{source}/balance?consistency=replica"),
            format!("/accounts/{source}/balance?at={}", rfc3339(at)),
        ] {
            let response = app.get(&path).await;
            response.expect_status(200);
            reads += 1;
        }
        let read = balance_after(&app, &source, &position(&write)).await;
        assert_eq!(
            read.str("balance"),
            format!("{}.{:02}", expected / 100, expected % 100)
        );
        if served_by(&read) == "replica" {
            by_replica_during += 1;
        }
        reads += 1;
    }
    let status = stop.await.expect("the stop task").expect("replica.sh runs");
    assert!(status.success(), "replica.sh stop-replica");
    // Down now: every kind of read still answers.
    for _ in 0..20 {
        let write = app.transfer(&source, &destination, json!("0.01")).await;
        write.expect_status(201);
        let read = balance_after(&app, &source, &position(&write)).await;
        assert_eq!(served_by(&read), "primary");
        app.get(&format!("/accounts/{source}/balance?consistency=replica"))
            .await
            .expect_status(200);
    }
    eprintln!("{reads} reads while the replica stopped, {by_replica_during} by it before it went");

    let start = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&control)
            .arg("start-replica")
            .status()
    })
    .await
    .expect("the start task")
    .expect("replica.sh runs");
    assert!(start.success(), "replica.sh start-replica");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let write = app.transfer(&source, &destination, json!("0.01")).await;
        write.expect_status(201);
        let read = balance_after(&app, &source, &position(&write)).await;
        if served_by(&read) == "replica" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica was not used again within 30 s of its restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
