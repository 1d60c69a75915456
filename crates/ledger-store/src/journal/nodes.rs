//! Reading the journal tree back: the hashes of the perfect subtrees a root
//! or a proof needs.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::journal::{
    fold_subtrees, merkle_root, subtrees, to_hex, Hash, Subtree, STORED_LEVEL,
};

use super::{to_hash, Digest, TreeHead};
use crate::StoreError;

/// The hashes of the perfect subtrees a root or proof needs: stored nodes
/// from [`STORED_LEVEL`] up, smaller ones recomputed from their leaves.
pub(super) struct Nodes(HashMap<Subtree, Hash>);

impl Nodes {
    /// Two queries whatever the pieces: O(log n) stored nodes, and fewer
    /// than 2 · 2^STORED_LEVEL leaves for the small pieces at the edges.
    pub(super) async fn fetch(
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
    pub(super) async fn fetch_path(
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

    pub(super) fn get(&self, piece: &Subtree) -> Result<Hash, StoreError> {
        self.0.get(piece).copied().ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!(
                "journal subtree {piece:?} is missing from the tree"
            ))
        })
    }

    /// `MTH` of the leaves in `range`.
    pub(super) fn range(&self, range: Range<u64>) -> Result<Hash, StoreError> {
        let pieces = subtrees(range)
            .iter()
            .map(|piece| self.get(piece))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fold_subtrees(&pieces).unwrap_or_else(|| merkle_root(&[])))
    }

    /// The root of the tree of the first `size` leaves.
    pub(super) fn root(&self, size: u64) -> Result<Hash, StoreError> {
        self.range(0..size)
    }

    /// The tree of the first `tree_size` leaves.
    pub(super) fn head(&self, tree_size: u64) -> Result<TreeHead, StoreError> {
        Ok(TreeHead {
            tree_size,
            root: to_hex(&self.root(tree_size)?),
        })
    }

    /// The digest as of `at`, whose tree is the first `tree_size` leaves.
    pub(super) fn digest(&self, at: DateTime<Utc>, tree_size: u64) -> Result<Digest, StoreError> {
        let TreeHead { tree_size, root } = self.head(tree_size)?;
        Ok(Digest {
            at,
            tree_size,
            root,
        })
    }
}
