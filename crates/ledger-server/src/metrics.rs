//! `GET /metrics`: the service's metrics in the Prometheus text format.
//!
//! Counted per request ([`observe`]): requests and their latency by method,
//! route *template* (`/accounts/{id}`, never the raw path: one series per
//! account id would grow without bound) and status, and failures of the
//! store by kind. Read on each scrape from where they already live, so
//! nothing is counted twice: requests in flight and shed
//! ([`crate::admission`]), the connection pool (deadpool's own status), the
//! horizon's lag, and the group commit's counters
//! ([`ledger_store::GroupCommitMetrics`]).
//!
//! Each [`Metrics`] has a recorder of its own rather than the process-wide
//! one of the `metrics` crate: the black-box tests run many servers in one
//! process, and each must see only its own requests.
//!
//! The names are listed, one line each, in the README ("Metrics").

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{web, HttpResponse};
use ledger_domain::Scope;
use ledger_store::{GroupCommitStats, Ledger};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
    with_local_recorder, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use utoipa::openapi::path::HttpMethod;

use crate::admission::InFlight;
use crate::auth;
use crate::error::ApiError;
use crate::handlers::AppState;
use crate::routes;

/// Where the metrics are served, on the main listener and on
/// `LEDGER_METRICS_ADDR`.
pub const PATH: &str = "/metrics";

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `route` label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

const BUILD_INFO: &str = "ledger_build_info";
const REQUESTS: &str = "ledger_http_requests_total";
const REQUEST_DURATION: &str = "ledger_http_request_duration_seconds";
const IN_FLIGHT: &str = "ledger_http_requests_in_flight";
const MAX_IN_FLIGHT: &str = "ledger_http_max_in_flight";
const SHED: &str = "ledger_http_requests_shed_total";
const STORE_ERRORS: &str = "ledger_store_errors_total";
const POOL_MAX: &str = "ledger_db_pool_max_connections";
const POOL_OPEN: &str = "ledger_db_pool_connections";
const POOL_IN_USE: &str = "ledger_db_pool_connections_in_use";
const POOL_WAITING: &str = "ledger_db_pool_waiting_requests";
const HORIZON_LAG: &str = "ledger_horizon_lag_seconds";
const LOST_RACES: &str = "ledger_store_lost_races_total";
const GROUP_SIZE: &str = "ledger_group_commit_group_size";
const GROUP_REFUSED: &str = "ledger_group_commit_refused_groups_total";
const GROUP_QUEUE_FULL: &str = "ledger_group_commit_queue_full_total";
const GROUP_QUEUE_WAIT: &str = "ledger_group_commit_queue_wait_seconds_total";
const GROUP_BUSY: &str = "ledger_group_commit_group_seconds_total";
const REPLICA_UP: &str = "ledger_replica_up";
const REPLICA_LAG: &str = "ledger_replica_lag_seconds";
const REPLICA_READS: &str = "ledger_replica_reads_total";
const PRIMARY_FALLBACKS: &str = "ledger_replica_fallbacks_total";

/// Request latency buckets, in seconds: from a cached read (≈ 0.2 ms) to the
/// statement timeout (5 s) and beyond.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The upper bounds of [`ledger_store::GroupCommitMetrics::group_sizes`]'s
/// buckets (1, 2–3, 4–7, …, 32–63, 64 and more).
const GROUP_SIZE_BOUNDS: [&str; 7] = ["1", "3", "7", "15", "31", "63", "+Inf"];

/// Latency samples wait in the recorder until they are folded into their
/// buckets; folding them every this many requests (and on every scrape)
/// bounds that memory when nobody scrapes.
const UPKEEP_EVERY_REQUESTS: u64 = 4_096;
const _: () = assert!(UPKEEP_EVERY_REQUESTS.is_power_of_two());

/// The service's metrics: a Prometheus recorder of its own.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    requests: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A recorder with the latency buckets, the metrics described, and the
    /// build info set.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(REQUEST_DURATION.to_owned()),
                LATENCY_BUCKETS_S,
            )
            .expect("the latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, describe);
        with_local_recorder(&recorder, || {
            gauge!(
                BUILD_INFO,
                "version" => env!("CARGO_PKG_VERSION"),
                "git_sha" => env!("LEDGER_GIT_SHA"),
            )
            .set(1.0);
        });
        Self {
            recorder,
            handle,
            requests: AtomicU64::new(0),
        }
    }

    /// Counts one request and its latency.
    pub fn record_request(&self, method: &'static str, route: String, status: u16, seconds: f64) {
        let status = status.to_string();
        with_local_recorder(&self.recorder, || {
            let labels = [
                ("method", method.to_owned()),
                ("route", route),
                ("status", status),
            ];
            counter!(REQUESTS, &labels).increment(1);
            histogram!(REQUEST_DURATION, &labels).record(seconds);
        });
        let requests = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        // A power of two: a mask instead of `%` (and of `is_multiple_of`,
        // newer than the workspace's rust-version).
        if requests & (UPKEEP_EVERY_REQUESTS - 1) == 0 {
            self.handle.run_upkeep();
        }
    }

    /// Counts one failure of the store, by [`ledger_store::StoreError::kind`].
    pub fn record_store_error(&self, kind: &'static str) {
        with_local_recorder(&self.recorder, || {
            counter!(STORE_ERRORS, "kind" => kind).increment(1);
        });
    }

    /// The metrics now, in the text format: what was counted, plus what is
    /// read now from the ledger and the in-flight bound.
    pub fn render(&self, ledger: &Ledger, in_flight: &InFlight) -> String {
        let pool = ledger.pool_status();
        let group = ledger.group_commit_metrics().snapshot();
        let horizon_lag = ledger.last_seen_final_horizon().map(|horizon| {
            // The horizon is the database's clock; a few microseconds ahead
            // of ours reads as no lag, not a negative one.
            let lag = chrono::Utc::now() - horizon;
            (lag.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0)
        });
        with_local_recorder(&self.recorder, || {
            gauge!(IN_FLIGHT).set(in_flight.current() as f64);
            gauge!(MAX_IN_FLIGHT).set(in_flight.max() as f64);
            counter!(SHED).absolute(in_flight.shed());
            gauge!(POOL_MAX).set(pool.max_size as f64);
            gauge!(POOL_OPEN).set(pool.open as f64);
            gauge!(POOL_IN_USE).set(pool.in_use as f64);
            gauge!(POOL_WAITING).set(pool.waiting as f64);
            if let Some(lag) = horizon_lag {
                gauge!(HORIZON_LAG).set(lag);
            }
            counter!(LOST_RACES, "writer" => "group_commit").absolute(group.lost_races);
            counter!(LOST_RACES, "writer" => "batch").absolute(ledger.batch_lost_races());
            counter!(GROUP_REFUSED).absolute(group.refused_groups);
            counter!(GROUP_QUEUE_FULL).absolute(group.queue_full);
            record_routing(&ledger.routing_status());
        });
        self.handle.run_upkeep();
        let mut text = self.handle.render();
        render_group_commit(&mut text, &group);
        text
    }
}

/// Each replica's state and reads, and the reads that could have gone to
/// a replica but went to the primary, by why.
fn record_routing(status: &ledger_store::RoutingStatus) {
    for replica in &status.replicas {
        let name = replica.name.clone();
        gauge!(REPLICA_UP, "replica" => name.clone()).set(if replica.up { 1.0 } else { 0.0 });
        if let Some(lag_ms) = replica.lag_ms {
            gauge!(REPLICA_LAG, "replica" => name.clone()).set(lag_ms as f64 / 1e3);
        }
        for (kind, served) in ledger_store::ReadKind::ALL.iter().zip(replica.served) {
            counter!(REPLICA_READS, "replica" => name.clone(), "read" => kind.name())
                .absolute(served);
        }
    }
    if status.replicas.is_empty() {
        return;
    }
    for (kind, fallbacks) in ledger_store::ReadKind::ALL.iter().zip(status.fallbacks) {
        for (why, count) in ledger_store::Fallback::ALL.iter().zip(fallbacks) {
            counter!(PRIMARY_FALLBACKS, "read" => kind.name(), "reason" => why.name())
                .absolute(count);
        }
    }
}

fn describe() {
    describe_gauge!(
        REPLICA_UP,
        "1 while a replica (LEDGER_REPLICA_URLS) answers its checks, 0 while its reads go elsewhere."
    );
    describe_gauge!(
        REPLICA_LAG,
        Unit::Seconds,
        "How far behind the primary a replica is: the age of the newest primary WAL position \
         (sampled every 50 ms) it has replayed; 0 when it has the newest."
    );
    describe_counter!(
        REPLICA_READS,
        "Reads a replica answered, by replica and read: final (as-of, by default), min_position \
         (Ledger-Min-Position), stale (consistency=replica)."
    );
    describe_counter!(
        PRIMARY_FALLBACKS,
        "Reads that could have gone to a replica but the primary answered, by read and reason: \
         no_replica, behind (position not replayed within LEDGER_REPLICA_WAIT_MS), lagging, \
         failed, not_final."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say which build is running (version, git_sha)."
    );
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response, by method, route template and status."
    );
    describe_gauge!(
        IN_FLIGHT,
        "Requests in flight now that count against LEDGER_MAX_IN_FLIGHT (all but /health, \
         /ready and /metrics)."
    );
    describe_gauge!(
        MAX_IN_FLIGHT,
        "LEDGER_MAX_IN_FLIGHT: the bound on requests in flight."
    );
    describe_counter!(
        SHED,
        "Requests answered 503 overloaded at once because LEDGER_MAX_IN_FLIGHT were in flight."
    );
    describe_counter!(
        STORE_ERRORS,
        "Requests the store failed, by kind: refused (a ledger rule), unavailable, internal, \
         contention, queue_full, idempotency_in_flight, invalid_cursor, config."
    );
    describe_gauge!(POOL_MAX, "Most database connections the pool may hold.");
    describe_gauge!(POOL_OPEN, "Database connections open now, idle or in use.");
    describe_gauge!(
        POOL_IN_USE,
        "Database connections handed out to requests now."
    );
    describe_gauge!(
        POOL_WAITING,
        "Requests waiting for a database connection now."
    );
    describe_gauge!(
        HORIZON_LAG,
        Unit::Seconds,
        "Now minus the final horizon last seen: how far behind real time as-of reads become final."
    );
    describe_counter!(
        LOST_RACES,
        "Sequence races lost to another writer, each retried: by the group commit (transfers, \
         deposits, withdrawals, openings) and by batches."
    );
    describe_counter!(
        GROUP_REFUSED,
        "Groups the database refused as a whole, then applied leg by leg."
    );
    describe_counter!(
        GROUP_QUEUE_FULL,
        "Writes answered 503 unavailable at once because their source's queue was full."
    );
}

/// Appends the group commit's histogram and time totals, read from its own
/// counters: the store buckets group sizes itself (powers of two), which the
/// recorder cannot take as they are, so they are written here.
fn render_group_commit(text: &mut String, group: &GroupCommitStats) {
    let seconds = |us: u64| us as f64 / 1e6;
    // Writing to a String does not fail.
    let _ = writeln!(
        text,
        "# HELP {GROUP_SIZE} Legs (writes) per group the group commit applied in one transaction.\n\
         # TYPE {GROUP_SIZE} histogram"
    );
    let mut cumulative = 0;
    for (bound, count) in GROUP_SIZE_BOUNDS.iter().zip(group.group_sizes) {
        cumulative += count;
        let _ = writeln!(text, "{GROUP_SIZE}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(text, "{GROUP_SIZE}_sum {}", group.legs);
    let _ = writeln!(text, "{GROUP_SIZE}_count {}", group.groups);
    let _ = writeln!(
        text,
        "\n# HELP {GROUP_QUEUE_WAIT} Time writes waited in their source's queue before their group began.\n\
         # TYPE {GROUP_QUEUE_WAIT} counter\n\
         {GROUP_QUEUE_WAIT} {}\n\
         \n# HELP {GROUP_BUSY} Time the group commit spent applying groups.\n\
         # TYPE {GROUP_BUSY} counter\n\
         {GROUP_BUSY} {}",
        seconds(group.queue_wait_us),
        seconds(group.group_us),
    );
}

/// The `method` label: the standard methods by name, any other as `other`
/// (actix accepts any token as a method, and a label must stay bounded).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Middleware: counts every request by method, route template and status,
/// with its latency, and the store failure behind an error response.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let Some(metrics) = req
        .app_data::<Data<AppState>>()
        .map(|state| Arc::clone(&state.metrics))
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let method = method_label(req.method());
    // The resource's pattern, found from the path alone: also for a request
    // shed or refused before routing. Never the raw path.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let result = next.call(req).await;
    let (status, store_error) = match &result {
        Ok(response) => (
            response.status(),
            response
                .response()
                .error()
                .and_then(|err| err.as_error::<ApiError>())
                .and_then(ApiError::store_error),
        ),
        Err(err) => (
            err.as_response_error().status_code(),
            err.as_error::<ApiError>().and_then(ApiError::store_error),
        ),
    };
    metrics.record_request(
        method,
        route,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    if let Some(kind) = store_error {
        metrics.record_store_error(kind);
    }
    result.map(ServiceResponse::map_into_boxed_body)
}

/// `GET /metrics`, registered like the other routes outside the API
/// document. On the main listener it needs a key with the `metrics` scope
/// (or `admin`); on a listener of its own (`LEDGER_METRICS_ADDR`, meant for
/// an internal address a scraper reaches) `needs` is `None`: no key.
pub fn resource(needs: Option<Scope>) -> actix_web::Resource {
    let route = routes::actix_route(&HttpMethod::Get).to(serve);
    let route = match needs {
        Some(scope) => route.wrap(from_fn(move |req, next| auth::authorize(scope, req, next))),
        None => route,
    };
    routes::resource(PATH, vec![(HttpMethod::Get, route)])
}

async fn serve(state: web::Data<AppState>) -> HttpResponse {
    let text = state.metrics.render(&state.ledger, &state.in_flight);
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_sizes_render_as_a_cumulative_histogram() {
        let stats = GroupCommitStats {
            groups: 4,
            legs: 9,
            group_sizes: [2, 1, 0, 1, 0, 0, 0],
            ..GroupCommitStats::default()
        };
        let mut text = String::new();
        render_group_commit(&mut text, &stats);
        for line in [
            "ledger_group_commit_group_size_bucket{le=\"1\"} 2",
            "ledger_group_commit_group_size_bucket{le=\"3\"} 3",
            "ledger_group_commit_group_size_bucket{le=\"15\"} 4",
            "ledger_group_commit_group_size_bucket{le=\"+Inf\"} 4",
            "ledger_group_commit_group_size_sum 9",
            "ledger_group_commit_group_size_count 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let odd = Method::from_bytes(b"FROBNICATE").expect("a token");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::GET), "GET");
    }
}
