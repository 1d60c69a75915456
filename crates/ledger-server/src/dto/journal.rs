//! The verifiable journal: digests and inclusion proofs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::timestamp::Timestamp;

/// The final time a digest or proof is for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JournalParams {
    /// Chains include every transfer before this time (RFC 3339, years
    /// 0000–9999; truncated to whole microseconds, the ledger's precision,
    /// and echoed so). It must be final; the current final horizon when
    /// absent.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub at: Option<Timestamp>,
}

/// The digest of every source's hash chain as of a final time: an RFC 6962
/// Merkle root over one leaf per source account. The digest for a given `at`
/// never changes, so an auditor can store it and check proofs against it
/// later.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JournalDigest)]
pub struct DigestDto {
    /// Chains include every transfer with `created_at` before this time.
    pub at: DateTime<Utc>,
    /// Merkle root, lower-case hex SHA-256.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub root: String,
    /// Number of leaves: source accounts with at least one transfer before `at`.
    pub chains: u64,
}

impl From<ledger_store::Digest> for DigestDto {
    fn from(digest: ledger_store::Digest) -> Self {
        Self {
            at: digest.at,
            root: digest.root,
            chains: digest.chains,
        }
    }
}

/// One row of a source's hash chain.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChainLink)]
pub struct ChainLinkDto {
    /// The row's sequence number out of the source.
    pub seq: i64,
    /// The row's canonical encoding (see docs/design.md).
    pub encoding: String,
    /// `sha256(previous hash ‖ encoding)`, hex.
    pub hash: String,
}

/// What an auditor needs to check that a transfer is in a digest: hash the
/// chain links in order starting from `previous_hash`, make the leaf
/// `sha256(0x00 ‖ source ‖ last seq (8 bytes, big-endian) ‖ last hash)`, then
/// fold the `audit_path` (RFC 9162 §2.1.3.2) and compare with `digest.root`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = InclusionProof)]
pub struct ProofDto {
    /// The digest the proof leads to.
    pub digest: DigestDto,
    /// The source account whose chain holds the transfer.
    pub source: Uuid,
    /// Hash of the row before the transfer (64 zeros for the first row), hex.
    pub previous_hash: String,
    /// The transfer's row, then every later row of its source before `at`.
    pub chain: Vec<ChainLinkDto>,
    /// The source's leaf position in the tree.
    pub leaf_index: u64,
    /// Sibling hashes from the leaf up to the root, hex.
    pub audit_path: Vec<String>,
}

impl From<ledger_store::InclusionProof> for ProofDto {
    fn from(proof: ledger_store::InclusionProof) -> Self {
        Self {
            digest: proof.digest.into(),
            source: proof.source,
            previous_hash: proof.previous_hash,
            chain: proof
                .chain
                .into_iter()
                .map(|(seq, encoding, hash)| ChainLinkDto {
                    seq,
                    encoding,
                    hash,
                })
                .collect(),
            leaf_index: proof.leaf_index,
            audit_path: proof.audit_path,
        }
    }
}
