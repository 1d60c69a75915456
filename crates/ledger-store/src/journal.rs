//! The verifiable journal (see `ledger_domain::journal`): full verification
//! of the log, the digest of all chains as of a final time, and inclusion
//! proofs for single transfers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures::{pin_mut, TryStreamExt};
use ledger_domain::journal::{
    audit_path, leaf_hash, merkle_root, root_from_path, to_hex, Hash, TransferEncoding, GENESIS,
};
use ledger_domain::{Decimal, DomainError, TransferId};
use uuid::Uuid;

use crate::{Ledger, StoreError};

/// What `verify` found.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// Transfer rows read.
    pub rows_checked: u64,
    /// Source chains recomputed.
    pub chains_checked: u64,
    /// Accounts whose balance was recomputed.
    pub accounts_checked: u64,
    /// Every disagreement, in log order (first = the first row where
    /// anything disagrees). Capped at 100.
    pub violations: Vec<Violation>,
}

/// One disagreement between the log and its invariants.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Stable name of the broken rule, e.g. `hash_mismatch`.
    pub rule: &'static str,
    /// The row, when the rule is about one row: (source, seq, transfer id).
    pub row: Option<(Uuid, i64, Uuid)>,
    /// The account or currency concerned, for ledger-wide rules.
    pub subject: Option<String>,
    /// What was expected and found.
    pub detail: String,
}

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

const MAX_VIOLATIONS: usize = 100;

/// Every column of a row as the database renders it to text, the same
/// rendering `ledger.transfer_encoding` uses.
const ROW_TEXT: &str = "transfer_id, transfer_id::text as transfer_text, \
    source_account_id, source_account_id::text as source_text, source_seq, \
    destination_account_id, destination_account_id::text as destination_text, currency_code, \
    amount, amount::text as amount_text, \
    (extract(epoch from created_at) * 1000000)::bigint as created_at_micros, \
    source_outgoing_total, source_outgoing_total::text as outgoing_text, \
    source_balance_after::text as source_after_text, \
    coalesce(metadata::text, '') as metadata_text, row_hash";

struct Row {
    transfer_id: Uuid,
    source: Uuid,
    seq: i64,
    destination: Uuid,
    currency: String,
    amount: Decimal,
    created_at_micros: i64,
    outgoing_total: Decimal,
    encoding: String,
    row_hash: Vec<u8>,
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row, StoreError> {
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
    /// Recomputes every chain and every invariant from the log alone: gap-free
    /// sequences, running totals, row hashes, time order, amounts, currency
    /// agreement, per-currency sums of zero, no negative customer balance,
    /// each derived balance equal to a plain recomputation, and every closed
    /// account empty with no transfer after its close.
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut client = self.client().await?;
        // One snapshot for the whole check, so that concurrent writes cannot
        // make the log and the derived balances disagree.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;

        // (currency, is system, closed_at in µs since the epoch).
        let accounts: HashMap<Uuid, (String, bool, Option<i64>)> = tx
            .query(
                "select account_id, currency_code, is_system, \
                        (extract(epoch from closed_at) * 1000000)::bigint \
                   from ledger.accounts",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
                ))
            })
            .collect::<Result<_, StoreError>>()?;

        let mut report = VerifyReport {
            rows_checked: 0,
            chains_checked: 0,
            accounts_checked: 0,
            violations: Vec::new(),
        };
        let flag = |report: &mut VerifyReport, violation: Violation| {
            if report.violations.len() < MAX_VIOLATIONS {
                report.violations.push(violation);
            }
        };
        let mut balances: HashMap<Uuid, Decimal> = HashMap::new();
        // The latest transfer touching each account, in µs.
        let mut last_moved: HashMap<Uuid, i64> = HashMap::new();

        let statement = tx
            .prepare(&format!(
                "select {ROW_TEXT} from ledger.transfers order by source_account_id, source_seq"
            ))
            .await?;
        let stream = tx.query_raw(&statement, std::iter::empty::<i64>()).await?;
        pin_mut!(stream);
        let mut previous: Option<(Uuid, i64, Decimal, Hash, i64)> = None;
        while let Some(raw) = stream.try_next().await? {
            let row = read_row(&raw)?;
            report.rows_checked += 1;
            let at = Some((row.source, row.seq, row.transfer_id));
            let (expected_seq, previous_total, previous_hash, previous_time) = match previous {
                Some((source, seq, total, hash, time)) if source == row.source => {
                    (seq + 1, total, hash, time)
                }
                _ => {
                    report.chains_checked += 1;
                    (0, Decimal::ZERO, GENESIS, i64::MIN)
                }
            };
            let mut violation = |rule, detail: String| {
                flag(
                    &mut report,
                    Violation {
                        rule,
                        row: at,
                        subject: None,
                        detail,
                    },
                )
            };
            if row.seq != expected_seq {
                violation(
                    "sequence_gap",
                    format!("expected seq {expected_seq}, found {}", row.seq),
                );
            }
            if row.amount <= Decimal::ZERO {
                violation("non_positive_amount", format!("amount {}", row.amount));
            }
            if row.source == row.destination {
                violation("same_account", "source equals destination".into());
            }
            if row.outgoing_total != previous_total + row.amount {
                violation(
                    "running_total",
                    format!(
                        "expected outgoing total {}, found {}",
                        previous_total + row.amount,
                        row.outgoing_total
                    ),
                );
            }
            // Non-decreasing, not increasing: the rows of one batch out of
            // one source share the batch's created_at (sql/V3__batches.sql).
            if row.created_at_micros < previous_time {
                violation("time_order", "created_at goes back along the chain".into());
            }
            for account in [row.source, row.destination] {
                match accounts.get(&account) {
                    Some((currency, _, _)) if *currency == row.currency => {}
                    Some((currency, _, _)) => violation(
                        "currency_mismatch",
                        format!(
                            "{} transfer touches {currency} account {account}",
                            row.currency
                        ),
                    ),
                    None => violation(
                        "unknown_account",
                        format!("account {account} does not exist"),
                    ),
                }
            }
            let hash = ledger_domain::journal::chain_hash(&previous_hash, row.encoding.as_bytes());
            if hash.as_slice() != row.row_hash.as_slice() {
                violation(
                    "hash_mismatch",
                    format!(
                        "stored row hash {} is not sha256(previous ‖ encoding) = {}",
                        hex(&row.row_hash),
                        to_hex(&hash)
                    ),
                );
            }
            *balances.entry(row.source).or_default() -= row.amount;
            *balances.entry(row.destination).or_default() += row.amount;
            for account in [row.source, row.destination] {
                let latest = last_moved.entry(account).or_insert(i64::MIN);
                *latest = (*latest).max(row.created_at_micros);
            }
            // Chain on from the stored hash, so one tampered row is reported
            // once rather than as every row after it.
            let stored: Hash = row.row_hash.as_slice().try_into().unwrap_or(hash);
            previous = Some((
                row.source,
                row.seq,
                row.outgoing_total,
                stored,
                row.created_at_micros,
            ));
        }

        let mut sums: HashMap<&str, Decimal> = HashMap::new();
        let derived: HashMap<Uuid, Decimal> = tx
            .query(
                "select account_id, balance from ledger.account_balances",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut ids: Vec<&Uuid> = accounts.keys().collect();
        ids.sort();
        for id in ids {
            let (currency, is_system, closed_at) = &accounts[id];
            let recomputed = balances.get(id).copied().unwrap_or_default();
            report.accounts_checked += 1;
            *sums.entry(currency).or_default() += recomputed;
            let subject = Some(id.to_string());
            if !is_system && recomputed < Decimal::ZERO {
                flag(
                    &mut report,
                    Violation {
                        rule: "negative_balance",
                        row: None,
                        subject: subject.clone(),
                        detail: format!("balance {recomputed}"),
                    },
                );
            }
            if let Some(closed_at) = closed_at {
                if !recomputed.is_zero() {
                    flag(
                        &mut report,
                        Violation {
                            rule: "closed_with_balance",
                            row: None,
                            subject: subject.clone(),
                            detail: format!("closed account holds {recomputed}"),
                        },
                    );
                }
                if let Some(moved) = last_moved.get(id).filter(|moved| **moved > *closed_at) {
                    flag(
                        &mut report,
                        Violation {
                            rule: "transfer_after_close",
                            row: None,
                            subject: subject.clone(),
                            detail: format!(
                                "a transfer at {moved} µs is later than the close at {closed_at} µs"
                            ),
                        },
                    );
                }
            }
            let view = derived.get(id).copied().unwrap_or_default();
            if view != recomputed {
                flag(
                    &mut report,
                    Violation {
                        rule: "derived_balance_mismatch",
                        row: None,
                        subject,
                        detail: format!("ledger.balance says {view}, the log sums to {recomputed}"),
                    },
                );
            }
        }
        let mut currencies: Vec<_> = sums.into_iter().collect();
        currencies.sort();
        for (currency, sum) in currencies {
            if !sum.is_zero() {
                flag(
                    &mut report,
                    Violation {
                        rule: "conservation",
                        row: None,
                        subject: Some(currency.to_owned()),
                        detail: format!("{currency} balances sum to {sum}, not zero"),
                    },
                );
            }
        }
        tx.commit().await?;
        Ok(report)
    }

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
