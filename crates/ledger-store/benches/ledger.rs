//! Balance reads must cost O(log n) in the size of the history, and the
//! write path must scale with concurrent writers. This benchmark prints:
//!
//! * balance-read latency (now, and as of a random past time) for one account
//!   with a 10-thousand-row and a 10-million-row transfer table;
//! * single-transfer insert throughput with 64 concurrent writers.
//!
//! Run with `cargo bench -p ledger-store --bench ledger` (release build).
//! Sizes and counts: BENCH_SIZES (default "10000,10000000"), BENCH_READS
//! (20000), BENCH_WRITE_SECONDS (10), BENCH_WRITERS (64).
//!
//! The large fixture is generated in bulk by SQL rather than by 10 million
//! trigger-checked inserts (which would take ~20 minutes here). Its rows obey
//! every invariant: 100 accounts send 1.00 to their neighbour in rounds, so
//! the sequence numbers, running totals, balances-after and incoming
//! checkpoints every 64 rounds are known in closed form.

use std::time::{Duration, Instant};

use anyhow::Context;
use ledger_domain::{AccountId, Decimal};
use ledger_store::Ledger;
use ledger_testkit::TestDatabase;
use rand::Rng;

use support::{env_or, percentile};

mod support;

/// Accounts whose history the fixture builds (each sends to the next).
const ACCOUNTS: i64 = 100;
/// Funded accounts the throughput run transfers between, so that 64 writers
/// rarely pick the same source (the hot-account case is the load tests' job).
const WRITER_ACCOUNTS: i64 = 10_000;

fn account(k: i64) -> AccountId {
    format!("10000000-0000-0000-0000-{k:012}")
        .parse()
        .expect("a valid uuid")
}

fn writer_account(k: i64) -> AccountId {
    format!("20000000-0000-0000-0000-{k:012}")
        .parse()
        .expect("a valid uuid")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets too; only measure under
    // `cargo bench`, which passes --bench.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("ledger benchmark: skipped (run it with cargo bench)");
        return Ok(());
    }
    let sizes: Vec<i64> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "10000,10000000".into())
        .split(',')
        .map(|size| size.trim().parse().context("BENCH_SIZES"))
        .collect::<Result<_, _>>()?;
    let reads: usize = env_or("BENCH_READS", 20_000);
    let write_seconds: u64 = env_or("BENCH_WRITE_SECONDS", 10);
    let writers: usize = env_or("BENCH_WRITERS", 64);

    let largest = sizes.iter().copied().max().unwrap_or_default();
    println!("machine: {} cores, {}", cores(), memory());
    println!("server: {}", ledger_testkit::admin_url());
    let mut rows = Vec::new();
    for size in sizes {
        let database = TestDatabase::create().await?;
        let ledger = database.ledger_with(|config| config.pool_size = 64);
        let started = Instant::now();
        load_fixture(&database, size).await?;
        println!(
            "fixture: {size} transfers loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let now = measure(reads, || {
            let ledger = ledger.clone();
            async move { ledger.balance(account(0)).await.map(drop) }
        })
        .await?;
        let past = measure(reads, || {
            let ledger = ledger.clone();
            let back = rand::thread_rng().gen_range(1..10_000);
            async move {
                let at = chrono::Utc::now() - chrono::Duration::seconds(back);
                ledger.balance_at(account(0), at).await.map(drop)
            }
        })
        .await?;
        let derived = ledger.balance(account(0)).await?.balance;
        let plain: Decimal = database
            .connect()
            .await?
            .query_one(
                "select coalesce((select sum(amount) from ledger.transfers where destination_account_id = $1), 0)
                      - coalesce((select sum(amount) from ledger.transfers where source_account_id = $1), 0)",
                &[&account(0).as_uuid()],
            )
            .await?
            .get(0);
        anyhow::ensure!(
            derived == plain,
            "derived balance {derived} <> plain sum {plain}"
        );
        println!("  account 0: derived balance {derived} equals the plain sum of its history");
        rows.push((size, now, past));
        if size == largest {
            let throughput = write_throughput(&ledger, writers, write_seconds).await?;
            println!(
                "insert throughput: {writers} writers, {write_seconds} s, on the {size}-row table: \
                 {:.0} transfers/s (p50 {:.2} ms, p99 {:.2} ms, {} insufficient-funds refusals)",
                throughput.rate, throughput.p50_ms, throughput.p99_ms, throughput.refused
            );
            println!("group commit: {}", ledger.group_commit_metrics().snapshot());
        }
    }

    println!();
    println!("| transfers in table | balance now p50 | p99 | balance as-of p50 | p99 |");
    println!("|---:|---:|---:|---:|---:|");
    for (size, now, past) in &rows {
        println!(
            "| {size} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            now.p50_ms, now.p99_ms, past.p50_ms, past.p99_ms
        );
    }
    if let (Some(small), Some(large)) = (rows.first(), rows.last()) {
        println!(
            "p99 ratio largest/smallest: now {:.2}x, as-of {:.2}x",
            large.1.p99_ms / small.1.p99_ms,
            large.2.p99_ms / small.2.p99_ms
        );
    }
    Ok(())
}

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
}

/// Sequential calls from one client: latency, not throughput.
async fn measure<F, Fut>(count: usize, mut call: F) -> anyhow::Result<Latency>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ledger_store::StoreError>>,
{
    // Warm the pool, the statement cache and the buffer cache.
    for _ in 0..(count / 10).max(100) {
        call().await?;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        call().await?;
        samples.push(started.elapsed());
    }
    Ok(Latency {
        p50_ms: percentile(&mut samples, 0.50),
        p99_ms: percentile(&mut samples, 0.99),
    })
}

struct Throughput {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    refused: usize,
}

async fn write_throughput(
    ledger: &Ledger,
    writers: usize,
    seconds: u64,
) -> anyhow::Result<Throughput> {
    let ticker = tokio::spawn(
        ledger
            .clone()
            .run_horizon_ticker(Duration::from_millis(100)),
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let amount = Decimal::new(1, 2);
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut refused = 0;
                while Instant::now() < deadline {
                    let (source, destination) = {
                        let mut rng = rand::thread_rng();
                        let source = rng.gen_range(0..WRITER_ACCOUNTS);
                        let step = rng.gen_range(1..WRITER_ACCOUNTS);
                        (source, (source + step) % WRITER_ACCOUNTS)
                    };
                    let started = Instant::now();
                    match ledger
                        .transfer(
                            writer_account(source),
                            writer_account(destination),
                            amount,
                            None,
                            None,
                        )
                        .await
                    {
                        Ok(_) => samples.push(started.elapsed()),
                        Err(ledger_store::StoreError::Domain(_)) => refused += 1,
                        Err(other) => return Err(other),
                    }
                }
                Ok((samples, refused))
            })
        })
        .collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (mut task_samples, task_refused) = task.await??;
        samples.append(&mut task_samples);
        refused += task_refused;
    }
    let elapsed = started.elapsed().as_secs_f64();
    ticker.abort();
    Ok(Throughput {
        rate: samples.len() as f64 / elapsed,
        p50_ms: percentile(&mut samples, 0.50),
        p99_ms: percentile(&mut samples, 0.99),
        refused,
    })
}

/// The fixture does not build hash chains (that needs one row at a time);
/// the benchmark database is never verified.
const ZERO_HASH: &str =
    "'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea";

/// Loads `size` transfers (size / 100 rounds) in bulk, with their
/// checkpoints, dated in the past so that all of it is final.
async fn load_fixture(database: &TestDatabase, size: i64) -> anyhow::Result<()> {
    let rounds = (size / ACCOUNTS).max(1);
    let client = database.connect().await?;
    client
        .batch_execute(&format!(
            "
            set session_replication_role = replica; -- rows below are computed, not triggered
            create temp table fixture as
              select clock_timestamp() - interval '1 ms' * ({rounds} * {ACCOUNTS} + 1000) as base;
            select ledger.ensure_system_account('USD');
            insert into ledger.accounts (account_id, currency_code, created_at)
            select ('10000000-0000-0000-0000-' || lpad(k::text, 12, '0'))::uuid, 'USD',
                   (select base from fixture) - interval '1 hour'
              from generate_series(0, {ACCOUNTS} - 1) k;
            insert into ledger.accounts (account_id, currency_code, created_at)
            select ('20000000-0000-0000-0000-' || lpad(k::text, 12, '0'))::uuid, 'USD',
                   (select base from fixture) - interval '1 hour'
              from generate_series(0, {WRITER_ACCOUNTS} - 1) k;
            -- Opening deposits of 1,000,000,000.00 each.
            insert into ledger.transfers (source_account_id, source_seq, transfer_id,
                destination_account_id, currency_code, amount, source_outgoing_total,
                source_balance_after, source_is_system, created_at, row_hash)
            select '00000000-0000-0000-0000-000000000840', k,
                   ('e0000000-0000-4000-8000-' || lpad(to_hex(k), 12, '0'))::uuid,
                   ('10000000-0000-0000-0000-' || lpad(k::text, 12, '0'))::uuid, 'USD',
                   1000000000.00, (k + 1) * 1000000000.00, -(k + 1) * 1000000000.00, true,
                   (select base from fixture) - interval '1 minute' + k * interval '1 ms',
                   {ZERO_HASH}
              from generate_series(0, {ACCOUNTS} - 1) k;
            insert into ledger.transfers (source_account_id, source_seq, transfer_id,
                destination_account_id, currency_code, amount, source_outgoing_total,
                source_balance_after, source_is_system, created_at, row_hash)
            select '00000000-0000-0000-0000-000000000840', {ACCOUNTS} + k,
                   ('e1000000-0000-4000-8000-' || lpad(to_hex(k), 12, '0'))::uuid,
                   ('20000000-0000-0000-0000-' || lpad(k::text, 12, '0'))::uuid, 'USD',
                   1000000000.00, ({ACCOUNTS} + k + 1) * 1000000000.00,
                   -({ACCOUNTS} + k + 1) * 1000000000.00, true,
                   (select base from fixture) - interval '30 seconds' + k * interval '1 ms',
                   {ZERO_HASH}
              from generate_series(0, {WRITER_ACCOUNTS} - 1) k;
            -- Round r: account k sends 1.00 to account k + 1 (mod 100).
            insert into ledger.transfers (source_account_id, source_seq, transfer_id,
                destination_account_id, currency_code, amount, source_outgoing_total,
                source_balance_after, source_is_system, created_at, row_hash)
            select ('10000000-0000-0000-0000-' || lpad((i % {ACCOUNTS})::text, 12, '0'))::uuid,
                   i / {ACCOUNTS},
                   ('f0000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
                   ('10000000-0000-0000-0000-' || lpad(((i + 1) % {ACCOUNTS})::text, 12, '0'))::uuid,
                   'USD', 1.00, (i / {ACCOUNTS} + 1) * 1.00,
                   1000000000.00 - case when i % {ACCOUNTS} = 0 then 1 else 0 end,
                   false,
                   (select base from fixture) + i * interval '1 ms',
                   {ZERO_HASH}
              from generate_series(0, {rounds} * {ACCOUNTS} - 1) i;
            -- Checkpoints every 64 rounds, as the write path leaves them.
            insert into ledger.incoming_checkpoints (account_id, through, incoming_total)
            select ('10000000-0000-0000-0000-' || lpad(k::text, 12, '0'))::uuid,
                   (select base from fixture) + (r * {ACCOUNTS}) * interval '1 ms',
                   1000000000.00 + r
              from generate_series(64, {rounds} - 1, 64) r, generate_series(0, {ACCOUNTS} - 1) k;
            set session_replication_role = origin;
            "
        ))
        .await
        .map_err(|err| anyhow::anyhow!("Failed to load the fixture: {err:?}"))?;
    // VACUUM cannot run inside the implicit transaction of a batch.
    client
        .batch_execute("vacuum analyze ledger.transfers")
        .await?;
    client
        .batch_execute("vacuum analyze ledger.incoming_checkpoints")
        .await?;
    // Write the load's dirty pages out now, not during the measurement.
    client.batch_execute("checkpoint").await?;
    // Make the whole fixture final.
    let ledger = database.ledger();
    for _ in 0..3 {
        ledger.advance_horizon().await?;
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("MemTotal"))
                .map(|line| line.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(
            || "unknown memory".into(),
            |kb| format!("{:.1} GiB", kb as f64 / 1048576.0),
        )
}
