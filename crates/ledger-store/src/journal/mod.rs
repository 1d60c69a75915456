//! The verifiable journal (see `ledger_domain::journal` and
//! `sql/V4__journal_tree.sql`): digests, and inclusion and consistency
//! proofs, each O(log n) in the history. The tree is built by the sequencer
//! (`sequencer.rs`) and read back by `nodes.rs`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::journal::{
    chain_hash, from_hex, inclusion_ranges, leaf_hash, root_from_path, subtrees,
    verify_consistency, Hash, RowExtension, TransferEncoding, TreeSizes, GENESIS,
};
use ledger_domain::{Decimal, DomainError, TransferId};
use uuid::Uuid;

use crate::{Ledger, StoreError};

mod nodes;
mod sequencer;

use nodes::Nodes;
use sequencer::{catch_up, CATCH_UP_STEPS};

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
    source_balance_after, source_balance_after::text as source_after_text, \
    coalesce(metadata::text, '') as metadata_text, row_hash, \
    kind, source_overdraft_limit, source_overdraft_limit::text as line_text, \
    source_held_after, source_held_after::text as held_after_text, \
    coalesce(held_amount::text, '') as held_amount_text, \
    (extract(epoch from hold_expires_at) * 1000000)::bigint as hold_expires_at_micros, \
    coalesce(hold_id::text, '') as hold_id_text, \
    coalesce(reverses_transfer_id::text, '') as reverses_text";

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
    /// `transfer`, `hold`, `capture`, `reversal` or `overdraft_change`.
    pub(crate) kind: String,
    pub(crate) balance_after: Decimal,
    pub(crate) held_after: Decimal,
    pub(crate) overdraft_limit: Decimal,
}

/// Version 3's fields, for a row that version 2 cannot describe: the same
/// rule as `ledger.transfer_encoding` (V6).
fn read_extension(row: &tokio_postgres::Row) -> Result<Option<RowExtension<'_>>, StoreError> {
    let kind: &str = row.try_get("kind")?;
    let line: Decimal = row.try_get("source_overdraft_limit")?;
    let held: Decimal = row.try_get("source_held_after")?;
    if kind == "transfer" && line.is_zero() && held.is_zero() {
        return Ok(None);
    }
    Ok(Some(RowExtension {
        kind,
        overdraft_limit: row.try_get("line_text")?,
        held_after: row.try_get("held_after_text")?,
        held_amount: row.try_get("held_amount_text")?,
        hold_expires_at_micros: row.try_get("hold_expires_at_micros")?,
        hold_id: row.try_get("hold_id_text")?,
        reverses: row.try_get("reverses_text")?,
    }))
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
        extension: read_extension(row)?,
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
        kind: row.try_get("kind")?,
        balance_after: row.try_get("source_balance_after")?,
        held_after: row.try_get("source_held_after")?,
        overdraft_limit: row.try_get("source_overdraft_limit")?,
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

pub(super) fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal(anyhow::anyhow!("a stored hash is not 32 bytes")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
