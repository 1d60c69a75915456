//! The command line: a scenario and its parameters, goose's own options
//! (flattened in, so `--host`, `--users`, `--run-time`, `--increase-rate`,
//! `--report-file`, … work as in any goose load test), and the bounds every
//! run is held to.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use goose::config::GooseConfiguration;
use reqwest::Url;

/// Most users one run may simulate.
pub const MAX_USERS: usize = 10_000;
/// Longest run time (after every user has started).
pub const MAX_RUN_TIME_SECS: u64 = 3_600;
/// Run time when `--run-time` is not given: no run is open-ended.
pub const DEFAULT_RUN_TIME_SECS: u64 = 60;
/// Request timeout unless `--timeout` says otherwise (goose's own is 60 s).
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// goose load scenarios for the ledger service. Each run is bounded (users,
/// run time), targets a loopback address only, and ends with a check of the
/// ledger in PostgreSQL.
#[derive(Parser)]
#[command(
    name = "ledger-load",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A helper instead of a load test.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The load test.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Helpers for `scripts/bench.sh`.
#[derive(Subcommand)]
pub enum Command {
    /// Print the pgbench script of one transfer: exactly the store's SQL.
    PgbenchScript(PgbenchArgs),
    /// Open the throughput pool's accounts (fixed ids) over HTTP, then exit.
    OpenPool(OpenPoolArgs),
    /// Check the ledger's invariants in PostgreSQL, then exit.
    Check(CheckArgs),
}

/// Which user model to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenarioKind {
    /// Each user opens an account with 1,000,000, then pauses 1–3 s between
    /// a balance check (weight 3) and a 1.00 transfer to another user (weight 1).
    Classic,
    /// Transfers out of and into a few accounts picked with a Zipf skew
    /// (`--single-source`: every transfer leaves the first one).
    Hot,
    /// No pauses: transfers between random accounts of a pre-opened pool.
    Throughput,
    /// Balances as of random past times (weight 3) mixed with transfers
    /// (weight 1) over a pre-opened pool.
    Asof,
    /// No pauses: deposits of `--amount` into random accounts of a pre-opened
    /// pool, all out of the currency's one system account.
    Deposits,
    /// Inclusion proofs of transfers (weight 4) while the same users read
    /// accounts (weight 1): whether journal work starves other requests.
    Journal,
    /// No pauses: atomic batches of `--batch-legs` transfers between random
    /// accounts of a pre-opened pool (`POST /batches`).
    Batch,
    /// Card payments: each user opens an account, then, pausing 0.2–1 s,
    /// authorizes a payment of `--amount` to another user (a hold), settles
    /// it at its next turn (capture 90 %, void 10 %) and checks its balance
    /// twice in between (weights 1, 1, 2).
    Cards,
}

impl ScenarioKind {
    /// The scenario's name in goose's reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Hot => "hot",
            Self::Throughput => "throughput",
            Self::Asof => "asof",
            Self::Journal => "journal",
            Self::Deposits => "deposits",
            Self::Batch => "batch",
            Self::Cards => "cards",
        }
    }

    /// Users when `--users` is not given.
    pub fn default_users(self) -> usize {
        match self {
            Self::Classic => 100,
            Self::Cards => 200,
            Self::Hot | Self::Throughput | Self::Journal | Self::Deposits => 64,
            Self::Asof => 32,
            Self::Batch => 1,
        }
    }

    /// Accounts when `--accounts` is not given (classic opens one per user).
    pub fn default_accounts(self) -> usize {
        match self {
            Self::Classic | Self::Cards => 0,
            Self::Hot => 8,
            Self::Throughput | Self::Batch => 10_000,
            Self::Asof | Self::Journal | Self::Deposits => 200,
        }
    }

    /// Initial balance when `--initial-balance` is not given. Hot accounts
    /// start small so that some transfers meet `insufficient_funds`.
    pub fn default_initial_balance(self) -> &'static str {
        match self {
            Self::Hot => "50.00",
            // Deposits need no funds, and an empty opening is quick.
            Self::Deposits => "0",
            _ => "1000000.00",
        }
    }

    /// Pause between a user's requests when `--wait` is not given.
    pub fn default_wait(self) -> Option<WaitRange> {
        match self {
            Self::Classic => Some(WaitRange {
                min: Duration::from_secs(1),
                max: Duration::from_secs(3),
            }),
            Self::Cards => Some(WaitRange {
                min: Duration::from_millis(200),
                max: Duration::from_secs(1),
            }),
            _ => None,
        }
    }

    /// Problem codes that are correct answers of the ledger in this
    /// scenario, not errors of the service.
    pub fn expected_codes(self) -> &'static [&'static str] {
        match self {
            Self::Hot => &["insufficient_funds"],
            // A proof of a transfer younger than the final horizon.
            Self::Journal => &["validation_failed"],
            _ => &[],
        }
    }
}

/// The load test's own options; goose's follow.
#[derive(Args)]
#[command(next_help_heading = "Ledger")]
pub struct RunArgs {
    /// The user model
    #[arg(long, value_enum, default_value = "classic")]
    pub scenario: ScenarioKind,
    /// PostgreSQL URL of the ledger's database, for the check after the run
    ///
    /// The run counts ledger.transfers before and after, and checks that
    /// balances sum to zero per currency and that no customer balance is
    /// negative. Required unless --no-check.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Skip the ledger check after the run
    #[arg(long)]
    pub no_check: bool,
    /// Accounts the scenario uses [throughput 10000, hot 8, asof, journal and deposits 200]
    #[arg(long, value_name = "N")]
    pub accounts: Option<usize>,
    /// Amount of each transfer
    #[arg(long, value_name = "DECIMAL", default_value = "1.00")]
    pub amount: String,
    /// Opening balance of each account [hot 50.00, deposits 0, others 1000000.00]
    #[arg(long, value_name = "DECIMAL")]
    pub initial_balance: Option<String>,
    /// Zipf exponent of the hot scenario's account choice
    #[arg(long, value_name = "S", default_value_t = 1.1)]
    pub zipf: f64,
    /// Hot scenario: every transfer leaves the same account
    #[arg(long)]
    pub single_source: bool,
    /// Batch scenario: transfers per batch (1 to 8189)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub batch_legs: usize,
    /// Pause between a user's requests, in ms, such as 1000..3000 [classic 1000..3000, others none]
    #[arg(long, value_name = "MIN..MAX")]
    pub wait: Option<WaitRange>,
    /// Concurrent requests while opening the scenario's accounts
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Leave the first SECS of the run time out of ledger-load's figures
    ///
    /// The steady-state window then starts SECS after the last user started
    /// and lasts the rest of --run-time: a backlog left by the ramp-up (account
    /// opens queue on the system account) drains before measuring. goose's own
    /// report still covers the whole run time.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub warmup: u64,
    /// Write the run's figures (steady-state rate, percentiles, per-second series, check) as JSON
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,

    /// goose's options.
    #[command(flatten)]
    pub goose: GooseConfiguration,
}

/// `pgbench-script` options.
#[derive(Args)]
pub struct PgbenchArgs {
    /// Accounts in the pool (ids as `open-pool` makes them)
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub accounts: usize,
    /// Amount of each transfer
    #[arg(long, value_name = "DECIMAL", default_value = "1.00")]
    pub amount: String,
}

/// `open-pool` options.
#[derive(Args)]
pub struct OpenPoolArgs {
    /// The service, on a loopback address
    #[arg(long, short = 'H', value_name = "URL")]
    pub host: String,
    /// Accounts to open
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub accounts: usize,
    /// Opening balance of each account
    #[arg(long, value_name = "DECIMAL", default_value = "1000000.00")]
    pub initial_balance: String,
    /// Concurrent requests
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
}

/// `check` options.
#[derive(Args)]
pub struct CheckArgs {
    /// PostgreSQL URL of the ledger's database
    #[arg(long, value_name = "URL")]
    pub database_url: String,
}

/// A pause drawn uniformly from `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitRange {
    /// Shortest pause.
    pub min: Duration,
    /// Longest pause.
    pub max: Duration,
}

impl FromStr for WaitRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (min, max) = text
            .split_once("..")
            .ok_or_else(|| format!("expected MIN..MAX in milliseconds, got {text:?}"))?;
        let parse = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{part:?} is not a whole number of milliseconds"))
        };
        let (min, max) = (parse(min)?, parse(max)?);
        if min > max {
            return Err(format!(
                "the pause's minimum {min:?} is above its maximum {max:?}"
            ));
        }
        if max > Duration::from_secs(60) {
            return Err("a pause of more than 60 s is not a load test".to_owned());
        }
        Ok(Self { min, max })
    }
}

/// Refuses any target but this machine: 127.0.0.0/8, ::1 or localhost.
pub fn loopback_url(host: &str) -> anyhow::Result<Url> {
    let url = Url::parse(host).with_context(|| format!("--host {host:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--host {host:?}: only http and https are supported");
    }
    let name = url
        .host_str()
        .with_context(|| format!("--host {host:?} names no host"))?;
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "--host {host:?} is not a loopback address: ledger-load only targets this machine \
             (127.0.0.0/8, [::1] or localhost)"
        );
    }
    Ok(url)
}

/// Parses goose's TIME: whole seconds (`90`) or hours, minutes and seconds
/// in that order (`1h30m`, `2m30s`).
pub fn parse_time_secs(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    let mut total = 0_u64;
    let mut digits = String::new();
    let mut last_unit = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, factor) = match c {
            'h' => (1, 3_600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => bail!("time {text:?}: unexpected {c:?} (expected e.g. 90, 2m30s or 1h)"),
        };
        if rank <= last_unit || digits.is_empty() {
            bail!("time {text:?}: expected hours, minutes and seconds in that order, e.g. 1h2m3s");
        }
        last_unit = rank;
        total += digits.parse::<u64>()? * factor;
        digits.clear();
    }
    if !digits.is_empty() {
        bail!("time {text:?}: a number without a unit after another unit");
    }
    Ok(total)
}

/// The goose configuration with this run's bounds applied: the user count
/// and run time are always set and capped, and anything that would make the
/// run open-ended or send traffic elsewhere is refused.
pub fn bounded(run: &mut RunArgs) -> anyhow::Result<Bounds> {
    let config = &mut run.goose;
    let host = config
        .host
        .clone()
        .context("--host is required, e.g. --host http://127.0.0.1:8080")?;
    let url = loopback_url(&host)?;
    if config.iterations.is_some() {
        bail!("--iterations is not supported: every run is bounded by --run-time");
    }
    // --test-plan needs no check of its own: goose refuses it together with
    // --users and --run-time, which are always set below.
    if config.dashboard || config.websocket || config.no_autostart {
        bail!("the dashboard and controllers are not supported: runs start and stop by themselves");
    }
    let users = config.users.unwrap_or(run.scenario.default_users());
    if users == 0 || users > MAX_USERS {
        bail!("--users must be between 1 and {MAX_USERS}, got {users}");
    }
    let run_time_secs = match &config.run_time {
        Some(text) => parse_time_secs(text)?,
        None => DEFAULT_RUN_TIME_SECS,
    };
    if run_time_secs == 0 || run_time_secs > MAX_RUN_TIME_SECS {
        bail!("--run-time must be between 1 s and {MAX_RUN_TIME_SECS} s, got {run_time_secs} s");
    }
    if run.warmup >= run_time_secs {
        bail!(
            "--warmup {} s leaves nothing of --run-time {run_time_secs} s to measure",
            run.warmup
        );
    }
    config.users = Some(users);
    config.run_time = Some(run_time_secs.to_string());
    if config.increase_rate.is_none() && config.increase_time.is_none() {
        // All users within about ten seconds, at least one per second.
        config.increase_rate = Some(users.div_ceil(10).to_string());
    }
    if config.timeout.is_none() {
        config.timeout = Some(DEFAULT_TIMEOUT_SECS.to_string());
    }
    // No telnet controller: two runs side by side would fight over its port,
    // and nothing here needs to be steered while it runs.
    config.no_telnet = true;
    Ok(Bounds {
        url,
        users,
        run_time: Duration::from_secs(run_time_secs),
        warmup: Duration::from_secs(run.warmup),
    })
}

/// What a run is held to, after [`bounded`].
#[derive(Clone, Debug)]
pub struct Bounds {
    /// The service's base URL (loopback).
    pub url: Url,
    /// Users simulated.
    pub users: usize,
    /// Run time once every user has started.
    pub run_time: Duration,
    /// The start of the run time left out of the figures.
    pub warmup: Duration,
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    /// Panics unless `answer` gives every `(input, expected, why)` case its
    /// expected answer; the message names the input and why.
    fn assert_cases<I: Debug, O: PartialEq + Debug>(
        cases: &[(I, O, &str)],
        answer: impl Fn(&I) -> O,
    ) {
        for (input, expected, why) in cases {
            assert_eq!(&answer(input), expected, "{input:?}: {why}");
        }
    }

    #[test]
    fn only_loopback_hosts_are_accepted() {
        let cases = [
            ("http://127.0.0.1:8080", true, "IPv4 loopback"),
            ("http://127.5.6.7", true, "anywhere in 127.0.0.0/8"),
            ("http://localhost:3000", true, "localhost"),
            ("http://[::1]:8080", true, "IPv6 loopback"),
            (
                "http://10.0.0.1:8080",
                false,
                "a private address is still another machine",
            ),
            ("http://192.168.1.10", false, "private range"),
            ("https://example.com", false, "a public name"),
            (
                "http://localhost.example.com",
                false,
                "a name that merely starts with localhost",
            ),
            ("ftp://127.0.0.1", false, "not HTTP"),
            ("127.0.0.1:8080", false, "no scheme"),
        ];
        assert_cases(&cases, |host| loopback_url(host).is_ok());
    }

    #[test]
    fn times_parse_as_goose_writes_them() {
        let cases = [
            ("90", Some(90), "bare seconds"),
            ("2m30s", Some(150), "minutes and seconds"),
            ("1h", Some(3_600), "hours"),
            ("1h2m3s", Some(3_723), "all three"),
            ("30s2m", None, "units out of order"),
            ("5x", None, "unknown unit"),
            ("2m30", None, "a trailing number without unit"),
        ];
        assert_cases(&cases, |text| parse_time_secs(text).ok());
    }

    #[test]
    fn pauses_parse_as_millisecond_ranges() {
        let range: WaitRange = "1000..3000".parse().expect("a valid range");
        assert_eq!(range.min, Duration::from_secs(1));
        assert_eq!(range.max, Duration::from_secs(3));
        assert!("3000..1000".parse::<WaitRange>().is_err(), "min above max");
        assert!("1000".parse::<WaitRange>().is_err(), "no range");
        assert!(
            "0..120000".parse::<WaitRange>().is_err(),
            "longer than a minute"
        );
    }

    #[test]
    fn runs_are_bounded_even_without_run_time_and_users() {
        let cli =
            Cli::try_parse_from(["ledger-load", "--host", "http://127.0.0.1:1"]).expect("parses");
        let mut run = cli.run;
        let bounds = bounded(&mut run).expect("bounded");
        assert_eq!(bounds.run_time, Duration::from_secs(DEFAULT_RUN_TIME_SECS));
        assert_eq!(bounds.users, ScenarioKind::Classic.default_users());
        assert_eq!(run.goose.run_time.as_deref(), Some("60"));
        assert!(run.goose.no_telnet);
    }

    #[test]
    fn runs_beyond_the_caps_or_without_an_end_are_refused() {
        let local = "http://127.0.0.1:1";
        let cases: [(&[&str], &str); 5] = [
            (&["--host", local, "--users", "10001"], "above the user cap"),
            (
                &["--host", local, "--run-time", "2h"],
                "above the run-time cap",
            ),
            (
                &["--host", local, "--iterations", "5"],
                "bounded by count, not time",
            ),
            (&["--host", "http://10.1.2.3:8080"], "not this machine"),
            (&["--users", "10"], "no host at all"),
        ];
        for (args, why) in cases {
            let cli =
                Cli::try_parse_from(std::iter::once("ledger-load").chain(args.iter().copied()))
                    .expect("parses");
            let mut run = cli.run;
            assert!(
                bounded(&mut run).is_err(),
                "{args:?} must be refused: {why}"
            );
        }
    }
}
