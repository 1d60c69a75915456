//! The run's own record of every request: when it started, how long the full
//! response took (µs, body included), what it was and how it ended. goose
//! keeps its own metrics for its report; this record gives exact
//! percentiles, a per-second series for the plot, the split between expected
//! domain answers and real errors, and the count of rows the ledger must
//! have written.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `POST /accounts`.
    Open,
    /// `POST /transfers`.
    Transfer,
    /// `GET /accounts/{id}/balance`.
    Balance,
    /// `GET /accounts/{id}/balance?at=…`.
    BalanceAt,
    /// `GET /transfers/{id}/proof`.
    Proof,
    /// `GET /accounts/{id}`.
    Account,
    /// `POST /batches`.
    Batch,
    /// `POST /holds`.
    Hold,
    /// `POST /holds/{id}/capture`.
    Capture,
    /// `POST /holds/{id}/void`.
    Void,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Open,
        Kind::Transfer,
        Kind::Balance,
        Kind::BalanceAt,
        Kind::Proof,
        Kind::Account,
        Kind::Batch,
        Kind::Hold,
        Kind::Capture,
        Kind::Void,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Open => "open",
            Kind::Transfer => "transfer",
            Kind::Balance => "balance",
            Kind::BalanceAt => "balance_at",
            Kind::Proof => "proof",
            Kind::Account => "account",
            Kind::Batch => "batch",
            Kind::Hold => "hold",
            Kind::Capture => "capture",
            Kind::Void => "void",
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// A non-2xx that is a correct answer of the ledger in this scenario
    /// (e.g. `insufficient_funds` on a hot account).
    Expected,
    /// Anything else: 5xx, a timeout, a refused connection, an unexpected
    /// 4xx.
    Error,
}

#[derive(Clone, Copy)]
struct Sample {
    /// Since the recorder's epoch.
    start_us: u64,
    latency_us: u32,
    kind: Kind,
    outcome: Outcome,
}

/// Collects every request of the load phase. Shared by all users.
pub struct Recorder {
    epoch: Instant,
    samples: Mutex<Vec<Sample>>,
    expected: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    error_examples: Mutex<Vec<String>>,
    /// Rows the ledger must have appended: 201s of transfers and deposits,
    /// plus accounts opened with a positive initial balance.
    created_rows: AtomicU64,
    /// When the last user started: the steady state begins.
    steady_from: OnceLock<Instant>,
}

/// Error descriptions kept verbatim for the final report.
const MAX_ERROR_EXAMPLES: usize = 20;

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            samples: Mutex::new(Vec::with_capacity(1 << 16)),
            expected: Mutex::default(),
            errors: Mutex::default(),
            error_examples: Mutex::default(),
            created_rows: AtomicU64::new(0),
            steady_from: OnceLock::new(),
        }
    }

    /// Records one request that started at `started`.
    pub fn record(&self, kind: Kind, started: Instant, outcome: Outcome) {
        let sample = Sample {
            start_us: micros(started.saturating_duration_since(self.epoch)),
            latency_us: u32::try_from(micros(started.elapsed())).unwrap_or(u32::MAX),
            kind,
            outcome,
        };
        if let Ok(mut samples) = self.samples.lock() {
            samples.push(sample);
        }
    }

    /// Counts an expected domain answer under its label (e.g. `422 insufficient_funds`).
    pub fn expected(&self, label: String) {
        if let Ok(mut map) = self.expected.lock() {
            *map.entry(label).or_default() += 1;
        }
    }

    /// Counts a real error under its label and keeps the first few details.
    pub fn error(&self, label: String, detail: String) {
        if let Ok(mut map) = self.errors.lock() {
            *map.entry(label).or_default() += 1;
        }
        if let Ok(mut examples) = self.error_examples.lock() {
            if examples.len() < MAX_ERROR_EXAMPLES {
                eprintln!("ledger-load: real error: {detail}");
                examples.push(detail);
            }
        }
    }

    /// One more row the ledger must have appended.
    pub fn created_row(&self) {
        self.created_rows.fetch_add(1, Ordering::Relaxed);
    }

    /// Rows the ledger must have appended so far.
    pub fn created_rows(&self) -> u64 {
        self.created_rows.load(Ordering::Relaxed)
    }

    /// Marks the start of the steady state (the first call wins).
    pub fn mark_steady(&self) {
        let _ = self.steady_from.set(Instant::now());
    }

    /// Real errors so far.
    pub fn error_count(&self) -> u64 {
        self.errors.lock().map_or(0, |map| map.values().sum())
    }

    /// The figures of the run: the steady-state window is `run_time` from
    /// the moment the last user started (goose's own run time) less its first
    /// `warmup`, or the whole run if that moment never came.
    pub fn summarize(&self, run_time: Duration, warmup: Duration) -> Summary {
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let end_us = micros(self.epoch.elapsed());
        let (window_start_us, window_end_us) = match self.steady_from.get() {
            Some(at) => {
                let start = micros(at.saturating_duration_since(self.epoch));
                let end = (start + micros(run_time)).min(end_us);
                ((start + micros(warmup)).min(end), end)
            }
            None => (0, end_us),
        };
        let in_window: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.start_us >= window_start_us && s.start_us < window_end_us)
            .collect();
        let window_secs = (window_end_us.saturating_sub(window_start_us)) as f64 / 1e6;

        let by_kind = Kind::ALL
            .iter()
            .filter_map(|&kind| {
                let of_kind: Vec<Sample> = in_window
                    .iter()
                    .copied()
                    .filter(|s| s.kind == kind)
                    .collect();
                (!of_kind.is_empty())
                    .then(|| (kind.label().to_owned(), Figures::of(&of_kind, window_secs)))
            })
            .collect();

        let seconds = usize::try_from(end_us / 1_000_000 + 1).unwrap_or(0);
        let mut buckets: Vec<Vec<Sample>> = vec![Vec::new(); seconds];
        for sample in &samples {
            if let Some(bucket) = buckets.get_mut((sample.start_us / 1_000_000) as usize) {
                bucket.push(*sample);
            }
        }
        let series = buckets
            .iter()
            .enumerate()
            .map(|(second, bucket)| Second {
                t: second as u64,
                requests: bucket.len() as u64,
                transfers_ok: bucket
                    .iter()
                    .filter(|s| s.kind == Kind::Transfer && s.outcome == Outcome::Ok)
                    .count() as u64,
                errors: bucket
                    .iter()
                    .filter(|s| s.outcome == Outcome::Error)
                    .count() as u64,
                p50_ms: percentile_ms(bucket, 50.0),
                p99_ms: percentile_ms(bucket, 99.0),
            })
            .collect();

        Summary {
            window: Window {
                start_s: window_start_us as f64 / 1e6,
                seconds: window_secs,
                steady: self.steady_from.get().is_some(),
            },
            all: Figures::of(&in_window, window_secs),
            by_kind,
            whole_run: Totals {
                requests: samples.len() as u64,
                ok: count(&samples, Outcome::Ok),
                expected: count(&samples, Outcome::Expected),
                errors: count(&samples, Outcome::Error),
            },
            expected_by_code: self.expected.lock().map(|m| m.clone()).unwrap_or_default(),
            errors_by_kind: self.errors.lock().map(|m| m.clone()).unwrap_or_default(),
            error_examples: self
                .error_examples
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            series,
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn count(samples: &[Sample], outcome: Outcome) -> u64 {
    samples.iter().filter(|s| s.outcome == outcome).count() as u64
}

/// Nearest-rank percentile of the samples' latencies, in ms; 0 when empty.
fn percentile_ms(samples: &[Sample], pct: f64) -> f64 {
    let mut latencies: Vec<u32> = samples.iter().map(|s| s.latency_us).collect();
    latencies.sort_unstable();
    percentile_sorted_ms(&latencies, pct)
}

fn percentile_sorted_ms(sorted_us: &[u32], pct: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((pct / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[index]) / 1_000.0
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The steady-state window the figures below are taken over.
    pub window: Window,
    /// All requests in the window.
    pub all: Figures,
    /// Requests in the window, by kind.
    pub by_kind: BTreeMap<String, Figures>,
    /// Counts over the whole run, ramp-up and ramp-down included.
    pub whole_run: Totals,
    /// Expected domain answers by label.
    pub expected_by_code: BTreeMap<String, u64>,
    /// Real errors by label.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first few real errors, verbatim.
    pub error_examples: Vec<String>,
    /// One entry per second of the run (by request start).
    pub series: Vec<Second>,
}

/// Where the steady state was.
#[derive(Debug, Serialize)]
pub struct Window {
    /// Seconds after the load phase began.
    pub start_s: f64,
    /// Its length.
    pub seconds: f64,
    /// False when not every user started (then the window is the whole run).
    pub steady: bool,
}

/// Rate and latency of a set of requests.
#[derive(Debug, Serialize)]
pub struct Figures {
    /// How many.
    pub requests: u64,
    /// Per second of the window.
    pub rate_per_s: f64,
    /// 2xx.
    pub ok: u64,
    /// 2xx per second of the window.
    pub ok_per_s: f64,
    /// Expected domain answers.
    pub expected: u64,
    /// Real errors.
    pub errors: u64,
    /// Latency percentiles of the full response, ms.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Figures {
    fn of(samples: &[Sample], seconds: f64) -> Self {
        let mut latencies: Vec<u32> = samples.iter().map(|s| s.latency_us).collect();
        latencies.sort_unstable();
        let requests = samples.len() as u64;
        let ok = count(samples, Outcome::Ok);
        let per_s = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let mean_ms = if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / latencies.len() as f64 / 1e3
        };
        Self {
            requests,
            rate_per_s: per_s(requests),
            ok,
            ok_per_s: per_s(ok),
            expected: count(samples, Outcome::Expected),
            errors: count(samples, Outcome::Error),
            p50_ms: percentile_sorted_ms(&latencies, 50.0),
            p90_ms: percentile_sorted_ms(&latencies, 90.0),
            p99_ms: percentile_sorted_ms(&latencies, 99.0),
            p999_ms: percentile_sorted_ms(&latencies, 99.9),
            max_ms: latencies.last().map_or(0.0, |&l| f64::from(l) / 1e3),
            mean_ms,
        }
    }
}

/// Counts over the whole run.
#[derive(Debug, Serialize)]
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// 2xx.
    pub ok: u64,
    /// Expected domain answers.
    pub expected: u64,
    /// Real errors.
    pub errors: u64,
}

/// One second of the run.
#[derive(Debug, Serialize)]
pub struct Second {
    /// Seconds since the load phase began.
    pub t: u64,
    /// Requests that started in this second.
    pub requests: u64,
    /// Transfers among them that got 201.
    pub transfers_ok: u64,
    /// Real errors among them.
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1_000).collect();
        assert_eq!(percentile_sorted_ms(&sorted, 50.0), 50.0);
        assert_eq!(percentile_sorted_ms(&sorted, 99.0), 99.0);
        assert_eq!(percentile_sorted_ms(&sorted, 100.0), 100.0);
        assert_eq!(
            percentile_sorted_ms(&[], 99.0),
            0.0,
            "no samples, no latency"
        );
        assert_eq!(
            percentile_sorted_ms(&[7_000], 1.0),
            7.0,
            "one sample is every percentile"
        );
    }

    #[test]
    fn requests_outside_the_steady_window_do_not_count_in_its_figures() {
        let recorder = Recorder::new();
        recorder.record(Kind::Open, Instant::now(), Outcome::Ok);
        std::thread::sleep(Duration::from_millis(5));
        recorder.mark_steady();
        recorder.record(Kind::Transfer, Instant::now(), Outcome::Ok);
        recorder.record(Kind::Transfer, Instant::now(), Outcome::Error);
        let summary = recorder.summarize(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(summary.all.requests, 2, "the open was before the window");
        assert_eq!(summary.all.errors, 1);
        assert_eq!(summary.whole_run.requests, 3);
        assert!(!summary.by_kind.contains_key("open"));
    }
}
