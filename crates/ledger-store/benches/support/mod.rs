//! What both benchmarks need: their knobs from the environment, and
//! latency percentiles.

use std::time::Duration;

/// `name` from the environment, parsed; `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The `q` quantile (0 to 1, nearest rank) of `samples`, in milliseconds.
/// Sorts `samples`.
pub fn percentile(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index].as_secs_f64() * 1_000.0
}
