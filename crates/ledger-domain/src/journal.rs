//! The verifiable journal, without IO.
//!
//! * **Row hash** (per source, as before): `sha256(previous row's hash ‖
//!   canonical encoding)`, with 32 zero bytes before a source's first row.
//!   The database computes it in its insert trigger
//!   (`ledger.transfer_encoding`); [`TransferEncoding`] builds the same bytes.
//! * **Journal tree**: one append-only RFC 6962 Merkle tree over *every* row,
//!   in the order `(created_at, source, source_seq)`, appended only once a
//!   row is final (see `sql/V4__journal_tree.sql`). Leaf `i` is
//!   `sha256(0x00 ‖ row hash)`, an interior node `sha256(0x01 ‖ left ‖
//!   right)`. A digest is `(tree_size, root)`; a later digest extends an
//!   earlier one, and both inclusion and consistency proofs are O(log n).
//!
//! The store keeps the hashes of aligned perfect subtrees ([`Subtree`]) from
//! [`STORED_LEVEL`] up, so any root, audit path or consistency proof needs
//! O(log n) stored nodes and fewer than `2 · 2^STORED_LEVEL` leaves: the
//! functions here say *which* subtrees a proof needs ([`subtrees`],
//! [`inclusion_ranges`], [`consistency_ranges`]) and fold their hashes
//! ([`fold_subtrees`]); the store only fetches them.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash that precedes a source's first row.
pub const GENESIS: Hash = [0; 32];

/// The lowest level of the journal tree whose nodes the store keeps: a
/// stored node covers `2^STORED_LEVEL` = 64 leaves or more. Lower levels are
/// recomputed from the leaves (at most 2 × 63 per proof), which keeps the
/// stored nodes at one per 32 rows.
pub const STORED_LEVEL: u32 = 6;

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
    /// What a row of a hold, a capture, a reversal or a line change (or a
    /// transfer under a line or beside holds) adds; `None` for a row that
    /// version 2 describes completely.
    pub extension: Option<RowExtension<'a>>,
}

/// The fields of version 3, as the database renders them to text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowExtension<'a> {
    /// `transfer`, `hold`, `capture`, `reversal` or `overdraft_change`.
    pub kind: &'a str,
    /// The source's overdraft line from this row on.
    pub overdraft_limit: &'a str,
    /// The source's pending holds after this row.
    pub held_after: &'a str,
    /// A hold's amount, empty otherwise.
    pub held_amount: &'a str,
    /// A hold's expiry in microseconds since the epoch.
    pub hold_expires_at_micros: Option<i64>,
    /// A capture's hold id, empty otherwise.
    pub hold_id: &'a str,
    /// A reversal's original transfer id, empty otherwise.
    pub reverses: &'a str,
}

impl TransferEncoding<'_> {
    /// The canonical string (version 2, or 3 with an [`RowExtension`]):
    /// fields joined by `|`, metadata last so that a `|` inside it cannot
    /// shift another field. Version 1 carried
    /// the destination's balance after `source_balance_after`; proofs issued
    /// with it still verify, since an auditor hashes the encodings a proof
    /// carries as they are.
    pub fn encode(&self) -> String {
        let row = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.transfer_id,
            self.source,
            self.source_seq,
            self.destination,
            self.currency,
            self.amount,
            self.created_at_micros,
            self.source_outgoing_total,
            self.source_balance_after,
        );
        match &self.extension {
            None => format!("ledger-transfer-v2|{row}|{}", self.metadata),
            Some(extension) => format!(
                "ledger-transfer-v3|{row}|{}|{}|{}|{}|{}|{}|{}|{}",
                extension.kind,
                extension.overdraft_limit,
                extension.held_after,
                extension.held_amount,
                extension
                    .hold_expires_at_micros
                    .map(|micros| micros.to_string())
                    .unwrap_or_default(),
                extension.hold_id,
                extension.reverses,
                self.metadata
            ),
        }
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

/// The journal tree's leaf for a row: `sha256(0x00 ‖ row hash)`. The row
/// hash already commits to the row's encoding and to its source's chain, and
/// it is 32 bytes the sequencer reads instead of the whole row.
pub fn leaf_hash(row_hash: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(row_hash);
    hasher.finalize().into()
}

/// An interior node: `sha256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// RFC 6962 Merkle tree hash over already-hashed leaves (the reference
/// implementation: everything in memory).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// An aligned perfect subtree of the journal tree: leaves
/// `index · 2^level .. (index + 1) · 2^level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    /// Height: 0 is a leaf.
    pub level: u32,
    /// Position among the subtrees of this level.
    pub index: u64,
}

impl Subtree {
    /// The leaves it covers.
    pub fn leaves(&self) -> Range<u64> {
        self.index << self.level..(self.index + 1) << self.level
    }
}

/// The perfect subtrees whose right fold is `MTH(D[range])`, largest first:
/// the binary decomposition of the range's length. Every range an RFC 6962
/// proof or root names starts at a multiple of a power of two at least its
/// length, so each piece is aligned.
pub fn subtrees(range: Range<u64>) -> Vec<Subtree> {
    let mut pieces = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let level = 63 - (range.end - start).leading_zeros();
        debug_assert_eq!(start % (1 << level), 0, "unaligned range {range:?}");
        pieces.push(Subtree {
            level,
            index: start >> level,
        });
        start += 1 << level;
    }
    pieces
}

/// Appends leaf `index`, whose hash is `leaf`, to `edge`: the right edge of
/// the tree of the leaves before it (its perfect subtrees as `(level,
/// hash)`, largest first). Equal neighbours merge like a binary counter;
/// `completed` is called with every subtree the leaf completes at
/// [`STORED_LEVEL`] or above (the nodes the database keeps), smallest first.
pub fn append_leaf(
    edge: &mut Vec<(u32, Hash)>,
    index: u64,
    leaf: Hash,
    mut completed: impl FnMut(Subtree, Hash),
) {
    edge.push((0, leaf));
    while let [.., (left_level, left), (right_level, right)] = edge[..] {
        if left_level != right_level {
            break;
        }
        edge.truncate(edge.len() - 2);
        let level = left_level + 1;
        let hash = node_hash(&left, &right);
        edge.push((level, hash));
        if level >= STORED_LEVEL {
            let node = Subtree {
                level,
                index: ((index + 1) >> level) - 1,
            };
            completed(node, hash);
        }
    }
}

/// `MTH` of a range from the hashes of its [`subtrees`], in their order:
/// `H(p0, H(p1, … H(pk-1, pk)))`. None for no pieces (an empty range).
pub fn fold_subtrees(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |right, left| node_hash(left, &right)),
    )
}

/// The ranges whose `MTH`s form the audit path of leaf `index` in a tree of
/// `size` leaves (RFC 6962 §2.1.1), innermost first.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<Range<u64>> {
    fn path(m: u64, range: Range<u64>, out: &mut Vec<Range<u64>>) {
        let n = range.end - range.start;
        if n <= 1 {
            return;
        }
        let mid = range.start + split_point(n);
        if m < mid {
            path(m, range.start..mid, out);
            out.push(mid..range.end);
        } else {
            path(m, mid..range.end, out);
            out.push(range.start..mid);
        }
    }
    let mut out = Vec::new();
    if index < size {
        path(index, 0..size, &mut out);
    }
    out
}

/// Two tree sizes a consistency proof can join: `1 ≤ first ≤ second`.
/// (The empty tree is consistent with every tree; RFC 9162 defines no
/// proof from it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeSizes {
    first: u64,
    second: u64,
}

impl TreeSizes {
    /// The pair, if a consistency proof joins them.
    pub fn new(first: u64, second: u64) -> Result<Self, String> {
        if first == 0 {
            return Err("the first tree size must be at least 1".into());
        }
        if first > second {
            return Err(format!(
                "the first tree size ({first}) is larger than the second ({second})"
            ));
        }
        Ok(Self { first, second })
    }

    /// The earlier tree's size.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The later tree's size.
    pub fn second(&self) -> u64 {
        self.second
    }
}

/// The ranges whose `MTH`s form the consistency proof from the tree of
/// `first` leaves to the tree of `second` (RFC 6962 §2.1.2), in proof order.
/// Empty when `first` is 0 or not below `second`.
pub fn consistency_ranges(first: u64, second: u64) -> Vec<Range<u64>> {
    fn subproof(m: u64, range: Range<u64>, whole: bool, out: &mut Vec<Range<u64>>) {
        let n = range.end - range.start;
        if m == n {
            if !whole {
                out.push(range);
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            subproof(m, range.start..range.start + k, whole, out);
            out.push(range.start + k..range.end);
        } else {
            subproof(m - k, range.start + k..range.end, false, out);
            out.push(range.start..range.start + k);
        }
    }
    let mut out = Vec::new();
    if 0 < first && first < second {
        subproof(first, 0..second, true, &mut out);
    }
    out
}

/// The audit path of leaf `index`, from the leaves themselves (reference).
pub fn audit_path(leaves: &[Hash], index: usize) -> Vec<Hash> {
    inclusion_ranges(index as u64, leaves.len() as u64)
        .into_iter()
        .map(|r| merkle_root(&leaves[r.start as usize..r.end as usize]))
        .collect()
}

/// The consistency proof between the first `first` leaves and all of them
/// (reference).
pub fn consistency_proof(leaves: &[Hash], first: usize) -> Vec<Hash> {
    consistency_ranges(first as u64, leaves.len() as u64)
        .into_iter()
        .map(|r| merkle_root(&leaves[r.start as usize..r.end as usize]))
        .collect()
}

/// Recomputes the root from a leaf and its audit path (RFC 9162 §2.1.3.2).
pub fn root_from_path(leaf: &Hash, index: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let mut r = *leaf;
    let complete = walk_path(index, size - 1, path, |p, left| {
        r = if left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    });
    complete.then_some(r)
}

/// The walk RFC 9162 §2.1.3.2 and §2.1.4.2 share: from node `fn_` of a
/// tree whose last node is `sn`, up `path`; `step` gets each path node and
/// whether it is a left sibling. True when the path ends at the root (not
/// too long, not too short).
fn walk_path(mut fn_: u64, mut sn: u64, path: &[Hash], mut step: impl FnMut(&Hash, bool)) -> bool {
    for p in path {
        if sn == 0 {
            return false;
        }
        let left = fn_ & 1 == 1 || fn_ == sn;
        step(p, left);
        if left {
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0
}

/// Checks that the tree `(second, second_root)` extends `(first,
/// first_root)`, given their consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    // A first tree that is a perfect subtree is its own first node.
    let mut path = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((seed, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    let complete = walk_path(fn_, sn, rest, |c, left| {
        if left {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    });
    complete && fr == *first_root && sr == *second_root
}

/// Lower-case hex of a hash.
pub fn to_hex(hash: &Hash) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A hash from 64 hex digits; None for anything else.
pub fn from_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&chain_hash(&GENESIS, i.to_string().as_bytes())))
            .collect()
    }

    /// `MTH(D[range])` the way the store builds it: from its pieces.
    fn by_pieces(leaves: &[Hash], range: Range<u64>) -> Hash {
        let hashes: Vec<Hash> = subtrees(range)
            .iter()
            .map(|piece| {
                let r = piece.leaves();
                merkle_root(&leaves[r.start as usize..r.end as usize])
            })
            .collect();
        fold_subtrees(&hashes).expect("a non-empty range")
    }

    #[test]
    fn every_audit_path_leads_back_to_the_root() {
        for size in 1..=40 {
            let leaves = leaves(size);
            let root = merkle_root(&leaves);
            for (index, leaf) in leaves.iter().enumerate() {
                let path = audit_path(&leaves, index);
                assert_eq!(
                    root_from_path(leaf, index as u64, size as u64, &path),
                    Some(root),
                    "size {size}, index {index}"
                );
            }
        }
    }

    #[test]
    fn roots_and_proofs_from_perfect_subtrees_equal_those_from_the_leaves() {
        for size in 1..=70u64 {
            let leaves = leaves(size as usize);
            assert_eq!(by_pieces(&leaves, 0..size), merkle_root(&leaves));
            for index in 0..size {
                for range in inclusion_ranges(index, size) {
                    assert_eq!(
                        by_pieces(&leaves, range.clone()),
                        merkle_root(&leaves[range.start as usize..range.end as usize])
                    );
                }
            }
            for first in 1..=size {
                for range in consistency_ranges(first, size) {
                    by_pieces(&leaves, range);
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_leaf_does_not() {
        for second in 1..=40usize {
            let leaves = leaves(second);
            let second_root = merkle_root(&leaves);
            for first in 1..=second {
                let first_root = merkle_root(&leaves[..first]);
                let proof = consistency_proof(&leaves, first);
                assert!(
                    verify_consistency(
                        first as u64,
                        second as u64,
                        &first_root,
                        &second_root,
                        &proof
                    ),
                    "{first} → {second}"
                );
                // A tree in which one of the first leaves was rewritten
                // does not extend the first tree.
                let mut rewritten = leaves.clone();
                rewritten[first - 1] = leaf_hash(&GENESIS);
                let forged_root = merkle_root(&rewritten);
                let forged_proof = consistency_proof(&rewritten, first);
                assert!(
                    !verify_consistency(
                        first as u64,
                        second as u64,
                        &first_root,
                        &forged_root,
                        &forged_proof
                    ),
                    "{first} → {second} with leaf {} rewritten",
                    first - 1
                );
            }
        }
    }

    #[test]
    fn a_changed_leaf_does_not_verify() {
        let leaves = leaves(9);
        let root = merkle_root(&leaves);
        let path = audit_path(&leaves, 4);
        let forged = leaf_hash(&GENESIS);
        assert_ne!(root_from_path(&forged, 4, 9, &path), Some(root));
        assert_ne!(root_from_path(&leaves[4], 5, 9, &path), Some(root));
    }

    #[test]
    fn subtrees_are_the_binary_decomposition_of_a_range() {
        assert_eq!(
            subtrees(0..7),
            [
                Subtree { level: 2, index: 0 },
                Subtree { level: 1, index: 2 },
                Subtree { level: 0, index: 6 },
            ]
        );
        assert_eq!(subtrees(64..128), [Subtree { level: 6, index: 1 }]);
        assert_eq!(subtrees(5..5), []);
    }

    #[test]
    fn hex_round_trips_and_refuses_anything_else() {
        let hash = leaf_hash(&GENESIS);
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(from_hex("00"), None);
        assert_eq!(from_hex(&"zz".repeat(32)), None);
        assert_eq!(from_hex(&"é".repeat(32)), None);
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
            extension: None,
        };
        assert_eq!(
            encoding.encode(),
            r#"ledger-transfer-v2|t|s|3|d|USD|1.00|42|4.00|6.00|{"a": "x|y"}"#
        );
        let hold = TransferEncoding {
            amount: "0",
            extension: Some(RowExtension {
                kind: "hold",
                overdraft_limit: "5.00",
                held_after: "2.00",
                held_amount: "2.00",
                hold_expires_at_micros: Some(99),
                hold_id: "",
                reverses: "",
            }),
            ..encoding
        };
        assert_eq!(
            hold.encode(),
            r#"ledger-transfer-v3|t|s|3|d|USD|0|42|4.00|6.00|hold|5.00|2.00|2.00|99|||{"a": "x|y"}"#
        );
    }
}
