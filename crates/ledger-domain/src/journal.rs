//! The verifiable journal: each source's transfers form a hash chain, and a
//! Merkle tree over the chains' heads gives one digest for the whole ledger.
//!
//! * Row hash: `sha256(previous row's hash ‖ canonical encoding)`, with 32
//!   zero bytes before a source's first row. The database computes it in its
//!   insert trigger (`ledger.transfer_encoding`); [`TransferEncoding`] builds
//!   the same bytes, so anyone can recompute a chain.
//! * Digest: the RFC 6962 Merkle tree hash over one leaf per source account
//!   (in account-id order), each leaf `0x00 ‖ account id ‖ head seq ‖ head
//!   hash`; interior nodes are `sha256(0x01 ‖ left ‖ right)`.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash that precedes a source's first row.
pub const GENESIS: Hash = [0; 32];

/// The fields of a transfer row exactly as the database renders them to
/// text (numbers at their stored scale, time in microseconds since the
/// epoch, metadata as jsonb's own text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferEncoding<'a> {
    /// Transfer id (lower-case hyphenated UUID).
    pub transfer_id: &'a str,
    /// Source account id.
    pub source: &'a str,
    /// Sequence number out of the source.
    pub source_seq: i64,
    /// Destination account id.
    pub destination: &'a str,
    /// ISO 4217 code.
    pub currency: &'a str,
    /// Amount as numeric text, e.g. `12.50`.
    pub amount: &'a str,
    /// `created_at` in microseconds since the Unix epoch.
    pub created_at_micros: i64,
    /// The source's running outgoing total.
    pub source_outgoing_total: &'a str,
    /// The source's balance after the transfer.
    pub source_balance_after: &'a str,
    /// jsonb text of the metadata, empty when there is none.
    pub metadata: &'a str,
}

impl TransferEncoding<'_> {
    /// The canonical string (version 2): fields joined by `|`, metadata last
    /// so that a `|` inside it cannot shift another field. Version 1 carried
    /// the destination's balance after `source_balance_after`; proofs issued
    /// with it still verify, since an auditor hashes the encodings a proof
    /// carries as they are.
    pub fn encode(&self) -> String {
        format!(
            "ledger-transfer-v2|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.transfer_id,
            self.source,
            self.source_seq,
            self.destination,
            self.currency,
            self.amount,
            self.created_at_micros,
            self.source_outgoing_total,
            self.source_balance_after,
            self.metadata
        )
    }

    /// This row's hash, given the previous row's.
    pub fn chain_hash(&self, previous: &Hash) -> Hash {
        chain_hash(previous, self.encode().as_bytes())
    }
}

/// `sha256(previous ‖ encoding)`.
pub fn chain_hash(previous: &Hash, encoding: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(encoding);
    hasher.finalize().into()
}

/// The Merkle leaf of one source's chain head.
pub fn leaf_hash(account_id: &uuid::Uuid, head_seq: i64, head_hash: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(account_id.as_bytes());
    hasher.update(head_seq.to_be_bytes());
    hasher.update(head_hash);
    hasher.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 Merkle tree hash over already-hashed leaves.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// The sibling hashes from leaf `index` up to the root (RFC 6962 audit
/// path), innermost first.
pub fn audit_path(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let mut path = Vec::new();
    collect_path(leaves, index, &mut path);
    path
}

fn collect_path(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if index < k {
        collect_path(&leaves[..k], index, path);
        path.push(merkle_root(&leaves[k..]));
    } else {
        collect_path(&leaves[k..], index - k, path);
        path.push(merkle_root(&leaves[..k]));
    }
}

/// Recomputes the root from a leaf and its audit path (RFC 9162 §2.1.3.2).
pub fn root_from_path(leaf: &Hash, index: usize, size: usize, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(r)
}

/// Lower-case hex of a hash.
pub fn to_hex(hash: &Hash) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&uuid::Uuid::from_u128(i as u128), i as i64, &GENESIS))
            .collect()
    }

    #[test]
    fn every_audit_path_leads_back_to_the_root() {
        for size in 1..=17 {
            let leaves = leaves(size);
            let root = merkle_root(&leaves);
            for (index, leaf) in leaves.iter().enumerate() {
                let path = audit_path(&leaves, index);
                assert_eq!(
                    root_from_path(leaf, index, size, &path),
                    Some(root),
                    "size {size}, index {index}"
                );
            }
        }
    }

    #[test]
    fn a_changed_leaf_does_not_verify() {
        let leaves = leaves(9);
        let root = merkle_root(&leaves);
        let path = audit_path(&leaves, 4);
        let forged = leaf_hash(&uuid::Uuid::from_u128(4), 5, &GENESIS);
        assert_ne!(root_from_path(&forged, 4, 9, &path), Some(root));
        assert_ne!(root_from_path(&leaves[4], 5, 9, &path), Some(root));
    }

    #[test]
    fn the_encoding_puts_metadata_last() {
        let encoding = TransferEncoding {
            transfer_id: "t",
            source: "s",
            source_seq: 3,
            destination: "d",
            currency: "USD",
            amount: "1.00",
            created_at_micros: 42,
            source_outgoing_total: "4.00",
            source_balance_after: "6.00",
            metadata: r#"{"a": "x|y"}"#,
        };
        assert_eq!(
            encoding.encode(),
            r#"ledger-transfer-v2|t|s|3|d|USD|1.00|42|4.00|6.00|{"a": "x|y"}"#
        );
    }
}
