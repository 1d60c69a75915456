//! Fault suite: the service under load while its process is killed, while
//! its database disappears, and while its pool is exhausted behind a held
//! lock. Each test drives the real `ledger` binary over loopback HTTP (the
//! process side of `ledger_testkit::service`) and judges the result from the
//! database: with plain SQL against what the clients were told, and with the
//! ledger's one invariant check (`Ledger::verify`).
//!
//! The tests are bounded (requests, time) and stop by themselves. They run
//! one at a time, because two of them measure latencies. `scripts/faults.sh`
//! runs them with their summaries shown; `cargo test` runs them too.
//! `FAULTS_SEED=<n>` replays the random choices (kill moments, amounts) of
//! an earlier run; the seed is printed.

#[path = "faults/load.rs"]
mod load;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use ledger_domain::Decimal;
use ledger_testkit::service::{
    authorized_client, http_client, open_accounts, short, LedgerProcess,
};
use ledger_testkit::{assert_invariants, query_pairs, Cluster, TestDatabase};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use load::{AttemptResult, Load, LoadConfig, LoadReport, Outcome, Target};

/// The binary under test.
const LEDGER: &str = env!("CARGO_BIN_EXE_ledger");

/// The fault tests measure latencies and load the machine: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every customer account starts with this much.
const INITIAL_BALANCE: &str = "1000.00";

fn seed() -> u64 {
    std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random)
}

// ---------------------------------------------------------------------------
// Crash the service
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_load_loses_no_acknowledged_transfer_and_applies_none_twice() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    // Arrange: 16 funded accounts, 32 writers retrying with their keys.
    let db = TestDatabase::create().await.expect("a test database");
    let mut server = LedgerProcess::start(LEDGER, db.url(), &[]);
    // Every restart listens on the first server's port, as a supervised
    // service does: clients keep their one address.
    let address = server.address().to_owned();
    let listen_addr = address.trim_start_matches("http://").to_owned();
    let http = authorized_client(Duration::from_secs(10), &db.admin_key().await);
    let probe = http_client(RESTART_PROBE_TIMEOUT);
    let accounts = open_accounts(&http, server.address(), 16, INITIAL_BALANCE).await;
    let target = Target::new(server.address());
    let load = Load::start(
        &http,
        &target,
        &LoadConfig {
            writers: 32,
            accounts: accounts.clone(),
            max_amount_cents: 5_000,
            key_prefix: "crash".to_owned(),
            retry_pause: Duration::from_millis(50),
            resolve_within: Duration::from_secs(30),
            max_requests: 60_000,
            seed,
        },
    );

    // Act: kill -9 at random moments, 3 to 5 times, restarting each time on
    // the same database and the same port.
    let kills = rng.gen_range(3..=5);
    let mut restarts = Vec::with_capacity(kills);
    for kill in 1..=kills {
        // The server is serving (it acknowledged something since it started)…
        assert!(
            load.wait_for_acks(20, Duration::from_secs(30)).await,
            "the server acknowledged nothing for 30 s:\n{}",
            server.log_tail()
        );
        // …then dies at a random moment of the load.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1_500))).await;
        server.kill9();
        let killed_at = Instant::now();
        // A supervisor's restart delay.
        let delay = Duration::from_millis(rng.gen_range(0..200));
        tokio::time::sleep(delay).await;
        server = LedgerProcess::start(LEDGER, db.url(), &[("LEDGER_LISTEN_ADDR", &listen_addr)]);
        assert_eq!(server.address(), address, "the restart took another port");
        let ready_after = ready_since(&probe, &address, killed_at, Duration::from_secs(30)).await;
        println!(
            "crash: kill {kill}: restarted on {listen_addr} after a {} ms delay, ready {} ms \
             after the kill",
            delay.as_millis(),
            ready_after.as_millis()
        );
        restarts.push(ready_after);
    }
    let slow: Vec<_> = restarts
        .iter()
        .filter(|ready_after| **ready_after > RESTART_BUDGET)
        .collect();
    assert!(
        slow.is_empty(),
        "restarts must answer /ready within {RESTART_BUDGET:?} of the kill; took {restarts:?}"
    );
    assert!(
        load.wait_for_acks(20, Duration::from_secs(30)).await,
        "the restarted server acknowledged nothing for 30 s:\n{}",
        server.log_tail()
    );
    let report = load.stop().await;

    // Assert: no answer was a 500 (a crash cuts connections; it never makes
    // the service answer wrongly), every acknowledged transfer is there, none
    // applied twice, and the ledger is sound.
    assert_no_server_errors(&report, &server);
    let verdict = judge(&db, &http, server.address(), "crash", &accounts, &report).await;
    println!(
        "crash: seed {seed}, {:.1} s, requests sent {}, kills {kills} (ready again after {} ms), \
         logical transfers {}, transfers acknowledged {} ({} as replays), rejected {} \
         (insufficient funds), transfers found {}, applied twice 0, 500s 0, violations: {}",
        started.elapsed().as_secs_f64(),
        report.attempts.len(),
        restarts
            .iter()
            .map(|ready_after| ready_after.as_millis().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        report.transfers.len(),
        verdict.acked,
        verdict.replayed,
        verdict.rejected,
        verdict.found,
        verdict.violations,
    );
}

/// From `kill -9` to the restarted server answering `GET /ready` with 200.
const RESTART_BUDGET: Duration = Duration::from_secs(1);
/// One readiness probe's timeout while a restart is timed.
const RESTART_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Polls `GET /ready` every 10 ms; returns how long after `since` it first
/// answered 200.
async fn ready_since(
    http: &reqwest::Client,
    address: &str,
    since: Instant,
    within: Duration,
) -> Duration {
    loop {
        let ready = http
            .get(format!("{address}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200);
        if ready {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < within,
            "not ready within {within:?} of the kill (or of the database's return)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Lose the database
// ---------------------------------------------------------------------------

/// The service's limits in the database-loss test.
const DB_LOSS_ACQUIRE_TIMEOUT_MS: u64 = 1_000;
const DB_LOSS_STATEMENT_TIMEOUT_MS: u64 = 2_000;
/// How long PostgreSQL stays down.
const DB_DOWN_FOR: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_database_mid_load_gets_503_with_retry_after_and_the_service_recovers_by_itself()
{
    if !Cluster::server_binaries_present() {
        assert!(
            std::env::var_os("LEDGER_FAULTS_REQUIRE_PG").is_none(),
            "LEDGER_FAULTS_REQUIRE_PG is set but no PostgreSQL server binaries (initdb) exist"
        );
        eprintln!(
            "SKIPPED: no PostgreSQL server binaries (initdb) on this machine; \
             scripts/ensure-postgres.sh installs them"
        );
        return;
    }
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let started = Instant::now();

    // Arrange: a cluster of the test's own, a database on it, the service.
    let data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults-pgdata");
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start(data_dir))
            .await
            .expect("the cluster task")
            .expect("a dedicated PostgreSQL cluster"),
    );
    let db = TestDatabase::create_on(cluster.admin_url())
        .await
        .expect("a database on the dedicated cluster");
    let acquire_ms = DB_LOSS_ACQUIRE_TIMEOUT_MS.to_string();
    let statement_ms = DB_LOSS_STATEMENT_TIMEOUT_MS.to_string();
    let server = LedgerProcess::start(
        LEDGER,
        db.url(),
        &[
            ("LEDGER_POOL_SIZE", "16"),
            ("LEDGER_ACQUIRE_TIMEOUT_MS", &acquire_ms),
            ("LEDGER_STATEMENT_TIMEOUT_MS", &statement_ms),
        ],
    );
    let http = authorized_client(Duration::from_secs(15), &db.admin_key().await);
    let accounts = open_accounts(&http, server.address(), 8, INITIAL_BALANCE).await;
    let target = Target::new(server.address());
    let load = Load::start(
        &http,
        &target,
        &LoadConfig {
            writers: 16,
            accounts: accounts.clone(),
            max_amount_cents: 5_000,
            key_prefix: "dbloss".to_owned(),
            retry_pause: Duration::from_millis(100),
            resolve_within: Duration::from_secs(30),
            max_requests: 40_000,
            seed,
        },
    );
    assert!(
        load.wait_for_acks(50, Duration::from_secs(30)).await,
        "no load before the fault:\n{}",
        server.log_tail()
    );

    // Act: stop PostgreSQL under load, keep it down, start it again.
    let stopping = Instant::now();
    run_blocking(&cluster, Cluster::stop).await;
    let down_from = Instant::now();
    tokio::time::sleep(DB_DOWN_FOR).await;
    let down_until = Instant::now();
    run_blocking(&cluster, Cluster::resume).await;
    let up_at = Instant::now();
    let ready_after = ready_since(
        &http,
        server.address(),
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        load.wait_for_acks(1, Duration::from_secs(30)).await,
        "no transfer acknowledged within 30 s of PostgreSQL's return:\n{}",
        server.log_tail()
    );
    let write_after = up_at.elapsed();
    assert!(load.wait_for_acks(50, Duration::from_secs(30)).await);
    let report = load.stop().await;

    // Assert: while down, 503 + Retry-After, promptly; never a 500.
    let budget = Duration::from_millis(DB_LOSS_ACQUIRE_TIMEOUT_MS + DB_LOSS_STATEMENT_TIMEOUT_MS)
        + Duration::from_secs(1);
    let while_down: Vec<_> = report
        .attempts
        .iter()
        .filter(|a| a.started >= down_from && a.started + a.latency <= down_until)
        .collect();
    assert!(
        while_down.len() >= 20,
        "only {} requests were answered while PostgreSQL was down",
        while_down.len()
    );
    for attempt in &while_down {
        match &attempt.result {
            AttemptResult::Response {
                status: 503,
                code: Some(code),
                retry_after: true,
                content_type: Some(content_type),
            } if code == "unavailable" && content_type == "application/problem+json" => {}
            other => panic!("while PostgreSQL was down a request got {other:?}"),
        }
    }
    let max_down_latency = while_down
        .iter()
        .map(|a| a.latency)
        .max()
        .unwrap_or_default();
    assert!(
        max_down_latency <= budget,
        "a request took {max_down_latency:?} while PostgreSQL was down (budget {budget:?})"
    );
    let max_latency = report
        .attempts
        .iter()
        .map(|a| a.latency)
        .max()
        .unwrap_or_default();
    assert_no_server_errors(&report, &server);
    let transport: Vec<_> = report
        .attempts
        .iter()
        .filter(|a| matches!(a.result, AttemptResult::Transport(_)))
        .collect();
    assert!(
        transport.is_empty(),
        "{} requests got no answer (the server never died), e.g. {:?}",
        transport.len(),
        transport.first()
    );
    assert!(
        write_after <= Duration::from_secs(5),
        "the first write after PostgreSQL's return took {write_after:?}"
    );

    // Nothing acknowledged was lost, nothing applied twice, the ledger sound.
    let verdict = judge(&db, &http, server.address(), "dbloss", &accounts, &report).await;
    println!(
        "database loss: seed {seed}, {:.1} s, requests sent {}, faults injected 1 (PostgreSQL \
         stopped for {:.1} s, stop took {:.1} s), answered while down {} (all 503 unavailable \
         with Retry-After, max latency {} ms, budget {} ms), 503s in all {}, 500s 0, max \
         latency overall {} ms, ready again {} ms and first write {} ms after PostgreSQL \
         returned, transfers acknowledged {} ({} as replays), \
         transfers found {}, violations: {}",
        started.elapsed().as_secs_f64(),
        report.attempts.len(),
        (down_until - stopping).as_secs_f64(),
        (down_from - stopping).as_secs_f64(),
        while_down.len(),
        max_down_latency.as_millis(),
        budget.as_millis(),
        report.count_status(503),
        max_latency.as_millis(),
        ready_after.as_millis(),
        write_after.as_millis(),
        verdict.acked,
        verdict.replayed,
        verdict.found,
        verdict.violations,
    );
}

/// No answer was a 5xx other than 503 (`unavailable`, with Retry-After).
fn assert_no_server_errors(report: &LoadReport, server: &LedgerProcess) {
    let server_errors: Vec<_> = report
        .attempts
        .iter()
        .filter(|a| a.status().is_some_and(|s| s >= 500 && s != 503))
        .collect();
    assert!(
        server_errors.is_empty(),
        "{} responses were 5xx other than 503, e.g. {:?}; server errors:\n{}",
        server_errors.len(),
        server_errors.first(),
        server.log_lines_containing("\"ERROR\"").join("\n")
    );
}

async fn run_blocking(cluster: &Arc<Cluster>, action: fn(&Cluster) -> anyhow::Result<()>) {
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || action(&cluster))
        .await
        .expect("the cluster task")
        .expect("the cluster command");
}

// ---------------------------------------------------------------------------
// Exhaust the pool / slow database
// ---------------------------------------------------------------------------

const POOL_SIZE: &str = "4";
const POOL_ACQUIRE_TIMEOUT_MS: u64 = 500;
const POOL_STATEMENT_TIMEOUT_MS: u64 = 1_000;
/// Concurrent requests per burst: far more than the pool's connections.
const BURST: usize = 50;
/// Lock-and-burst rounds, to see whether memory grows with them.
const ROUNDS: usize = 5;
/// Largest RSS growth accepted over all rounds.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_table_behind_an_exhausted_pool_gets_503_within_the_timeouts_and_memory_stays_bounded(
) {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();

    // Arrange: a pool of 4, short timeouts.
    let db = TestDatabase::create().await.expect("a test database");
    let acquire_ms = POOL_ACQUIRE_TIMEOUT_MS.to_string();
    let statement_ms = POOL_STATEMENT_TIMEOUT_MS.to_string();
    let server = LedgerProcess::start(
        LEDGER,
        db.url(),
        &[
            ("LEDGER_POOL_SIZE", POOL_SIZE),
            ("LEDGER_ACQUIRE_TIMEOUT_MS", &acquire_ms),
            ("LEDGER_STATEMENT_TIMEOUT_MS", &statement_ms),
        ],
    );
    let http = authorized_client(Duration::from_secs(15), &db.admin_key().await);
    let address = server.address().to_owned();
    let accounts = open_accounts(&http, &address, 8, INITIAL_BALANCE).await;
    let budget = Duration::from_millis(POOL_ACQUIRE_TIMEOUT_MS + POOL_STATEMENT_TIMEOUT_MS)
        + Duration::from_secs(1);

    // More concurrent requests than connections, database healthy: each is
    // served or refused with 503, never a 500.
    let oversubscribed = burst(&http, &address, &accounts, BURST).await;
    for (request, response) in &oversubscribed {
        assert!(
            response.status < 300 || response.is_unavailable(),
            "{request} over an exhausted pool got {response:?}"
        );
    }
    let served = oversubscribed
        .iter()
        .filter(|(_, r)| r.status < 300)
        .count();
    assert!(served > 0, "nothing was served over a pool of {POOL_SIZE}");

    // A database made slow: a held ACCESS EXCLUSIVE lock on the accounts
    // blocks every request's first read of them.
    let rss_before = server.rss_kib();
    let mut rss_rounds = Vec::new();
    let mut max_locked_latency = Duration::ZERO;
    let mut locked_requests = 0;
    for round in 1..=ROUNDS {
        let locker = db.connect().await.expect("a plain connection");
        locker
            .batch_execute("begin; lock table ledger.accounts in access exclusive mode")
            .await
            .expect("the lock");
        let held_since = Instant::now();
        let locked = burst(&http, &address, &accounts, BURST).await;
        for (request, response) in &locked {
            assert!(
                response.is_unavailable(),
                "round {round}: {request} behind the lock got {response:?}; server errors:\n{}",
                server.log_lines_containing("\"ERROR\"").join("\n")
            );
            assert!(
                response.latency <= budget,
                "round {round}: {request} took {:?} (budget {budget:?})",
                response.latency
            );
            max_locked_latency = max_locked_latency.max(response.latency);
        }
        locked_requests += locked.len();
        // Hold the lock a little longer than the burst needed, then let go.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held_for = held_since.elapsed();
        locker.batch_execute("rollback").await.expect("unlock");

        // Recovery: the next requests are served.
        let after = burst(&http, &address, &accounts, 10).await;
        for (request, response) in &after {
            assert!(
                response.status < 300,
                "round {round}: {request} after the lock was released got {response:?}"
            );
        }
        let rss = server.rss_kib();
        println!(
            "pool round {round}: lock held {} ms, {BURST} requests all 503 within {} ms, \
             10 after release all 2xx, RSS {rss} KiB",
            held_for.as_millis(),
            locked
                .iter()
                .map(|(_, r)| r.latency)
                .max()
                .unwrap_or_default()
                .as_millis()
        );
        rss_rounds.push(rss);
    }
    let rss_after = server.rss_kib();
    assert!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over {ROUNDS} rounds"
    );
    let violations = assert_invariants(&db.ledger()).await.violations;
    println!(
        "pool exhaustion: {:.1} s, pool {POOL_SIZE}, acquire timeout {POOL_ACQUIRE_TIMEOUT_MS} \
         ms, statement timeout {POOL_STATEMENT_TIMEOUT_MS} ms; oversubscribed burst of {BURST}: \
         {served} served, {} 503; faults injected {ROUNDS} (table locks), requests behind them \
         {locked_requests}, all 503 unavailable with Retry-After, max latency {} ms (budget {} \
         ms), 500s 0, recovered every round; RSS {rss_before} KiB before, {rss_after} KiB after \
         (rounds: {rss_rounds:?}), violations: {}",
        started.elapsed().as_secs_f64(),
        BURST - served,
        max_locked_latency.as_millis(),
        budget.as_millis(),
        violations.len(),
    );
}

/// What one request of a burst got.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: Option<String>,
    retry_after: bool,
    latency: Duration,
}

impl Answer {
    fn is_unavailable(&self) -> bool {
        self.status == 503 && self.code.as_deref() == Some("unavailable") && self.retry_after
    }
}

/// `count` concurrent requests, a mix of writes and reads that all touch the
/// accounts: transfers, deposits, account reads, balance reads.
async fn burst(
    http: &reqwest::Client,
    address: &str,
    accounts: &[Uuid],
    count: usize,
) -> Vec<(String, Answer)> {
    let requests = (0..count).map(|i| {
        let account = accounts[i % accounts.len()];
        let other = accounts[(i + 1) % accounts.len()];
        let key = format!("pool-{}", Uuid::new_v4());
        let (label, request) = match i % 4 {
            0 => (
                "POST /transfers",
                http.post(format!("{address}/transfers"))
                    .header("Idempotency-Key", key)
                    .json(&json!({"source": account, "destination": other, "amount": "0.01"})),
            ),
            1 => (
                "POST /accounts/{id}/deposits",
                http.post(format!("{address}/accounts/{account}/deposits"))
                    .header("Idempotency-Key", key)
                    .json(&json!({"amount": "0.01"})),
            ),
            2 => (
                "GET /accounts/{id}",
                http.get(format!("{address}/accounts/{account}")),
            ),
            _ => (
                "GET /accounts/{id}/balance",
                http.get(format!("{address}/accounts/{account}/balance")),
            ),
        };
        async move {
            let started = Instant::now();
            let response = request
                .send()
                .await
                .unwrap_or_else(|err| panic!("{label}: no answer: {err}"));
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let answer = Answer {
                status,
                code: body["code"].as_str().map(str::to_owned),
                retry_after,
                latency: started.elapsed(),
            };
            (label.to_owned(), answer)
        }
    });
    stream::iter(requests)
        .buffer_unordered(count)
        .collect()
        .await
}

// ---------------------------------------------------------------------------
// The verdict shared by the load tests
// ---------------------------------------------------------------------------

/// Counts behind the summary line of a load test.
struct Verdict {
    acked: usize,
    replayed: usize,
    rejected: usize,
    found: usize,
    violations: usize,
}

/// Compares what the clients were told with what the database holds, and
/// panics at the first disagreement:
///
/// 1. every logical transfer got a definitive answer (none unresolved), and
///    the only refusals are `insufficient_funds`;
/// 2. every 201 body equals `GET /transfers/{id}` now;
/// 3. each logical transfer is in the log at most once: exactly once when
///    acknowledged, never when refused, and there is no row that no client
///    was told about; `ledger.idempotency_keys` maps each acknowledged key
///    to the acknowledged transfer;
/// 4. each account's balance is its opening balance plus the acknowledged
///    transfers in, minus those out;
/// 5. every invariant holds and `Ledger::verify` finds nothing.
async fn judge(
    db: &TestDatabase,
    http: &reqwest::Client,
    address: &str,
    key_prefix: &str,
    accounts: &[Uuid],
    report: &LoadReport,
) -> Verdict {
    // 1.
    let unresolved: Vec<_> = report
        .transfers
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Unresolved))
        .map(|t| &t.key)
        .collect();
    assert!(
        unresolved.is_empty(),
        "{} logical transfers never got a definitive answer: {:?}",
        unresolved.len(),
        unresolved.iter().take(5).collect::<Vec<_>>()
    );
    let mut rejected = 0;
    for transfer in &report.transfers {
        if let Outcome::Rejected { status, code } = &transfer.outcome {
            assert_eq!(
                (*status, code.as_str()),
                (422, "insufficient_funds"),
                "logical transfer {} was refused unexpectedly",
                transfer.key
            );
            rejected += 1;
        }
    }

    // 2.
    let acked: Vec<_> = report.acked().collect();
    let lookups = acked.iter().map(|(transfer, body)| async move {
        let id = body["id"].as_str().expect("a 201 body has an id");
        let now: Value = http
            .get(format!("{address}/transfers/{id}"))
            .send()
            .await
            .expect("GET /transfers/{id}")
            .json()
            .await
            .expect("a JSON body");
        // A read adds what reversals moved back (none here); the rest is the
        // row as acknowledged.
        let mut now = now;
        if let Some(read) = now.as_object_mut() {
            assert_eq!(read.remove("reversed_amount"), Some(Value::from("0.00")));
        }
        (transfer.key.clone(), (*body).clone(), now)
    });
    let found: Vec<_> = stream::iter(lookups).buffer_unordered(16).collect().await;
    for (key, acknowledged, now) in &found {
        assert_eq!(
            acknowledged,
            now,
            "transfer of {key} differs from its acknowledgement: acked {}, now {}",
            short(acknowledged),
            short(now)
        );
    }

    // 3.
    let client = db.connect().await.expect("a plain connection");
    let rows = client
        .query(
            "select metadata->>'logical', transfer_id
               from ledger.transfers
              where metadata ? 'logical'",
            &[],
        )
        .await
        .expect("logical transfers in the log");
    let mut in_log: HashMap<String, Vec<Uuid>> = HashMap::new();
    for row in rows {
        in_log.entry(row.get(0)).or_default().push(row.get(1));
    }
    let twice: Vec<_> = in_log.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "logical transfers applied more than once: {twice:?}"
    );
    let keys: HashMap<String, Option<Uuid>> = query_pairs(
        &client,
        // Stored within the namespace of the API key that sent them:
        // `<api key id>:<client key>`.
        "select split_part(idempotency_key, ':', 2), transfer_id
           from ledger.idempotency_keys
          where split_part(idempotency_key, ':', 2) like $1 || '-%'",
        &[&key_prefix],
    )
    .await;
    for transfer in &report.transfers {
        let logged = in_log.get(&transfer.key).map(Vec::as_slice).unwrap_or(&[]);
        match &transfer.outcome {
            Outcome::Acked { body, .. } => {
                let id = Uuid::from_str(body["id"].as_str().unwrap_or_default()).expect("a UUID");
                assert_eq!(
                    logged,
                    [id],
                    "acknowledged {} is not in the log once",
                    transfer.key
                );
                assert_eq!(
                    keys.get(&transfer.key),
                    Some(&Some(id)),
                    "ledger.idempotency_keys does not map {} to its transfer",
                    transfer.key
                );
            }
            _ => assert!(
                logged.is_empty(),
                "refused {} is in the log: {logged:?}",
                transfer.key
            ),
        }
    }
    assert_eq!(
        in_log.len(),
        acked.len(),
        "the log holds transfers no client was told about"
    );
    assert_eq!(keys.len(), acked.len(), "idempotency keys without a 201");

    // 4.
    let initial = Decimal::from_str(INITIAL_BALANCE).expect("a decimal");
    let mut expected: HashMap<Uuid, Decimal> = accounts.iter().map(|&a| (a, initial)).collect();
    for (transfer, body) in &acked {
        let amount =
            Decimal::from_str(body["amount"].as_str().expect("an amount")).expect("a decimal");
        *expected.entry(transfer.source).or_default() -= amount;
        *expected.entry(transfer.destination).or_default() += amount;
    }
    let balances: HashMap<Uuid, Decimal> = query_pairs(
        &client,
        "select account_id, balance from ledger.account_balances where not is_system",
        &[],
    )
    .await;
    assert_eq!(
        balances, expected,
        "balances differ from opening balances plus acknowledged transfers"
    );

    // 5.
    let violations = assert_invariants(&db.ledger()).await.violations;

    Verdict {
        acked: acked.len(),
        replayed: report
            .transfers
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Acked { replayed: true, .. }))
            .count(),
        rejected,
        found: found.len(),
        violations: violations.len(),
    }
}
