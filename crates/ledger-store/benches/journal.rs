//! Issue 16's acceptance figures for the journal tree: the inclusion proof
//! of the first row of a chain with 100,000 later rows, its size in bytes
//! and its serving time (p50/p99 over 200 calls through the store), plus the
//! sequencer's cost per row and the digest and consistency-proof latency.
//!
//! Run with `cargo bench -p ledger-store --bench journal` (release build).
//! BENCH_LATER_ROWS (100000) and BENCH_PROOFS (200) change the sizes. The
//! later rows are written through the store's batch path (1,000 legs per
//! batch, every row trigger-checked and hash-chained), all out of one
//! source, the case that made proofs unbounded before.

use std::time::{Duration, Instant};

use ledger_domain::journal::TreeSizes;
use ledger_domain::{AccountId, Currency, Decimal};
use ledger_store::{BatchLeg, Ledger, NewAccount};
use ledger_testkit::TestDatabase;

use support::{env_or, percentile};

mod support;

/// Legs per batch: inside one batch the destination's incoming tail cannot
/// be checkpointed (its rows are not final yet), so smaller batches write
/// faster.
const BATCH_LEGS: usize = 1_000;

async fn open(ledger: &Ledger, balance: &str) -> anyhow::Result<AccountId> {
    let request = NewAccount {
        overdraft_limit: None,
        id: None,
        currency: Currency::parse("USD").map_err(anyhow::Error::msg)?,
        initial_balance: Some(balance.parse()?),
        metadata: None,
    };
    Ok(ledger.open_account(request, None).await?.value.id)
}

/// Waits until every row written so far is final.
async fn final_now(ledger: &Ledger) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    while ledger.advance_horizon().await? <= Some(now) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets too; only measure under
    // `cargo bench`, which passes --bench.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("journal benchmark: skipped (run it with cargo bench)");
        return Ok(());
    }
    let later_rows: usize = env_or("BENCH_LATER_ROWS", 100_000);
    let proofs: usize = env_or("BENCH_PROOFS", 200);
    let database = TestDatabase::create().await?;
    if std::env::var("BENCH_LOG_STATEMENTS").is_ok() {
        let client = database.connect().await?;
        client
            .batch_execute(&format!(
                "alter database \"{}\" set log_min_duration_statement = 0",
                database.url().rsplit('/').next().unwrap_or_default()
            ))
            .await?;
    }
    let ledger = database.ledger();
    let a = open(&ledger, "1000000.00").await?;
    let b = open(&ledger, "0").await?;
    let amount: Decimal = "0.01".parse()?;
    let proven = ledger.transfer(a, b, amount, None, None).await?.value;

    let started = Instant::now();
    let mut left = later_rows;
    while left > 0 {
        let legs: Vec<BatchLeg> = (0..left.min(BATCH_LEGS))
            .map(|_| BatchLeg {
                source: a,
                destination: b,
                amount,
                metadata: None,
            })
            .collect();
        left -= legs.len();
        ledger.batch(legs, None).await?;
        // As the service's ticker does: incoming checkpoints are taken at
        // the horizon, and without them the destination's tail (and each
        // insert's scan of it) would grow with every row.
        ledger.advance_horizon().await?;
    }
    println!(
        "wrote {later_rows} later rows out of one source in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    final_now(&ledger).await?;
    let started = Instant::now();
    let size = ledger.sequence_journal().await?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "sequencer: {size} leaves appended in {took:.2} s ({:.0} rows/s, {:.1} µs per row)",
        size as f64 / took,
        took * 1e6 / size as f64
    );

    let mut samples = Vec::with_capacity(proofs);
    let mut bytes = 0;
    let mut path_len = 0;
    for _ in 0..proofs {
        let started = Instant::now();
        let proof = ledger.proof(proven.id, None).await?;
        samples.push(started.elapsed());
        assert!(proof.verify(&proof.digest.root), "the proof verifies");
        // The JSON body GET /transfers/{id}/proof serves.
        let body = serde_json::json!({
            "digest": {"at": proof.digest.at, "tree_size": proof.digest.tree_size, "root": proof.digest.root},
            "encoding": proof.encoding,
            "previous_hash": proof.previous_hash,
            "row_hash": proof.row_hash,
            "leaf_index": proof.leaf_index,
            "audit_path": proof.audit_path,
        });
        bytes = serde_json::to_vec(&body)?.len();
        path_len = proof.audit_path.len();
    }
    println!(
        "proof of the first row of a chain with {later_rows} later rows: {bytes} bytes \
         ({path_len} path hashes), served p50 {:.2} ms, p99 {:.2} ms over {proofs}",
        percentile(&mut samples, 0.50),
        percentile(&mut samples, 0.99)
    );

    let mut digests = Vec::with_capacity(proofs);
    let mut consistency = Vec::with_capacity(proofs);
    for i in 0..proofs {
        let started = Instant::now();
        let digest = ledger.digest(None).await?;
        digests.push(started.elapsed());
        let first = 1 + (i as u64 * 7919) % digest.tree_size;
        let started = Instant::now();
        let proof = ledger
            .consistency(TreeSizes::new(first, digest.tree_size).map_err(anyhow::Error::msg)?)
            .await?;
        consistency.push(started.elapsed());
        assert!(proof.verify(&proof.first.root));
    }
    println!(
        "digest p50 {:.2} ms, p99 {:.2} ms; consistency proof p50 {:.2} ms, p99 {:.2} ms",
        percentile(&mut digests, 0.50),
        percentile(&mut digests, 0.99),
        percentile(&mut consistency, 0.50),
        percentile(&mut consistency, 0.99)
    );

    // The sequencer's read of the rows after its last leaf: the BRIN index
    // should serve it, not a scan of the whole table.
    let client = database.connect().await?;
    client.batch_execute("analyze ledger.transfers").await?;
    let plan = client
        .query(
            "explain (analyze, costs off, timing off, summary on)
             select source_account_id, source_seq, created_at, row_hash
               from ledger.transfers
              where created_at >= (select max(created_at) from ledger.journal_leaves)
                and created_at < ledger.final_horizon()
              order by created_at, source_account_id, source_seq limit 10000",
            &[],
        )
        .await?;
    println!("the sequencer's read when it is caught up:");
    for line in plan {
        println!("  {}", line.get::<_, String>(0));
    }
    Ok(())
}
