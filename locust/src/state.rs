//! What every simulated user shares: the scenario's parameters, the pool of
//! accounts (lock-protected: classic users add theirs as they start), the
//! hot scenario's Zipf sampler, and the recorder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

use chrono::{DateTime, Utc};
use rand::Rng;
use uuid::Uuid;

use crate::cli::ScenarioKind;
use crate::stats::Recorder;

/// Shared by all users of a run.
pub struct Shared {
    /// The user model.
    pub scenario: ScenarioKind,
    /// Amount of each transfer, as sent.
    pub amount: String,
    /// Opening balance of accounts the scenario opens.
    pub initial_balance: String,
    /// Users the run starts: the steady state begins when all have.
    pub users: usize,
    /// Accounts to pick from.
    pub accounts: RwLock<Vec<Uuid>>,
    /// Hot scenario: which of `accounts` to pick.
    pub zipf: Option<Zipf>,
    /// Hot scenario: every transfer leaves `accounts[0]`.
    pub single_source: bool,
    /// As-of scenario: reads pick times from here to now.
    pub history_from: DateTime<Utc>,
    /// Batch scenario: transfers per batch.
    pub batch_legs: usize,
    /// Classic: balance reads carry the user's last write position.
    pub read_your_writes: bool,
    /// Every request goes here.
    pub recorder: Recorder,
    started_users: AtomicUsize,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Installs the run's shared state; once per process.
pub fn install(shared: Shared) -> anyhow::Result<&'static Shared> {
    SHARED
        .set(shared)
        .map_err(|_| anyhow::anyhow!("the shared state is installed once per process"))?;
    Ok(shared_state())
}

/// The run's shared state.
///
/// # Panics
/// Before [`install`]: goose only runs transactions after `main` installed it.
pub fn shared_state() -> &'static Shared {
    SHARED
        .get()
        .expect("ledger-load installs the shared state before goose starts")
}

impl Shared {
    /// A run's state, with the accounts already opened by the setup.
    #[expect(
        clippy::too_many_arguments,
        reason = "plain construction from the command line, once"
    )]
    pub fn new(
        scenario: ScenarioKind,
        amount: String,
        initial_balance: String,
        users: usize,
        accounts: Vec<Uuid>,
        zipf: Option<Zipf>,
        single_source: bool,
        history_from: DateTime<Utc>,
    ) -> Self {
        Self {
            scenario,
            amount,
            initial_balance,
            users,
            accounts: RwLock::new(accounts),
            zipf,
            single_source,
            history_from,
            batch_legs: 1,
            read_your_writes: false,
            recorder: Recorder::new(),
            started_users: AtomicUsize::new(0),
        }
    }

    /// The batch scenario's transfers per batch.
    pub fn with_batch_legs(mut self, legs: usize) -> Self {
        self.batch_legs = legs;
        self
    }

    /// Classic: balance reads carry the user's last write position.
    pub fn with_read_your_writes(mut self, on: bool) -> Self {
        self.read_your_writes = on;
        self
    }

    /// A user has started (its on-start work done); when the last one has,
    /// the steady state begins.
    pub fn user_started(&self) {
        if self.started_users.fetch_add(1, Ordering::AcqRel) + 1 >= self.users {
            self.recorder.mark_steady();
        }
    }

    /// Adds an account to the pool others pick destinations from.
    pub fn add_account(&self, id: Uuid) {
        if let Ok(mut accounts) = self.accounts.write() {
            accounts.push(id);
        }
    }

    /// A random account of the pool other than `not`, if there is one.
    pub fn random_account_except(&self, not: Option<Uuid>) -> Option<Uuid> {
        let accounts = self.accounts.read().ok()?;
        let mut rng = rand::thread_rng();
        // A few draws find another account unless the pool is (nearly) just `not`.
        for _ in 0..8 {
            let candidate = *accounts.get(rng.gen_range(0..accounts.len().max(1)))?;
            if Some(candidate) != not {
                return Some(candidate);
            }
        }
        None
    }

    /// Two distinct accounts: uniformly, or by the hot scenario's skew.
    pub fn pick_pair(&self) -> Option<(Uuid, Uuid)> {
        let accounts = self.accounts.read().ok()?;
        if accounts.len() < 2 {
            return None;
        }
        let mut rng = rand::thread_rng();
        let draw = |rng: &mut rand::rngs::ThreadRng| match &self.zipf {
            Some(zipf) => zipf.sample(rng),
            None => rng.gen_range(0..accounts.len()),
        };
        let source = if self.single_source {
            0
        } else {
            draw(&mut rng)
        };
        for _ in 0..64 {
            let destination = draw(&mut rng);
            if destination != source {
                return Some((accounts[source], accounts[destination]));
            }
        }
        // The skew kept drawing the source: fall back to its neighbour.
        Some((accounts[source], accounts[(source + 1) % accounts.len()]))
    }
}

/// Draws ranks `0..n` with probability proportional to `1 / (rank + 1)^s`.
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        let weights: Vec<f64> = (1..=n).map(|rank| 1.0 / (rank as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                sum += w / total;
                sum
            })
            .collect();
        Self { cumulative }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.gen();
        self.cumulative
            .partition_point(|&c| c < u)
            .min(self.cumulative.len().saturating_sub(1))
    }

    /// Probability of `rank`.
    pub fn probability(&self, rank: usize) -> f64 {
        let below = if rank == 0 {
            0.0
        } else {
            self.cumulative[rank - 1]
        };
        self.cumulative[rank] - below
    }
}

/// The id of account `index` of the throughput pool. Fixed, so that the
/// pgbench script can name the same accounts: the last group is the index
/// in decimal digits, which are hex digits too.
pub fn pool_account_id(index: usize) -> Uuid {
    let text = format!("{POOL_ID_PREFIX}{index:012}");
    Uuid::parse_str(&text).expect("the prefix and 12 decimal digits make a UUID")
}

/// Everything of a pool account's id but its last 12 digits. Above the range
/// reserved for system accounts.
pub const POOL_ID_PREFIX: &str = "10000000-0000-4000-8000-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids_are_fixed_and_distinct() {
        assert_eq!(
            pool_account_id(42).to_string(),
            "10000000-0000-4000-8000-000000000042"
        );
        assert_ne!(pool_account_id(1), pool_account_id(10));
    }

    #[test]
    fn zipf_puts_most_weight_on_the_first_ranks() {
        let zipf = Zipf::new(8, 1.1);
        let total: f64 = (0..8).map(|rank| zipf.probability(rank)).sum();
        assert!((total - 1.0).abs() < 1e-9, "probabilities sum to one");
        assert!(zipf.probability(0) > 2.0 * zipf.probability(1));
        let mut rng = rand::thread_rng();
        let draws = 10_000;
        let first = (0..draws).filter(|_| zipf.sample(&mut rng) == 0).count();
        let expected = zipf.probability(0) * f64::from(draws);
        assert!(
            (first as f64 - expected).abs() < 0.1 * expected,
            "{first} draws of rank 0, expected about {expected}"
        );
    }
}
