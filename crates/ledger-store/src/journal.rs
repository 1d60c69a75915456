//! The verifiable journal (see `ledger_domain::journal`): the digest of all
//! chains as of a final time, and inclusion proofs for single transfers.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::journal::{
    audit_path, leaf_hash, merkle_root, root_from_path, to_hex, Hash, TransferEncoding, GENESIS,
};
use ledger_domain::{Decimal, DomainError, TransferId};
use uuid::Uuid;

use crate::{Ledger, StoreError};

/// The digest of every source's chain as of a final time.
#[derive(Clone, Debug, PartialEq)]
pub struct Digest {
    /// Chains include rows with `created_at < at`.
    pub at: DateTime<Utc>,
    /// RFC 6962 Merkle root over the chain heads, hex.
    pub root: String,
    /// Number of leaves (source accounts with at least one row before `at`).
    pub chains: u64,
}

/// Everything needed to check one transfer against a digest.
#[derive(Clone, Debug, PartialEq)]
pub struct InclusionProof {
    /// The digest the proof leads to.
    pub digest: Digest,
    /// The source whose chain holds the transfer.
    pub source: Uuid,
    /// Hash of the row before the transfer (zeros for seq 0), hex.
    pub previous_hash: String,
    /// The transfer's row and every later row of its source before `at`:
    /// (seq, canonical encoding, row hash hex).
    pub chain: Vec<(i64, String, String)>,
    /// Position of the source's leaf in the tree.
    pub leaf_index: u64,
    /// Sibling hashes from the leaf up to the root, hex.
    pub audit_path: Vec<String>,
}

impl InclusionProof {
    /// Recomputes the chain and the tree and compares with the root: what an
    /// auditor does with a proof and a digest they stored.
    pub fn verify(&self) -> bool {
        let Some(mut hash) = from_hex(&self.previous_hash) else {
            return false;
        };
        let mut head_seq = None;
        for (seq, encoding, claimed) in &self.chain {
            hash = ledger_domain::journal::chain_hash(&hash, encoding.as_bytes());
            if to_hex(&hash) != *claimed {
                return false;
            }
            head_seq = Some(*seq);
        }
        let (Some(head_seq), Some(root)) = (head_seq, from_hex(&self.digest.root)) else {
            return false;
        };
        let leaf = leaf_hash(&self.source, head_seq, &hash);
        let path: Option<Vec<Hash>> = self.audit_path.iter().map(|h| from_hex(h)).collect();
        let Some(path) = path else { return false };
        root_from_path(
            &leaf,
            self.leaf_index as usize,
            self.digest.chains as usize,
            &path,
        ) == Some(root)
    }
}

fn from_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
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
    let encoding = TransferEncoding {
        transfer_id: row.try_get("transfer_text")?,
        source: row.try_get("source_text")?,
        source_seq: row.try_get("source_seq")?,
        destination: row.try_get("destination_text")?,
        currency: row.try_get("currency_code")?,
        amount: row.try_get("amount_text")?,
        created_at_micros: row.try_get("created_at_micros")?,
        source_outgoing_total: row.try_get("outgoing_text")?,
        source_balance_after: row.try_get("source_after_text")?,
        metadata: row.try_get("metadata_text")?,
    }
    .encode();
    Ok(Row {
        transfer_id: row.try_get("transfer_id")?,
        source: row.try_get("source_account_id")?,
        seq: row.try_get("source_seq")?,
        destination: row.try_get("destination_account_id")?,
        currency: row.try_get("currency_code")?,
        amount: row.try_get("amount")?,
        created_at_micros: row.try_get("created_at_micros")?,
        outgoing_total: row.try_get("source_outgoing_total")?,
        encoding,
        row_hash: row.try_get("row_hash")?,
    })
}

impl Ledger {
    /// The digest of all chains as of `at` (default: the final horizon).
    /// `at` must be final, so that the digest for a given time never changes.
    pub async fn digest(&self, at: Option<DateTime<Utc>>) -> Result<Digest, StoreError> {
        let _turn = self.journal_slots.acquire(self.config.journal_wait).await?;
        let client = self.client().await?;
        let (at, leaves) = chain_heads(&client, at).await?;
        Ok(Digest {
            at,
            root: to_hex(&merkle_root(
                &leaves.iter().map(|l| l.1).collect::<Vec<_>>(),
            )),
            chains: leaves.len() as u64,
        })
    }

    /// The proof that transfer `id` is in the digest as of `at` (default:
    /// the final horizon).
    pub async fn proof(
        &self,
        id: TransferId,
        at: Option<DateTime<Utc>>,
    ) -> Result<InclusionProof, StoreError> {
        // One connection for the whole proof, taken in turn with other
        // journal work: never two at once (hold and wait on the pool).
        let _turn = self.journal_slots.acquire(self.config.journal_wait).await?;
        let client = self.client().await?;
        let transfer = client
            .query_opt(
                "select source_account_id, source_seq, created_at from ledger.transfers \
                  where transfer_id = $1",
                &[&id.as_uuid()],
            )
            .await?
            .ok_or(DomainError::TransferNotFound(id))?;
        let source: Uuid = transfer.try_get(0)?;
        let seq: i64 = transfer.try_get(1)?;
        let created_at: DateTime<Utc> = transfer.try_get(2)?;
        let (at, leaves) = chain_heads(&client, at).await?;
        if created_at >= at {
            return Err(DomainError::NotYetFinal {
                at: at.to_rfc3339(),
                horizon: format!("{created_at} (the transfer is later than the digest)"),
            }
            .into());
        }
        let previous_hash = if seq == 0 {
            GENESIS.to_vec()
        } else {
            client
                .query_one(
                    "select row_hash from ledger.transfers \
                      where source_account_id = $1 and source_seq = $2",
                    &[&source, &(seq - 1)],
                )
                .await?
                .try_get(0)?
        };
        let rows = client
            .query(
                &format!(
                    "select {ROW_TEXT} from ledger.transfers \
                      where source_account_id = $1 and source_seq >= $2 and created_at < $3 \
                      order by source_seq"
                ),
                &[&source, &seq, &at],
            )
            .await?;
        let mut chain = Vec::with_capacity(rows.len());
        for raw in &rows {
            let row = read_row(raw)?;
            chain.push((row.seq, row.encoding, hex(&row.row_hash)));
        }
        let leaf_index = leaves
            .iter()
            .position(|(account, _)| *account == source)
            .ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("source missing from the digest"))
            })?;
        let hashes: Vec<Hash> = leaves.iter().map(|l| l.1).collect();
        Ok(InclusionProof {
            digest: Digest {
                at,
                root: to_hex(&merkle_root(&hashes)),
                chains: hashes.len() as u64,
            },
            source,
            previous_hash: hex(&previous_hash),
            chain,
            leaf_index: leaf_index as u64,
            audit_path: audit_path(&hashes, leaf_index).iter().map(to_hex).collect(),
        })
    }
}

/// One Merkle leaf per source account: its latest row before `at`.
async fn chain_heads(
    client: &impl GenericClient,
    at: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, Vec<(Uuid, Hash)>), StoreError> {
    let horizon: Option<DateTime<Utc>> = client
        .query_one("select ledger.final_horizon()", &[])
        .await?
        .try_get(0)
        .ok();
    let at = match (at, horizon) {
        (Some(at), Some(horizon)) if at <= horizon => at,
        (None, Some(horizon)) => horizon,
        (at, horizon) => {
            return Err(DomainError::NotYetFinal {
                at: at.map_or_else(|| "now".into(), |at| at.to_rfc3339()),
                horizon: horizon.map_or_else(|| "-infinity".into(), |h| h.to_rfc3339()),
            }
            .into())
        }
    };
    let rows = client
        .query(
            "select a.account_id, h.source_seq, h.row_hash
                   from ledger.accounts a
                   cross join lateral (
                         select t.source_seq, t.row_hash from ledger.transfers t
                          where t.source_account_id = a.account_id and t.created_at < $1
                          -- the rows of one batch share created_at
                          order by t.created_at desc, t.source_seq desc limit 1) h
                  order by a.account_id",
            &[&at],
        )
        .await?;
    let mut leaves = Vec::with_capacity(rows.len());
    for row in &rows {
        let account: Uuid = row.try_get(0)?;
        let seq: i64 = row.try_get(1)?;
        let hash: Vec<u8> = row.try_get(2)?;
        let hash: Hash = hash.as_slice().try_into().map_err(|_| {
            StoreError::Internal(anyhow::anyhow!("row hash of {account} is not 32 bytes"))
        })?;
        leaves.push((account, leaf_hash(&account, seq, &hash)));
    }
    Ok((at, leaves))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
