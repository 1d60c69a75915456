//! The journal sequencer: appends final rows to the journal tree, in
//! `(created_at, source, source_seq)` order, with the hashes of the subtrees
//! they complete, off the write path. Several may run at once (instances,
//! requests catching up); they settle by the tree's unique keys.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::journal::{append_leaf, leaf_hash, subtrees, Hash};
use uuid::Uuid;

use super::nodes::Nodes;
use crate::horizon::run_every;
use crate::{Ledger, StoreError};

/// Most rows one sequencer step appends: one bounded transaction, well
/// inside the statement timeout.
const STEP_ROWS: i64 = 10_000;

/// Most steps a digest or proof request takes to catch the tree up itself
/// (the background sequencer normally keeps it at the horizon); beyond that
/// it answers `Unavailable` rather than hold its connection for long.
pub(super) const CATCH_UP_STEPS: usize = 20;

/// Most times a step is started again after another sequencer appended the
/// same leaves first.
const MAX_RACES: usize = 100;

impl Ledger {
    /// Appends every final row not yet in the journal tree, in steps of at
    /// most 10,000 rows; returns the tree's size. The background sequencer
    /// calls it; digests and proofs call it too, so they never wait for it.
    pub async fn sequence_journal(&self) -> Result<u64, StoreError> {
        use std::sync::atomic::Ordering;
        let mut client = self.client().await?;
        // Keep the BRIN index summarized up to its last complete range, so
        // that every step's read of the newest rows stays a few pages.
        let from = self.journal_summarized.load(Ordering::Relaxed);
        let next: i64 = client
            .query_one("select ledger.summarize_journal_index($1)", &[&from])
            .await?
            .try_get(0)?;
        self.journal_summarized.fetch_max(next, Ordering::Relaxed);
        catch_up(&mut client, usize::MAX).await
    }

    /// Keeps the journal tree at the final horizon, every `interval`,
    /// forever: the service's journal sequencer. Several instances may run
    /// it at once; they settle by the tree's unique keys.
    pub async fn run_journal_sequencer(self, interval: Duration) {
        let task = "journal sequencer";
        run_every(interval, task, "cannot extend the tree", || {
            self.sequence_journal()
        })
        .await
    }
}

/// Steps until the tree holds every row before the final horizon; returns
/// its size. After `max_steps` full steps, `Unavailable`.
pub(super) async fn catch_up(
    client: &mut deadpool_postgres::Object,
    max_steps: usize,
) -> Result<u64, StoreError> {
    let mut races = 0;
    let mut steps = 0;
    loop {
        match step(client).await? {
            Step::Appended { size, full: false } => return Ok(size),
            Step::Appended { full: true, .. } => {
                steps += 1;
                if steps == max_steps {
                    return Err(StoreError::Unavailable(
                        "the journal tree is catching up with the ledger; retry later".into(),
                    ));
                }
            }
            Step::Raced => {
                races += 1;
                if races == MAX_RACES {
                    return Err(StoreError::Unavailable(
                        "the journal tree is contended; retry later".into(),
                    ));
                }
            }
        }
    }
}

enum Step {
    /// The tree now has `size` leaves; `full` when the step hit its limit
    /// (there may be more to append).
    Appended { size: u64, full: bool },
    /// Another sequencer appended these leaves first.
    Raced,
}

/// One sequencer step: the rows after the last leaf, up to the final
/// horizon and at most [`STEP_ROWS`], appended with the subtree hashes they
/// complete, in one transaction.
async fn step(client: &mut deadpool_postgres::Object) -> Result<Step, StoreError> {
    let horizon: Option<DateTime<Utc>> = client
        .query_one("select ledger.final_horizon()", &[])
        .await?
        .try_get(0)
        .ok();
    let tail = client
        .query_opt(
            "select leaf_index, source_account_id, source_seq, created_at \
               from ledger.journal_leaves order by leaf_index desc limit 1",
            &[],
        )
        .await?;
    let size = match &tail {
        Some(tail) => tail.try_get::<_, i64>(0)? as u64 + 1,
        None => 0,
    };
    let Some(horizon) = horizon else {
        return Ok(Step::Appended { size, full: false });
    };
    // Every row with created_at < horizon is final: any later snapshot sees
    // the same set, so two sequencers compute the same leaves.
    let rows = match &tail {
        None => {
            client
                .query(
                    "select source_account_id, source_seq, created_at, row_hash
                       from ledger.transfers
                      where created_at < $1
                      order by created_at, source_account_id, source_seq
                      limit $2",
                    &[&horizon, &STEP_ROWS],
                )
                .await?
        }
        Some(tail) => {
            let (source, seq, created_at): (Uuid, i64, DateTime<Utc>) =
                (tail.try_get(1)?, tail.try_get(2)?, tail.try_get(3)?);
            // `created_at >= $1` is the part the BRIN index serves.
            client
                .query(
                    "select source_account_id, source_seq, created_at, row_hash
                       from ledger.transfers
                      where created_at >= $1 and created_at < $4
                        and (created_at, source_account_id, source_seq) > ($1, $2, $3)
                      order by created_at, source_account_id, source_seq
                      limit $5",
                    &[&created_at, &source, &seq, &horizon, &STEP_ROWS],
                )
                .await?
        }
    };
    if rows.is_empty() {
        return Ok(Step::Appended { size, full: false });
    }
    let full = rows.len() as i64 == STEP_ROWS;

    // The right edge of the tree so far: its perfect subtrees, largest
    // first. Appending a leaf merges equal neighbours like a binary counter;
    // each merge at STORED_LEVEL or above completes a node to store.
    let edge = subtrees(0..size);
    let known = Nodes::fetch(&*client, edge.clone()).await?;
    let mut stack: Vec<(u32, Hash)> = edge
        .iter()
        .map(|piece| known.get(piece).map(|hash| (piece.level, hash)))
        .collect::<Result<_, _>>()?;
    let count = rows.len();
    let (mut indices, mut sources, mut seqs, mut times, mut leaves) = (
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
    );
    let (mut levels, mut node_indices, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    for (offset, row) in rows.iter().enumerate() {
        let index = size + offset as u64;
        let row_hash: Vec<u8> = row.try_get(3)?;
        let row_hash: Hash = row_hash
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Internal(anyhow::anyhow!("a row hash is not 32 bytes")))?;
        let leaf = leaf_hash(&row_hash);
        indices.push(index as i64);
        sources.push(row.try_get::<_, Uuid>(0)?);
        seqs.push(row.try_get::<_, i64>(1)?);
        times.push(row.try_get::<_, DateTime<Utc>>(2)?);
        leaves.push(leaf.to_vec());
        append_leaf(&mut stack, index, leaf, |node, hash| {
            levels.push(node.level as i16);
            node_indices.push(node.index as i64);
            hashes.push(hash.to_vec());
        });
    }

    let tx = client.transaction().await?;
    let appended = tx
        .execute(
            "insert into ledger.journal_leaves
                 (leaf_index, source_account_id, source_seq, created_at, leaf_hash)
             select * from unnest($1::bigint[], $2::uuid[], $3::bigint[],
                                  $4::timestamptz[], $5::bytea[])",
            &[&indices, &sources, &seqs, &times, &leaves],
        )
        .await;
    match appended {
        // Another sequencer appended first: its leaf index or its row is
        // taken (journal_leaves_pkey or journal_leaves_row_key). Not a rule
        // a client can break, so not among the mapped `Constraint`s.
        Err(err) if lost_to_another_sequencer(&err) => return Ok(Step::Raced),
        other => other?,
    };
    if !levels.is_empty() {
        tx.execute(
            "insert into ledger.journal_nodes (level, node_index, hash)
             select * from unnest($1::smallint[], $2::bigint[], $3::bytea[])",
            &[&levels, &node_indices, &hashes],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Step::Appended {
        size: size + count as u64,
        full,
    })
}

/// A unique violation on the tree's leaves: another sequencer won the step.
fn lost_to_another_sequencer(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && db.table() == Some("journal_leaves")
    })
}
