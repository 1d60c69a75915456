//! `verify`'s check of the journal tree against the log, in the same
//! snapshot.

use std::collections::HashMap;

use futures::{pin_mut, TryStreamExt};
use ledger_domain::journal::{append_leaf, leaf_hash, to_hex, Hash, Subtree};
use uuid::Uuid;

use super::{flag, Violation};
use crate::journal::hex;
use crate::{StoreError, VerifyReport};

/// The journal tree against the log, in the same snapshot: leaf indices
/// from 0 without a gap, in strictly increasing `(created_at, source, seq)`
/// order, each leaf `sha256(0x00 ‖ row_hash)` of an existing row; every
/// stored node the hash of its two halves, recomputed from the leaves; and
/// every row before the last leaf's time in the tree. A row edited with its
/// hash chain rebuilt still no longer matches its leaf: that names it.
pub(super) async fn verify_journal(
    tx: &tokio_postgres::Transaction<'_>,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let node_key = |level: i16, index: i64| Subtree {
        level: level as u32,
        index: index as u64,
    };
    // One per 32 leaves: 32 bytes of hash and a key each.
    let mut stored: HashMap<Subtree, Vec<u8>> = tx
        .query(
            "select level, node_index, hash from ledger.journal_nodes",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((node_key(row.try_get(0)?, row.try_get(1)?), row.try_get(2)?)))
        .collect::<Result<_, StoreError>>()?;

    let statement = tx
        .prepare(
            "select l.leaf_index, l.source_account_id, l.source_seq, l.leaf_hash,
                    l.created_at = t.created_at as same_time, t.transfer_id, t.row_hash,
                    (extract(epoch from t.created_at) * 1000000)::bigint
               from ledger.journal_leaves l
               left join ledger.transfers t
                 on t.source_account_id = l.source_account_id
                and t.source_seq = l.source_seq
              order by l.leaf_index",
        )
        .await?;
    let stream = tx.query_raw(&statement, std::iter::empty::<i64>()).await?;
    pin_mut!(stream);
    // The right edge of the tree recomputed so far (level, hash).
    let mut edge: Vec<(u32, Hash)> = Vec::new();
    let mut previous_key: Option<(i64, Uuid, i64)> = None;
    while let Some(raw) = stream.try_next().await? {
        let index: i64 = raw.try_get(0)?;
        let source: Uuid = raw.try_get(1)?;
        let seq: i64 = raw.try_get(2)?;
        let stored_leaf: Vec<u8> = raw.try_get(3)?;
        let same_time: Option<bool> = raw.try_get(4)?;
        let transfer: Option<Uuid> = raw.try_get(5)?;
        let row_hash: Option<Vec<u8>> = raw.try_get(6)?;
        let micros: Option<i64> = raw.try_get(7)?;
        let expected_index = report.leaves_checked as i64;
        report.leaves_checked += 1;
        let mut violation = |rule, detail: String| {
            flag(
                report,
                Violation {
                    rule,
                    row: transfer.map(|id| (source, seq, id)),
                    subject: Some(format!("journal leaf {index}")),
                    detail,
                },
            )
        };
        if index != expected_index {
            violation(
                "journal_leaf_gap",
                format!("expected leaf {expected_index}, found {index}"),
            );
        }
        let (Some(row_hash), Some(micros)) = (row_hash, micros) else {
            violation(
                "journal_leaf_without_row",
                format!("leaf {index} names ({source}, seq {seq}), which does not exist"),
            );
            continue;
        };
        let key = (micros, source, seq);
        if previous_key.is_some_and(|previous| key <= previous) || same_time != Some(true) {
            violation(
                "journal_order",
                format!("leaf {index} is out of (created_at, source, seq) order"),
            );
        }
        previous_key = Some(key);
        let expected_leaf = <Hash>::try_from(row_hash.as_slice())
            .ok()
            .map(|hash| leaf_hash(&hash));
        if expected_leaf.as_ref().map(|h| h.as_slice()) != Some(stored_leaf.as_slice()) {
            violation(
                "journal_leaf_mismatch",
                format!(
                    "stored leaf {} is not sha256(0x00 ‖ row hash {})",
                    hex(&stored_leaf),
                    hex(&row_hash)
                ),
            );
        }
        // Nodes are rebuilt from the stored leaves, so that a bad leaf is
        // reported once, above, and a bad node once, here.
        let leaf: Hash = stored_leaf.as_slice().try_into().unwrap_or_default();
        append_leaf(&mut edge, index as u64, leaf, |node, hash| {
            let level = node.level;
            let first_leaf = node.leaves().start;
            match stored.remove(&node) {
                Some(found) if found.as_slice() == hash.as_slice() => {}
                found => flag(
                    report,
                    Violation {
                        rule: "journal_node_mismatch",
                        row: None,
                        subject: Some(format!(
                            "journal node (level {level}, index {}), leaves {first_leaf} to {index}",
                            node.index
                        )),
                        detail: match found {
                            Some(found) => format!(
                                "stored {}, recomputed from the leaves {}",
                                hex(&found),
                                to_hex(&hash)
                            ),
                            None => "missing; its leaves are all in the tree".into(),
                        },
                    },
                ),
            }
        });
    }
    let mut orphans: Vec<Subtree> = stored.into_keys().collect();
    orphans.sort();
    for node in orphans {
        flag(
            report,
            Violation {
                rule: "journal_node_mismatch",
                row: None,
                subject: Some(format!(
                    "journal node (level {}, index {})",
                    node.level, node.index
                )),
                detail: "stored, but its leaves are not all in the tree".into(),
            },
        );
    }

    // Every row before the last leaf's time is final, so the sequencer
    // appended it: one that is not was slipped in afterwards.
    let missing = tx
        .query(
            "select t.source_account_id, t.source_seq, t.transfer_id
               from ledger.transfers t
              where t.created_at < (select l.created_at from ledger.journal_leaves l
                                     order by l.leaf_index desc limit 1)
                and not exists (select 1 from ledger.journal_leaves l
                                 where l.source_account_id = t.source_account_id
                                   and l.source_seq = t.source_seq)
              order by t.created_at, t.source_account_id, t.source_seq
              limit 100",
            &[],
        )
        .await?;
    for row in &missing {
        flag(
            report,
            Violation {
                rule: "journal_row_missing",
                row: Some((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)),
                subject: None,
                detail: "a final row is not in the journal tree".into(),
            },
        );
    }
    Ok(())
}
