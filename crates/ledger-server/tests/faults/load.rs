//! The fault suite's load (not a harness: only `faults.rs` uses it).
//! Concurrent writers that behave as a careful client should: each logical
//! transfer carries one Idempotency-Key for its whole life, and an attempt
//! that failed in a way that leaves the outcome unknown (connection refused
//! or cut, timeout, 503, 409 `idempotency_in_flight`, 500) is retried with
//! that same key until the service gives a definitive answer: 201, or a 4xx
//! that says why not.
//!
//! Every attempt is recorded with its start time and latency, and every
//! logical transfer with its outcome, so that a test can compare what the
//! clients were told with what the database holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ledger_testkit::service::header_text;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The base URL the writers use (a restarted server comes back on the same
/// port, so it does not change).
#[derive(Debug, Default)]
pub struct Target(RwLock<String>);

impl Target {
    /// A target at `address` (`http://127.0.0.1:<port>`).
    pub fn new(address: &str) -> Arc<Self> {
        Arc::new(Self(RwLock::new(address.to_owned())))
    }

    /// The current address.
    pub fn get(&self) -> String {
        self.0.read().map(|a| a.clone()).unwrap_or_default()
    }
}

/// The shape of a load.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Concurrent writer tasks.
    pub writers: usize,
    /// The accounts transfers move money between (at least two).
    pub accounts: Vec<Uuid>,
    /// Amounts are uniform in 0.01 ..= this many cents / 100.
    pub max_amount_cents: u64,
    /// Prefix of every Idempotency-Key, so the test can find its keys.
    pub key_prefix: String,
    /// Pause after a failed attempt, jittered to between 1× and 2×.
    pub retry_pause: Duration,
    /// After the load is told to stop, how long a writer may keep retrying
    /// the logical transfer it has in hand before it gives up on it.
    pub resolve_within: Duration,
    /// No new logical transfer starts once this many requests were sent
    /// (all writers together): the load's hard bound.
    pub max_requests: u64,
    /// Seed of the writers' random choices.
    pub seed: u64,
}

/// What the client was finally told about one logical transfer.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// 201 with this body (`replayed`: the Idempotent-Replayed header).
    Acked {
        /// The response body.
        body: Value,
        /// Whether it came as the replay of an earlier attempt.
        replayed: bool,
    },
    /// A definitive refusal.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The problem `code`.
        code: String,
    },
    /// Still unknown when the writer had to give up.
    Unresolved,
}

/// One logical transfer, however many attempts it took.
#[derive(Clone, Debug)]
#[expect(
    dead_code,
    reason = "amount and attempts are read in failure messages, through Debug"
)]
pub struct LogicalTransfer {
    /// Its Idempotency-Key (also in its metadata, as `logical`).
    pub key: String,
    /// Paying account.
    pub source: Uuid,
    /// Receiving account.
    pub destination: Uuid,
    /// Amount, as sent.
    pub amount: String,
    /// What the client was finally told.
    pub outcome: Outcome,
    /// Requests sent for it.
    pub attempts: u32,
}

/// What one HTTP attempt got.
#[derive(Clone, Debug)]
pub enum AttemptResult {
    /// The service answered.
    Response {
        /// HTTP status.
        status: u16,
        /// The problem `code`, for error responses.
        code: Option<String>,
        /// Whether a `Retry-After` header came with it.
        retry_after: bool,
        /// The `Content-Type`.
        content_type: Option<String>,
    },
    /// No complete answer: refused, reset, timed out.
    Transport(#[expect(dead_code, reason = "read in failure messages, through Debug")] String),
}

/// One HTTP attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// When it was sent.
    pub started: Instant,
    /// How long until the full answer (or the failure).
    pub latency: Duration,
    /// What it got.
    pub result: AttemptResult,
}

impl Attempt {
    /// The HTTP status, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match &self.result {
            AttemptResult::Response { status, .. } => Some(*status),
            AttemptResult::Transport(_) => None,
        }
    }
}

/// Everything a load did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Every logical transfer started.
    pub transfers: Vec<LogicalTransfer>,
    /// Every HTTP attempt, in no particular order.
    pub attempts: Vec<Attempt>,
}

impl LoadReport {
    /// The logical transfers that were acknowledged, with their 201 bodies.
    pub fn acked(&self) -> impl Iterator<Item = (&LogicalTransfer, &Value)> {
        self.transfers.iter().filter_map(|t| match &t.outcome {
            Outcome::Acked { body, .. } => Some((t, body)),
            _ => None,
        })
    }

    /// How many attempts got `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.status() == Some(status))
            .count()
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    writers: Vec<JoinHandle<(Vec<LogicalTransfer>, Vec<Attempt>)>>,
}

impl Load {
    /// Starts `config.writers` writer tasks against `target`.
    pub fn start(client: &reqwest::Client, target: &Arc<Target>, config: &LoadConfig) -> Self {
        assert!(config.accounts.len() >= 2, "transfers need two accounts");
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let writers = (0..config.writers)
            .map(|index| {
                let writer = Writer {
                    index,
                    client: client.clone(),
                    target: Arc::clone(target),
                    config: config.clone(),
                    stop: Arc::clone(&stop),
                    acked: Arc::clone(&acked),
                    requests: Arc::clone(&requests),
                };
                tokio::spawn(writer.run())
            })
            .collect();
        Self {
            stop,
            acked,
            writers,
        }
    }

    /// Transfers acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `more` further transfers were acknowledged, or `within`
    /// passed; returns whether they were.
    pub async fn wait_for_acks(&self, more: u64, within: Duration) -> bool {
        let goal = self.acked() + more;
        let deadline = Instant::now() + within;
        while self.acked() < goal {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Tells the writers to start no new logical transfer, waits for them to
    /// resolve the ones in hand, and returns what happened.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut report = LoadReport::default();
        for writer in self.writers {
            let (transfers, attempts) = writer.await.expect("a writer task panicked");
            report.transfers.extend(transfers);
            report.attempts.extend(attempts);
        }
        report
    }
}

struct Writer {
    index: usize,
    client: reqwest::Client,
    target: Arc<Target>,
    config: LoadConfig,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl Writer {
    async fn run(self) -> (Vec<LogicalTransfer>, Vec<Attempt>) {
        let mut rng = StdRng::seed_from_u64(self.config.seed.wrapping_add(self.index as u64));
        let mut transfers = Vec::new();
        let mut attempts = Vec::new();
        while !self.stop.load(Ordering::SeqCst)
            && self.requests.load(Ordering::Relaxed) < self.config.max_requests
        {
            let accounts = &self.config.accounts;
            let source = accounts[rng.gen_range(0..accounts.len())];
            let destination = loop {
                let candidate = accounts[rng.gen_range(0..accounts.len())];
                if candidate != source {
                    break candidate;
                }
            };
            let cents = rng.gen_range(1..=self.config.max_amount_cents);
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            let key = format!("{}-{}", self.config.key_prefix, Uuid::new_v4());
            let body = json!({
                "source": source,
                "destination": destination,
                "amount": amount,
                "metadata": {"logical": key, "writer": self.index},
            });
            let (outcome, tries) = self.resolve(&key, &body, &mut rng, &mut attempts).await;
            if matches!(outcome, Outcome::Acked { .. }) {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            transfers.push(LogicalTransfer {
                key,
                source,
                destination,
                amount,
                outcome,
                attempts: tries,
            });
        }
        (transfers, attempts)
    }

    /// Sends one logical transfer until the answer is definitive.
    async fn resolve(
        &self,
        key: &str,
        body: &Value,
        rng: &mut StdRng,
        attempts: &mut Vec<Attempt>,
    ) -> (Outcome, u32) {
        let mut tries = 0;
        let mut give_up_at: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::SeqCst) && give_up_at.is_none() {
                give_up_at = Some(Instant::now() + self.config.resolve_within);
            }
            if give_up_at.is_some_and(|at| Instant::now() >= at) {
                return (Outcome::Unresolved, tries);
            }
            tries += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let (result, outcome) = self.attempt(key, body).await;
            attempts.push(Attempt {
                started,
                latency: started.elapsed(),
                result,
            });
            if let Some(outcome) = outcome {
                return (outcome, tries);
            }
            let jitter = rng.gen_range(1.0..2.0);
            tokio::time::sleep(self.config.retry_pause.mul_f64(jitter)).await;
        }
    }

    /// One request. `None` as outcome: unknown, retry with the same key.
    async fn attempt(&self, key: &str, body: &Value) -> (AttemptResult, Option<Outcome>) {
        let response = self
            .client
            .post(format!("{}/transfers", self.target.get()))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(err) => return (AttemptResult::Transport(error_chain(&err)), None),
        };
        let status = response.status().as_u16();
        let header = |name: &str| header_text(response.headers(), name);
        let retry_after = header("retry-after").is_some();
        let replayed = header("idempotent-replayed").as_deref() == Some("true");
        let content_type = header("content-type");
        let text = match response.text().await {
            Ok(text) => text,
            // The server died while sending the body: the outcome is unknown.
            Err(err) => return (AttemptResult::Transport(error_chain(&err)), None),
        };
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = json["code"].as_str().map(str::to_owned);
        let result = AttemptResult::Response {
            status,
            code: code.clone(),
            retry_after,
            content_type,
        };
        let outcome = match (status, code.as_deref()) {
            (201, _) => Some(Outcome::Acked {
                body: json,
                replayed,
            }),
            (409, Some("idempotency_in_flight")) | (500..=599, _) => None,
            (_, code) => Some(Outcome::Rejected {
                status,
                code: code.unwrap_or("<no problem body>").to_owned(),
            }),
        };
        (result, outcome)
    }
}

/// An error with its causes, e.g. "error sending request: connection refused".
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
