//! Operating the service safely: load shedding behind a slow database,
//! `/metrics` on a listener of its own, and API keys that never reach the
//! log. Each test drives the real `ledger`
//! binary over loopback HTTP (see `support::process`) and judges the result
//! from the database and from `/metrics`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use ledger_testkit::TestDatabase;
use prom_text_format_parser::Scrape;
use serde_json::{json, Value};
use uuid::Uuid;

use ledger_testkit::service::{
    authorized_client, http_client, open_accounts, spawn_process, LedgerProcess,
};
use reqwest::Method;

/// The service's bound on requests in flight in the shedding test.
const MAX_IN_FLIGHT: usize = 4;
/// Concurrent transfers fired at it while the database is slow.
const BURST: usize = 24;
/// How long the database stays slow (a held lock on the accounts): every
/// admitted request waits about this long.
const SLOW_FOR: Duration = Duration::from_millis(1_500);
/// A shed request is answered at once: well under the slow path.
const SHED_LATENCY_BUDGET: Duration = Duration::from_millis(500);
/// The binary under test.
const LEDGER: &str = env!("CARGO_BIN_EXE_ledger");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_beyond_the_in_flight_bound_are_shed_at_once_with_503_overloaded_and_none_is_lost()
{
    let started = Instant::now();

    // Arrange: a bound of 4, a pool larger than it (so the bound, not the
    // pool, is what fills up), timeouts longer than the slow spell.
    let db = TestDatabase::create().await.expect("a test database");
    let bound = MAX_IN_FLIGHT.to_string();
    let server = LedgerProcess::start(
        LEDGER,
        db.url(),
        &[
            ("LEDGER_MAX_IN_FLIGHT", &bound),
            ("LEDGER_POOL_SIZE", "8"),
            ("LEDGER_ACQUIRE_TIMEOUT_MS", "10000"),
            ("LEDGER_STATEMENT_TIMEOUT_MS", "10000"),
        ],
    );
    let address = server.address().to_owned();
    let http = authorized_client(Duration::from_secs(15), &db.admin_key().await);
    let accounts = open_accounts(&http, &address, 4, "1000.00").await;
    let transfers: Vec<(String, Value)> = (0..BURST)
        .map(|i| {
            let key = format!("shed-{}", Uuid::new_v4());
            let body = json!({
                "source": accounts[i % accounts.len()],
                "destination": accounts[(i + 1) % accounts.len()],
                "amount": "0.01",
                "metadata": {"logical": key},
            });
            (key, body)
        })
        .collect();

    // Act: make the database slow (every transfer's first read of the
    // accounts waits for the lock), fire the burst, look at the service
    // while it is saturated, then let the database go.
    let locker = db.connect().await.expect("a plain connection");
    locker
        .batch_execute("begin; lock table ledger.accounts in access exclusive mode")
        .await
        .expect("the lock");
    let slow_since = Instant::now();
    let burst = tokio::spawn(send_all(
        http.clone(),
        address.clone(),
        transfers.clone(),
        BURST,
    ));
    let saturated = wait_for_gauge(
        &http,
        &address,
        "ledger_http_requests_in_flight",
        MAX_IN_FLIGHT as f64,
    )
    .await;
    // The probes and the metrics are never shed, and answer at once.
    for path in ["/health", "/ready", "/metrics"] {
        let asked = Instant::now();
        let status = http
            .get(format!("{address}{path}"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200), "{path} while saturated");
        assert!(
            asked.elapsed() < SHED_LATENCY_BUDGET,
            "{path} took {:?} while saturated",
            asked.elapsed()
        );
    }
    tokio::time::sleep(SLOW_FOR.saturating_sub(slow_since.elapsed())).await;
    locker.batch_execute("rollback").await.expect("unlock");
    let answers = burst.await.expect("the burst");

    // Assert: each was either applied (after the slow spell) or shed at
    // once with 503 overloaded and Retry-After, never anything else.
    let mut shed = Vec::new();
    let mut applied = 0;
    for (key, answer) in &answers {
        match (answer.status, answer.code.as_deref()) {
            (201, _) => {
                applied += 1;
                assert!(
                    answer.latency >= SLOW_FOR / 2,
                    "{key} was applied in {:?}, before the database was fast again",
                    answer.latency
                );
            }
            (503, Some("overloaded")) => {
                assert_eq!(answer.retry_after.as_deref(), Some("1"), "{key}");
                assert_eq!(
                    answer.content_type.as_deref(),
                    Some("application/problem+json"),
                    "{key}"
                );
                assert!(
                    answer.latency < SHED_LATENCY_BUDGET,
                    "{key} was shed after {:?} (budget {SHED_LATENCY_BUDGET:?})",
                    answer.latency
                );
                shed.push(key.clone());
            }
            _ => panic!("{key} got {answer:?}"),
        }
    }
    assert!((1..=MAX_IN_FLIGHT).contains(&applied), "{applied} applied");
    assert!(!shed.is_empty(), "nothing was shed");
    let latencies = |status: u16| {
        answers
            .iter()
            .filter(move |(_, a)| a.status == status)
            .map(|(_, a)| a.latency)
    };
    let max_shed_latency = latencies(503).max().unwrap_or_default();
    let min_applied_latency = latencies(201).min().unwrap_or_default();

    // A shed request did nothing: retried with its key (no more at once
    // than the bound), it is applied, and not as a replay.
    let retries: Vec<_> = transfers
        .iter()
        .filter(|(key, _)| shed.contains(key))
        .cloned()
        .collect();
    for (key, answer) in send_all(http.clone(), address.clone(), retries, MAX_IN_FLIGHT).await {
        assert_eq!(answer.status, 201, "retry of {key}: {answer:?}");
        assert!(!answer.replayed, "{key} was not applied before");
    }
    let client = db.connect().await.expect("a plain connection");
    let in_log: i64 = client
        .query_one(
            "select count(distinct metadata->>'logical') from ledger.transfers
              where metadata->>'logical' like 'shed-%'",
            &[],
        )
        .await
        .expect("the burst's transfers")
        .get(0);
    let rows: i64 = client
        .query_one(
            "select count(*) from ledger.transfers where metadata->>'logical' like 'shed-%'",
            &[],
        )
        .await
        .expect("the burst's rows")
        .get(0);
    assert_eq!((in_log, rows), (BURST as i64, BURST as i64));
    let report = ledger_testkit::assert_invariants(&db.ledger()).await;

    // Nothing is left in flight, and every shed request was counted.
    let metrics = scrape(&http, &address).await;
    assert_eq!(metrics.get("ledger_http_requests_in_flight"), Some(&0.0));
    assert_eq!(
        metrics.get("ledger_http_requests_shed_total"),
        Some(&(shed.len() as f64))
    );
    println!(
        "overload: {:.1} s, bound {MAX_IN_FLIGHT}, burst of {BURST} behind a database slow for \
         {} ms: {applied} applied (fastest after {} ms), {} shed with 503 overloaded (slowest \
         answer {} ms, budget {} ms), in flight at saturation {saturated}, probes answered \
         while saturated; shed ones retried: all applied once; in flight after: 0, violations: {}",
        started.elapsed().as_secs_f64(),
        SLOW_FOR.as_millis(),
        min_applied_latency.as_millis(),
        shed.len(),
        max_shed_latency.as_millis(),
        SHED_LATENCY_BUDGET.as_millis(),
        report.violations.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_also_served_on_their_own_listener_when_one_is_configured() {
    let db = TestDatabase::create().await.expect("a test database");
    // A free port, given back just before the server takes it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = LedgerProcess::start(LEDGER, db.url(), &[("LEDGER_METRICS_ADDR", &metrics_addr)]);
    // Its own listener needs no key; the main one needs the metrics scope.
    let anonymous = http_client(Duration::from_secs(10));
    let metrics_key = db.api_key(ledger_domain::Scope::Metrics, None).await;
    let http = authorized_client(Duration::from_secs(10), &metrics_key);

    let own = scrape(&anonymous, &format!("http://{metrics_addr}")).await;
    let main = scrape(&http, server.address()).await;
    let refused = anonymous
        .get(format!("{}/metrics", server.address()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        refused.status().as_u16(),
        401,
        "the main listener wants a key"
    );

    assert_eq!(own.get("ledger_build_info"), Some(&1.0));
    assert_eq!(main.get("ledger_build_info"), Some(&1.0));
    // It serves the metrics and nothing else.
    let api = anonymous
        .get(format!("http://{metrics_addr}/accounts"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(api.status().as_u16(), 404);
}

/// What one request got.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    replayed: bool,
    latency: Duration,
}

/// Sends the transfers, `concurrency` at a time, each with its key; returns
/// the answers.
async fn send_all(
    http: reqwest::Client,
    address: String,
    transfers: Vec<(String, Value)>,
    concurrency: usize,
) -> Vec<(String, Answer)> {
    let requests = transfers.into_iter().map(|(key, body)| {
        let request = http
            .post(format!("{address}/transfers"))
            .header("Idempotency-Key", &key)
            .json(&body);
        async move {
            let sent = Instant::now();
            let response = request
                .send()
                .await
                .unwrap_or_else(|err| panic!("{key}: no answer: {err}"));
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let status = response.status().as_u16();
            let retry_after = header("retry-after");
            let content_type = header("content-type");
            let replayed = header("idempotent-replayed").as_deref() == Some("true");
            let latency = sent.elapsed();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let answer = Answer {
                status,
                code: body["code"].as_str().map(str::to_owned),
                retry_after,
                content_type,
                replayed,
                latency,
            };
            (key, answer)
        }
    });
    stream::iter(requests)
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// The unlabelled samples of one scrape of `{address}/metrics`, by name.
async fn scrape(http: &reqwest::Client, address: &str) -> HashMap<String, f64> {
    let response = http
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("a text body");
    let scrape = Scrape::parse(&text).expect("the Prometheus text format");
    scrape
        .metrics
        .into_iter()
        .filter_map(|metric| {
            let sample = metric.samples.first()?;
            let name = metric.name.clone();
            let value = sample.value.value.as_f64();
            Some((name, value))
        })
        .collect()
}

/// Polls `/metrics` until gauge `name` reads `value` (at most 5 s); returns
/// the value read last.
async fn wait_for_gauge(http: &reqwest::Client, address: &str, name: &str, value: f64) -> f64 {
    let started = Instant::now();
    loop {
        let read = scrape(http, address)
            .await
            .get(name)
            .copied()
            .unwrap_or(0.0);
        if read == value || started.elapsed() > Duration::from_secs(5) {
            assert_eq!(read, value, "{name} did not reach {value} within 5 s");
            return read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_key_is_shown_once_and_never_reaches_the_log() {
    let app = spawn_process(LEDGER, &[]).await;
    let key = app.post("/keys", &json!({"scope": "admin"})).await;
    key.expect_status(201);
    let secret = key.str("key").to_owned();
    assert!(secret.starts_with("lk_") && secret.len() == 67, "{secret}");
    let listed = app.get("/keys").await;
    assert!(
        !listed.body.to_string().contains(&secret[12..]),
        "listing shows no secret"
    );

    // Used, refused as a bad key, and revoked: none of it logs the secret.
    app.send_as(Some(&secret), Method::GET, "/accounts", None)
        .await
        .expect_status(200);
    let wrong = format!("{}0", &secret[..66]);
    app.send_as(Some(&wrong), Method::GET, "/accounts", None)
        .await
        .expect_problem(401, "unauthorized");
    app.delete(&format!("/keys/{}", key.str("id")))
        .await
        .expect_status(200);
    app.send_as(Some(&secret), Method::GET, "/accounts", None)
        .await
        .expect_problem(401, "unauthorized");

    let process = app.process().expect("a process");
    for needle in [
        &secret[3..],
        &wrong[3..],
        &app.admin_key.clone().unwrap_or_default()[3..],
    ] {
        assert!(
            process.log_lines_containing(&needle[..24]).is_empty(),
            "a key reached the log"
        );
    }
}
