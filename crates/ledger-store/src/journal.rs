//! The verifiable journal (see `ledger_domain::journal` and
//! `sql/V4__journal_tree.sql`): the sequencer that appends final rows to the
//! journal tree, digests, and inclusion and consistency proofs, each
//! O(log n) in the history.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::journal::{
    append_leaf, chain_hash, fold_subtrees, from_hex, inclusion_ranges, leaf_hash, merkle_root,
    root_from_path, subtrees, to_hex, verify_consistency, Hash, Subtree, TransferEncoding,
    TreeSizes, GENESIS, STORED_LEVEL,
};
use ledger_domain::{Decimal, DomainError, TransferId};
use uuid::Uuid;

use crate::horizon::run_every;
use crate::{Ledger, StoreError};

/// Most rows one sequencer step appends: one bounded transaction, well
/// inside the statement timeout.
const STEP_ROWS: i64 = 10_000;

/// Most steps a digest or proof request takes to catch the tree up itself
/// (the background sequencer normally keeps it at the horizon); beyond that
/// it answers `Unavailable` rather than hold its connection for long.
const CATCH_UP_STEPS: usize = 20;

/// Most times a step is started again after another sequencer appended the
/// same leaves first.
const MAX_RACES: usize = 100;

/// The journal tree as of a final time: an auditor stores `(tree_size,
/// root)` and checks proofs against it later.
#[derive(Clone, Debug, PartialEq)]
pub struct Digest {
    /// The tree holds every row with `created_at < at`, and no other.
    pub at: DateTime<Utc>,
    /// Number of leaves.
    pub tree_size: u64,
    /// RFC 6962 Merkle root, hex.
    pub root: String,
}

/// The journal tree of a given size (a digest without its time).
#[derive(Clone, Debug, PartialEq)]
pub struct TreeHead {
    /// Number of leaves.
    pub tree_size: u64,
    /// RFC 6962 Merkle root, hex.
    pub root: String,
}

/// Everything needed to check one transfer against a digest.
#[derive(Clone, Debug, PartialEq)]
pub struct InclusionProof {
    /// The digest the proof leads to.
    pub digest: Digest,
    /// The transfer's row hash before it in its source's chain (zeros for
    /// seq 0), hex.
    pub previous_hash: String,
    /// The transfer's canonical encoding.
    pub encoding: String,
    /// `sha256(previous_hash ‖ encoding)`, hex.
    pub row_hash: String,
    /// The transfer's leaf in the journal tree.
    pub leaf_index: u64,
    /// Sibling hashes from the leaf up to the root (RFC 6962 §2.1.1), hex.
    pub audit_path: Vec<String>,
}

impl InclusionProof {
    /// Recomputes the row hash, the leaf and the root and compares with the
    /// digest's root: what an auditor does with a proof and a digest they
    /// stored.
    pub fn verify(&self, stored_root: &str) -> bool {
        let (Some(previous), Some(root)) = (from_hex(&self.previous_hash), from_hex(stored_root))
        else {
            return false;
        };
        let row = chain_hash(&previous, self.encoding.as_bytes());
        let path: Option<Vec<Hash>> = self.audit_path.iter().map(|h| from_hex(h)).collect();
        let Some(path) = path else { return false };
        root_from_path(
            &leaf_hash(&row),
            self.leaf_index,
            self.digest.tree_size,
            &path,
        ) == Some(root)
    }
}

/// The proof that the tree of `second.tree_size` leaves extends the tree of
/// `first.tree_size`: nothing in the first was rewritten.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsistencyProof {
    /// The earlier tree.
    pub first: TreeHead,
    /// The later tree.
    pub second: TreeHead,
    /// RFC 6962 §2.1.2 proof nodes, hex.
    pub proof: Vec<String>,
}

impl ConsistencyProof {
    /// Checks the proof against a root the auditor stored for the first
    /// size (RFC 9162 §2.1.4.2), and the second root it leads to.
    pub fn verify(&self, stored_first_root: &str) -> bool {
        let roots = (from_hex(stored_first_root), from_hex(&self.second.root));
        let (Some(first), Some(second)) = roots else {
            return false;
        };
        let proof: Option<Vec<Hash>> = self.proof.iter().map(|h| from_hex(h)).collect();
        proof.is_some_and(|proof| {
            verify_consistency(
                self.first.tree_size,
                self.second.tree_size,
                &first,
                &second,
                &proof,
            )
        })
    }
}

/// Every column of a row as the database renders it to text, the same
/// rendering `ledger.transfer_encoding` uses.
pub(crate) const ROW_TEXT: &str = "transfer_id, transfer_id::text as transfer_text, \
    source_account_id, source_account_id::text as source_text, source_seq, \
    destination_account_id, destination_account_id::text as destination_text, currency_code, \
    amount, amount::text as amount_text, \
    (extract(epoch from created_at) * 1000000)::bigint as created_at_micros, \
    source_outgoing_total, source_outgoing_total::text as outgoing_text, \
    source_balance_after::text as source_after_text, \
    coalesce(metadata::text, '') as metadata_text, row_hash";

pub(crate) struct Row {
    pub(crate) transfer_id: Uuid,
    pub(crate) source: Uuid,
    pub(crate) seq: i64,
    pub(crate) destination: Uuid,
    pub(crate) currency: String,
    pub(crate) amount: Decimal,
    pub(crate) created_at_micros: i64,
    pub(crate) outgoing_total: Decimal,
    pub(crate) encoding: String,
    pub(crate) row_hash: Vec<u8>,
}

pub(crate) fn read_row(row: &tokio_postgres::Row) -> Result<Row, StoreError> {
    // Read once, for both the encoding and the typed row, so the two agree.
    let seq: i64 = row.try_get("source_seq")?;
    let currency: &str = row.try_get("currency_code")?;
    let created_at_micros: i64 = row.try_get("created_at_micros")?;
    let encoding = TransferEncoding {
        transfer_id: row.try_get("transfer_text")?,
        source: row.try_get("source_text")?,
        source_seq: seq,
        destination: row.try_get("destination_text")?,
        currency,
        amount: row.try_get("amount_text")?,
        created_at_micros,
        source_outgoing_total: row.try_get("outgoing_text")?,
        source_balance_after: row.try_get("source_after_text")?,
        metadata: row.try_get("metadata_text")?,
    }
    .encode();
    Ok(Row {
        transfer_id: row.try_get("transfer_id")?,
        source: row.try_get("source_account_id")?,
        seq,
        destination: row.try_get("destination_account_id")?,
        currency: currency.to_owned(),
        amount: row.try_get("amount")?,
        created_at_micros,
        outgoing_total: row.try_get("source_outgoing_total")?,
        encoding,
        row_hash: row.try_get("row_hash")?,
    })
}

impl Ledger {
    /// The digest as of `at` (default: the final horizon). `at` must be
    /// final, so that the digest for a given time never changes.
    pub async fn digest(&self, at: Option<DateTime<Utc>>) -> Result<Digest, StoreError> {
        let _turn = self.journal_slots.acquire(self.config.journal_wait).await?;
        let mut client = self.client().await?;
        let at = final_time(&client, at).await?;
        catch_up(&mut client, CATCH_UP_STEPS).await?;
        let tree_size = size_at(&client, at).await?;
        let nodes = Nodes::fetch(&client, subtrees(0..tree_size)).await?;
        nodes.digest(at, tree_size)
    }

    /// The proof that transfer `id` is in the digest as of `at` (default:
    /// the final horizon): its row, its leaf and the audit path. O(log n)
    /// in the history, whatever the transfer's source did since.
    pub async fn proof(
        &self,
        id: TransferId,
        at: Option<DateTime<Utc>>,
    ) -> Result<InclusionProof, StoreError> {
        // One connection for the whole proof, taken in turn with other
        // journal work: never two at once (hold and wait on the pool).
        let _turn = self.journal_slots.acquire(self.config.journal_wait).await?;
        let mut client = self.client().await?;
        let transfer = client
            .query_opt(
                &format!(
                    "select {ROW_TEXT}, created_at,
                            (select p.row_hash from ledger.transfers p
                              where p.source_account_id = t.source_account_id
                                and p.source_seq = t.source_seq - 1) as previous_hash
                       from ledger.transfers t
                      where transfer_id = $1"
                ),
                &[&id.as_uuid()],
            )
            .await?
            .ok_or(DomainError::TransferNotFound(id))?;
        let row = read_row(&transfer)?;
        let at = final_time(&client, at).await?;
        let created_at: DateTime<Utc> = transfer.try_get("created_at")?;
        if created_at >= at {
            return Err(DomainError::NotYetFinal {
                at: at.to_rfc3339(),
                horizon: format!("{created_at} (the transfer is later than the digest)"),
            }
            .into());
        }
        let previous: Option<Vec<u8>> = transfer.try_get("previous_hash")?;
        let previous = previous.unwrap_or_else(|| GENESIS.to_vec());
        catch_up(&mut client, CATCH_UP_STEPS).await?;
        let tree_size = size_at(&client, at).await?;
        let leaf_index: i64 = client
            .query_opt(
                "select leaf_index from ledger.journal_leaves \
                  where source_account_id = $1 and source_seq = $2",
                &[&row.source, &row.seq],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!(
                    "transfer {id} is final but not in the journal tree"
                ))
            })?
            .try_get(0)?;
        let leaf_index = leaf_index as u64;
        let ranges = inclusion_ranges(leaf_index, tree_size);
        let (nodes, audit_path) = Nodes::fetch_path(&client, &[tree_size], ranges).await?;
        Ok(InclusionProof {
            digest: nodes.digest(at, tree_size)?,
            previous_hash: hex(&previous),
            encoding: row.encoding,
            row_hash: hex(&row.row_hash),
            leaf_index,
            audit_path,
        })
    }

    /// The proof that the journal tree of `sizes.second()` leaves extends
    /// the tree of `sizes.first()`. Both must be final (at most the tree's
    /// size at the final horizon).
    pub async fn consistency(&self, sizes: TreeSizes) -> Result<ConsistencyProof, StoreError> {
        let _turn = self.journal_slots.acquire(self.config.journal_wait).await?;
        let mut client = self.client().await?;
        let size = catch_up(&mut client, CATCH_UP_STEPS).await?;
        if sizes.second() > size {
            return Err(DomainError::NotYetFinal {
                at: format!("tree size {}", sizes.second()),
                horizon: format!("tree size {size}"),
            }
            .into());
        }
        let ranges = ledger_domain::journal::consistency_ranges(sizes.first(), sizes.second());
        let (nodes, proof) =
            Nodes::fetch_path(&client, &[sizes.first(), sizes.second()], ranges).await?;
        Ok(ConsistencyProof {
            first: nodes.head(sizes.first())?,
            second: nodes.head(sizes.second())?,
            proof,
        })
    }

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

/// `at`, or the final horizon, checked to be final.
async fn final_time(
    client: &impl GenericClient,
    at: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, StoreError> {
    let horizon: Option<DateTime<Utc>> = client
        .query_one("select ledger.final_horizon()", &[])
        .await?
        .try_get(0)
        .ok();
    match (at, horizon) {
        (Some(at), Some(horizon)) if at <= horizon => Ok(at),
        (None, Some(horizon)) => Ok(horizon),
        (at, horizon) => Err(DomainError::NotYetFinal {
            at: at.map_or_else(|| "now".into(), |at| at.to_rfc3339()),
            horizon: horizon.map_or_else(|| "-infinity".into(), |h| h.to_rfc3339()),
        }
        .into()),
    }
}

/// Leaves with `created_at < at`: the size of the digest as of `at`. The
/// tree must already hold every row before `at` ([`catch_up`]).
async fn size_at(client: &impl GenericClient, at: DateTime<Utc>) -> Result<u64, StoreError> {
    let size: i64 = client
        .query_one(
            "select coalesce((select leaf_index + 1 from ledger.journal_leaves
                               where created_at < $1
                               order by created_at desc, leaf_index desc limit 1), 0)",
            &[&at],
        )
        .await?
        .try_get(0)?;
    Ok(size as u64)
}

/// Steps until the tree holds every row before the final horizon; returns
/// its size. After `max_steps` full steps, `Unavailable`.
async fn catch_up(
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

/// The hashes of the perfect subtrees a root or proof needs: stored nodes
/// from [`STORED_LEVEL`] up, smaller ones recomputed from their leaves.
struct Nodes(HashMap<Subtree, Hash>);

impl Nodes {
    /// Two queries whatever the pieces: O(log n) stored nodes, and fewer
    /// than 2 · 2^STORED_LEVEL leaves for the small pieces at the edges.
    async fn fetch(
        client: &impl GenericClient,
        pieces: impl IntoIterator<Item = Subtree>,
    ) -> Result<Self, StoreError> {
        let pieces: BTreeSet<Subtree> = pieces.into_iter().collect();
        let (stored, small): (Vec<Subtree>, Vec<Subtree>) = pieces
            .into_iter()
            .partition(|piece| piece.level >= STORED_LEVEL);
        let mut hashes = HashMap::with_capacity(stored.len() + small.len());
        if !stored.is_empty() {
            let levels: Vec<i16> = stored.iter().map(|p| p.level as i16).collect();
            let indices: Vec<i64> = stored.iter().map(|p| p.index as i64).collect();
            for row in client
                .query(
                    "select n.level, n.node_index, n.hash
                       from unnest($1::smallint[], $2::bigint[]) as want(level, node_index)
                       join ledger.journal_nodes n using (level, node_index)",
                    &[&levels, &indices],
                )
                .await?
            {
                let level: i16 = row.try_get(0)?;
                let index: i64 = row.try_get(1)?;
                let piece = Subtree {
                    level: level as u32,
                    index: index as u64,
                };
                hashes.insert(piece, to_hash(row.try_get(2)?)?);
            }
        }
        if !small.is_empty() {
            let wanted: Vec<i64> = small
                .iter()
                .flat_map(|piece| piece.leaves())
                .map(|index| index as i64)
                .collect();
            let leaves: HashMap<u64, Hash> = client
                .query(
                    "select leaf_index, leaf_hash from ledger.journal_leaves \
                      where leaf_index = any($1)",
                    &[&wanted],
                )
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<_, i64>(0)? as u64, to_hash(row.try_get(1)?)?)))
                .collect::<Result<_, StoreError>>()?;
            for piece in small {
                let hashes_below: Option<Vec<Hash>> =
                    piece.leaves().map(|i| leaves.get(&i).copied()).collect();
                if let Some(below) = hashes_below {
                    hashes.insert(piece, merkle_root(&below));
                }
            }
        }
        Ok(Self(hashes))
    }

    /// What a proof needs: the nodes under the trees of `sizes` leaves (for
    /// their roots) and under `ranges`, and each range's hash, hex (the
    /// proof's path).
    async fn fetch_path(
        client: &impl GenericClient,
        sizes: &[u64],
        ranges: Vec<Range<u64>>,
    ) -> Result<(Self, Vec<String>), StoreError> {
        let trees = sizes.iter().map(|&size| 0..size);
        let pieces = trees.chain(ranges.iter().cloned()).flat_map(subtrees);
        let nodes = Self::fetch(client, pieces).await?;
        let path = ranges
            .into_iter()
            .map(|range| nodes.range(range).map(|hash| to_hex(&hash)))
            .collect::<Result<_, _>>()?;
        Ok((nodes, path))
    }

    fn get(&self, piece: &Subtree) -> Result<Hash, StoreError> {
        self.0.get(piece).copied().ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!(
                "journal subtree {piece:?} is missing from the tree"
            ))
        })
    }

    /// `MTH` of the leaves in `range`.
    fn range(&self, range: Range<u64>) -> Result<Hash, StoreError> {
        let pieces = subtrees(range)
            .iter()
            .map(|piece| self.get(piece))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fold_subtrees(&pieces).unwrap_or_else(|| merkle_root(&[])))
    }

    /// The root of the tree of the first `size` leaves.
    fn root(&self, size: u64) -> Result<Hash, StoreError> {
        self.range(0..size)
    }

    /// The tree of the first `tree_size` leaves.
    fn head(&self, tree_size: u64) -> Result<TreeHead, StoreError> {
        Ok(TreeHead {
            tree_size,
            root: to_hex(&self.root(tree_size)?),
        })
    }

    /// The digest as of `at`, whose tree is the first `tree_size` leaves.
    fn digest(&self, at: DateTime<Utc>, tree_size: u64) -> Result<Digest, StoreError> {
        let TreeHead { tree_size, root } = self.head(tree_size)?;
        Ok(Digest {
            at,
            tree_size,
            root,
        })
    }
}

fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal(anyhow::anyhow!("a stored hash is not 32 bytes")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A unique violation on the tree's leaves: another sequencer won the step.
fn lost_to_another_sequencer(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && db.table() == Some("journal_leaves")
    })
}
