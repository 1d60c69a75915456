//! The verifiable journal: digests of the journal tree, inclusion proofs
//! and consistency proofs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::timestamp::Timestamp;

/// The final time a digest or proof is for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JournalParams {
    /// The tree holds every transfer before this time (RFC 3339, years
    /// 0000–9999; truncated to whole microseconds, the ledger's precision,
    /// and echoed so). It must be final; the current final horizon when
    /// absent.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub at: Option<Timestamp>,
}

/// The two tree sizes a consistency proof joins.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    /// The earlier digest's `tree_size` (at least 1).
    #[param(minimum = 1)]
    pub from: u64,
    /// The later digest's `tree_size`: at least `from`, and at most the
    /// tree's size at the final horizon.
    #[param(minimum = 1)]
    pub to: u64,
}

/// The journal tree as of a final time: an RFC 6962 Merkle tree over every
/// transfer before `at`, in `(created_at, source, source_seq)` order. The
/// digest for a given `at` never changes, and a later digest extends it, so
/// an auditor stores `(tree_size, root)` and checks proofs against it later.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JournalDigest)]
pub struct DigestDto {
    /// The tree holds every transfer with `created_at` before this time.
    pub at: DateTime<Utc>,
    /// Number of leaves: transfers before `at`.
    pub tree_size: u64,
    /// Merkle root, lower-case hex SHA-256.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub root: String,
}

impl From<ledger_store::Digest> for DigestDto {
    fn from(digest: ledger_store::Digest) -> Self {
        Self {
            at: digest.at,
            tree_size: digest.tree_size,
            root: digest.root,
        }
    }
}

/// What an auditor needs to check that a transfer is in a digest: the row
/// hash `sha256(previous_hash ‖ encoding)`, the leaf `sha256(0x00 ‖ row
/// hash)`, then the `audit_path` folded from `leaf_index` (RFC 9162
/// §2.1.3.2) must give `digest.root`. Its size is O(log n) in the history.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = InclusionProof)]
pub struct ProofDto {
    /// The digest the proof leads to.
    pub digest: DigestDto,
    /// The transfer's canonical encoding (README, "Verifiable journal").
    pub encoding: String,
    /// Hash of the row before the transfer in its source's chain (64 zeros
    /// for the source's first row), hex.
    pub previous_hash: String,
    /// `sha256(previous_hash ‖ encoding)`, hex.
    pub row_hash: String,
    /// The transfer's position in the journal tree.
    pub leaf_index: u64,
    /// Sibling hashes from the leaf up to the root, hex.
    pub audit_path: Vec<String>,
}

impl From<ledger_store::InclusionProof> for ProofDto {
    fn from(proof: ledger_store::InclusionProof) -> Self {
        Self {
            digest: proof.digest.into(),
            encoding: proof.encoding,
            previous_hash: proof.previous_hash,
            row_hash: proof.row_hash,
            leaf_index: proof.leaf_index,
            audit_path: proof.audit_path,
        }
    }
}

/// The journal tree of a given size.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TreeHead)]
pub struct TreeHeadDto {
    /// Number of leaves.
    pub tree_size: u64,
    /// Merkle root, lower-case hex SHA-256.
    pub root: String,
}

impl From<ledger_store::TreeHead> for TreeHeadDto {
    fn from(head: ledger_store::TreeHead) -> Self {
        Self {
            tree_size: head.tree_size,
            root: head.root,
        }
    }
}

/// The proof that the tree of `to.tree_size` leaves extends the tree of
/// `from.tree_size` (RFC 6962 §2.1.2): check it with the root you stored
/// for `from` (RFC 9162 §2.1.4.2); it leads to `to.root`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConsistencyProof)]
pub struct ConsistencyDto {
    /// The earlier tree, as the ledger has it now: its root must equal the
    /// one you stored.
    pub from: TreeHeadDto,
    /// The later tree.
    pub to: TreeHeadDto,
    /// Proof nodes, hex, in RFC 6962 order; empty when the sizes are equal.
    pub proof: Vec<String>,
}

impl From<ledger_store::ConsistencyProof> for ConsistencyDto {
    fn from(proof: ledger_store::ConsistencyProof) -> Self {
        Self {
            from: proof.first.into(),
            to: proof.second.into(),
            proof: proof.proof,
        }
    }
}
