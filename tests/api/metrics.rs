//! GET /metrics: Prometheus text, parsed with a Prometheus parser; counters
//! and histograms move by exactly the requests made, and labels carry route
//! templates, never raw paths.
//!
//! `/metrics` is not part of the API document (like `/openapi.json`), so it
//! is fetched with the plain client rather than the contract-checking one.

use std::collections::HashMap;

use ledger_testkit::service::{spawn_app, TestApp};
use prom_text_format_parser::{Scrape, Type, ValueType};
use serde_json::json;

/// One sample line: its full name (`…_bucket`, `…_sum`, `…_count` for a
/// histogram), its labels and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// One scrape of `/metrics`, parsed.
struct Metrics {
    samples: Vec<Sample>,
    families: HashMap<String, Type>,
}

impl Metrics {
    /// A scrape taken once the service knows its final horizon (the test
    /// server's ticker runs every 50 ms; a fresh database has one after its
    /// first ticks), or after 10 s.
    async fn scrape_once_final(app: &TestApp) -> Self {
        let started = std::time::Instant::now();
        loop {
            let metrics = Self::scrape(app).await;
            if metrics.has("ledger_horizon_lag_seconds") || started.elapsed().as_secs() >= 10 {
                return metrics;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn scrape(app: &TestApp) -> Self {
        let response = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = response.text().await.expect("a text body");
        let scrape = Scrape::parse(&text)
            .unwrap_or_else(|err| panic!("not the Prometheus text format: {err:?}\n{text}"));
        let mut samples = Vec::new();
        let mut families = HashMap::new();
        for metric in scrape.metrics {
            families.insert(metric.name.clone(), metric.kind);
            for sample in metric.samples {
                let suffix = match (metric.kind, sample.value.value_type) {
                    (Type::Histogram, ValueType::Sample) => "_bucket",
                    (_, ValueType::Sum) => "_sum",
                    (_, ValueType::Count) => "_count",
                    _ => "",
                };
                samples.push(Sample {
                    name: format!("{}{suffix}", metric.name),
                    labels: sample
                        .labels
                        .iter()
                        .map(|label| (label.key.clone(), label.value.clone()))
                        .collect(),
                    value: sample.value.value.as_f64(),
                });
            }
        }
        Self { samples, families }
    }

    /// The samples named `name` whose labels include all of `labels`.
    fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
        })
    }

    /// The sum of the matching samples; 0 when there is none (a series
    /// appears with its first event).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels).map(|sample| sample.value).sum()
    }

    /// Whether some sample named `name` exists.
    fn has(&self, name: &str) -> bool {
        self.samples(name, &[]).next().is_some()
    }

    /// The declared type of a metric family.
    fn kind(&self, family: &str) -> Option<Type> {
        self.families.get(family).copied()
    }
}

/// The labels of one request series: method, route template, status.
type RequestLabels<'a> = [(&'a str, &'a str); 3];

fn request_labels<'a>(method: &'a str, route: &'a str, status: &'a str) -> RequestLabels<'a> {
    [("method", method), ("route", route), ("status", status)]
}

#[tokio::test]
async fn request_counters_and_latency_histograms_move_by_the_requests_made_per_route_template() {
    // Arrange
    let app = spawn_app().await;
    let account = app.funded_account("10.00").await;
    let missing = "01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b";
    let before = Metrics::scrape(&app).await;

    // Act: 3 reads of an account, 2 of a missing one, 1 open, 1 stray path.
    for _ in 0..3 {
        app.get(&format!("/accounts/{account}"))
            .await
            .expect_status(200);
    }
    for _ in 0..2 {
        app.get(&format!("/accounts/{missing}"))
            .await
            .expect_problem(404, "account_not_found");
    }
    app.post("/accounts", &json!({})).await.expect_status(201);
    app.get(&format!("/no-such-route/{account}"))
        .await
        .expect_problem(404, "not_found");
    let after = Metrics::scrape(&app).await;

    // Assert: each series moved by exactly its requests.
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        after.value(metric, labels) - before.value(metric, labels)
    };
    let requests = "ledger_http_requests_total";
    let cases: [(RequestLabels, f64, &str); 5] = [
        (request_labels("GET", "/accounts/{id}", "200"), 3.0, "reads"),
        (
            request_labels("GET", "/accounts/{id}", "404"),
            2.0,
            "reads of a missing account",
        ),
        (request_labels("POST", "/accounts", "201"), 1.0, "the open"),
        (
            request_labels("GET", "unmatched", "404"),
            1.0,
            "a path no route matches",
        ),
        (
            request_labels("GET", "/metrics", "200"),
            1.0,
            "the first scrape (a scrape is counted once answered)",
        ),
    ];
    for (labels, expected, what) in cases {
        assert_eq!(moved(requests, &labels), expected, "{what}: {labels:?}");
        assert_eq!(
            moved("ledger_http_request_duration_seconds_count", &labels),
            expected,
            "histogram count of {what}: {labels:?}"
        );
    }
    let reads = request_labels("GET", "/accounts/{id}", "200");
    assert!(moved("ledger_http_request_duration_seconds_sum", &reads) > 0.0);
    assert_eq!(
        after.kind("ledger_http_request_duration_seconds"),
        Some(Type::Histogram)
    );
    let with_le = |le| {
        let mut labels = reads.to_vec();
        labels.push(("le", le));
        after.value("ledger_http_request_duration_seconds_bucket", &labels)
    };
    assert_eq!(
        with_le("+Inf"),
        after.value("ledger_http_request_duration_seconds_count", &reads),
        "the +Inf bucket holds every request"
    );
    assert!(with_le("0.0005") <= with_le("10"), "buckets are cumulative");
    // The missing account is a refusal of the store's, by a rule.
    assert_eq!(
        moved("ledger_store_errors_total", &[("kind", "refused")]),
        2.0
    );

    // No label anywhere carries a raw path: not an id, not the stray path.
    for sample in &after.samples {
        for (key, value) in &sample.labels {
            assert!(
                !value.contains(&account) && !value.contains(missing) && !value.contains("no-such"),
                "{} has a raw path in its label {key}={value}",
                sample.name
            );
        }
    }
}

#[tokio::test]
async fn metrics_show_the_build_the_pool_the_group_commit_and_the_horizon() {
    let app = spawn_app().await;
    let source = app.funded_account("10.00").await;
    let destination = app.funded_account("0.00").await;
    app.transfer(&source, &destination, json!("1.00"))
        .await
        .expect_status(201);
    // The test server's horizon ticker runs every 50 ms; a fresh database
    // has a final horizon after its first ticks.
    let metrics = Metrics::scrape_once_final(&app).await;

    let build = metrics
        .samples("ledger_build_info", &[])
        .next()
        .expect("ledger_build_info");
    assert_eq!(
        build.labels.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(build
        .labels
        .get("git_sha")
        .is_some_and(|sha| !sha.is_empty()));
    assert_eq!(metrics.value("ledger_build_info", &[]), 1.0);
    // spawn_app's pool holds 16 connections.
    assert_eq!(metrics.value("ledger_db_pool_max_connections", &[]), 16.0);
    assert!(metrics.value("ledger_db_pool_connections", &[]) >= 1.0);
    assert_eq!(metrics.value("ledger_db_pool_waiting_requests", &[]), 0.0);
    assert!(metrics.has("ledger_db_pool_connections_in_use"));
    // Nothing but the scrape is in flight, and the scrape does not count.
    assert_eq!(metrics.value("ledger_http_requests_in_flight", &[]), 0.0);
    assert_eq!(metrics.value("ledger_http_max_in_flight", &[]), 1024.0);
    assert_eq!(metrics.value("ledger_http_requests_shed_total", &[]), 0.0);
    // One opening with a balance (a deposit) and one transfer: two legs
    // (opening at zero writes no transfer).
    assert_eq!(
        metrics.kind("ledger_group_commit_group_size"),
        Some(Type::Histogram)
    );
    assert_eq!(
        metrics.value("ledger_group_commit_group_size_sum", &[]),
        2.0
    );
    let groups = metrics.value("ledger_group_commit_group_size_count", &[]);
    assert!((1.0..=2.0).contains(&groups), "{groups} groups");
    assert_eq!(
        metrics.value("ledger_group_commit_group_size_bucket", &[("le", "+Inf")]),
        groups
    );
    assert!(metrics.has("ledger_store_lost_races_total"));
    let lag = metrics.value("ledger_horizon_lag_seconds", &[]);
    assert!(
        metrics.has("ledger_horizon_lag_seconds") && (0.0..5.0).contains(&lag),
        "horizon lag {lag} s"
    );
}

#[tokio::test]
async fn metrics_are_not_part_of_the_api_document() {
    let app = spawn_app().await;
    assert!(app.document()["paths"].get("/metrics").is_none());
}

#[tokio::test]
async fn the_sample_dashboard_queries_only_metrics_the_service_serves() {
    // Arrange: every kind of series once (a request, a store refusal, a
    // group, a horizon).
    let app = spawn_app().await;
    app.funded_account("10.00").await;
    app.get("/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b")
        .await
        .expect_problem(404, "account_not_found");
    let metrics = Metrics::scrape_once_final(&app).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-ledger.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard"))
            .expect("the dashboard is JSON");

    // Act: every metric name in the panels' queries.
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("ledger_") {
                    names.push(word.to_owned());
                }
            }
        }
    }

    // Assert
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            metrics.has(&name),
            "the dashboard queries {name}, which /metrics lacks"
        );
    }
}
