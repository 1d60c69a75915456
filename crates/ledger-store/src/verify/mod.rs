//! `ledger verify`: every invariant of the ledger recomputed from the log
//! alone, in one snapshot. The one check the CLI (`ledger verify`), the test
//! suites (`ledger_testkit::assert_sound`) and the load run's final check
//! (`ledger-load check`) all share: a rule added here is checked everywhere.

use std::collections::{BTreeMap, HashMap};

use futures::{pin_mut, TryStreamExt};
use ledger_domain::journal::{to_hex, Hash, GENESIS};
use ledger_domain::Decimal;
use uuid::Uuid;

use crate::error::Context;
use crate::journal::{hex, read_row, ROW_TEXT};
use crate::{Ledger, StoreError};

mod holds;
mod journal;

use holds::verify_holds_and_reversals;
use journal::verify_journal;

/// What `verify` found.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// Transfer rows read: the size of the log in the checked snapshot.
    pub rows_checked: u64,
    /// Source chains recomputed.
    pub chains_checked: u64,
    /// Leaves of the journal tree checked against their rows.
    pub leaves_checked: u64,
    /// Accounts whose balance was recomputed.
    pub accounts_checked: u64,
    /// Idempotency keys whose recorded transfer or batch was looked up.
    pub idempotency_keys_checked: u64,
    /// Per currency, in code order: its accounts and the sum of their
    /// recomputed balances (zero when money is conserved).
    pub currencies: Vec<CurrencyTotal>,
    /// Every disagreement, in log order (first = the first row where
    /// anything disagrees). Capped at 100; [`VerifyReport::counts`] has them
    /// all.
    pub violations: Vec<Violation>,
    /// How many violations of each rule there were, uncapped.
    pub counts: BTreeMap<&'static str, u64>,
}

impl VerifyReport {
    /// Whether every invariant held.
    pub fn is_sound(&self) -> bool {
        self.counts.is_empty()
    }

    /// How many times `rule` was broken (0 for a rule that held).
    pub fn count(&self, rule: &str) -> u64 {
        self.counts.get(rule).copied().unwrap_or(0)
    }
}

/// One currency's accounts and the sum of their balances.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrencyTotal {
    /// ISO 4217 code.
    pub currency: String,
    /// Accounts in it, the system account included.
    pub accounts: u64,
    /// The sum of their balances recomputed from the log.
    pub sum: Decimal,
}

/// One disagreement between the log and its invariants.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Stable name of the broken rule, one of [`RULES`].
    pub rule: &'static str,
    /// The row, when the rule is about one row: (source, seq, transfer id).
    pub row: Option<(Uuid, i64, Uuid)>,
    /// The account or currency concerned, for ledger-wide rules.
    pub subject: Option<String>,
    /// What was expected and found.
    pub detail: String,
}

const MAX_VIOLATIONS: usize = 100;

/// Every rule `verify` checks, by its stable name.
pub const RULES: &[&str] = &[
    "sequence_gap",
    "non_positive_amount",
    "same_account",
    "running_total",
    "time_order",
    "currency_mismatch",
    "unknown_account",
    "hash_mismatch",
    "non_money_row_moves_money",
    "row_below_overdraft_line",
    "below_overdraft_line",
    "closed_with_balance",
    "transfer_after_close",
    "derived_balance_mismatch",
    "conservation",
    "held_mismatch",
    "hold_resolution_mismatch",
    "capture_mismatch",
    "reversal_mismatch",
    "idempotency_key_dangling",
    "journal_leaf_gap",
    "journal_leaf_without_row",
    "journal_order",
    "journal_leaf_mismatch",
    "journal_node_mismatch",
    "journal_row_missing",
];

fn flag(report: &mut VerifyReport, violation: Violation) {
    debug_assert!(RULES.contains(&violation.rule), "{}", violation.rule);
    *report.counts.entry(violation.rule).or_default() += 1;
    if report.violations.len() < MAX_VIOLATIONS {
        report.violations.push(violation);
    }
}

impl Ledger {
    /// Rows in the transfer log: cheap, for a load run that compares the
    /// log's growth with what its clients were told (the count `verify`
    /// reports as [`VerifyReport::rows_checked`] afterwards).
    pub async fn transfer_rows(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let count: i64 = client
            .query_one("select count(*) from ledger.transfers", &[])
            .await?
            .try_get(0)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Recomputes every chain and every invariant from the log alone: gap-free
    /// sequences, running totals, row hashes, time order, amounts, currency
    /// agreement, per-currency sums of zero, no customer balance below its
    /// overdraft line (nor any row's available balance below zero), holds,
    /// captures and reversals consistent (see `holds`),
    /// each derived balance equal to a plain recomputation, every closed
    /// account empty with no transfer after its close, every idempotency
    /// key's recorded transfer or batch present, and the journal tree (each
    /// leaf the hash of its row, in order, every final row in it, each stored
    /// node the hash of its leaves). [`RULES`] names them.
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

        // (currency, is system, closed_at in µs since the epoch, opening
        // overdraft line).
        let accounts: HashMap<Uuid, (String, bool, Option<i64>, Decimal)> = tx
            .query(
                "select account_id, currency_code, is_system, \
                        (extract(epoch from closed_at) * 1000000)::bigint, overdraft_limit \
                   from ledger.accounts",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    (
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                    ),
                ))
            })
            .collect::<Result<_, StoreError>>()?;

        let mut report = VerifyReport {
            rows_checked: 0,
            chains_checked: 0,
            leaves_checked: 0,
            accounts_checked: 0,
            idempotency_keys_checked: 0,
            currencies: Vec::new(),
            violations: Vec::new(),
            counts: BTreeMap::new(),
        };
        let mut balances: HashMap<Uuid, Decimal> = HashMap::new();
        // The latest transfer touching each account, in µs.
        let mut last_moved: HashMap<Uuid, i64> = HashMap::new();
        // The line on each source's latest row.
        let mut lines: HashMap<Uuid, Decimal> = HashMap::new();

        let statement = tx
            .prepare(&format!(
                "select {ROW_TEXT} from ledger.transfers order by source_account_id, source_seq"
            ))
            .await?;
        let stream = tx
            .query_raw(&statement, std::iter::empty::<i64>())
            .await
            .context("read the log to verify it")?;
        pin_mut!(stream);
        let mut previous: Option<(Uuid, i64, Decimal, Hash, i64)> = None;
        while let Some(raw) = stream
            .try_next()
            .await
            .context("read the log to verify it")?
        {
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
            // A hold's placement and a line change move nothing; every
            // other row moves a positive amount.
            let moves_money = !matches!(row.kind.as_str(), "hold" | "overdraft_change");
            if moves_money && row.amount <= Decimal::ZERO {
                violation("non_positive_amount", format!("amount {}", row.amount));
            }
            if !moves_money && !row.amount.is_zero() {
                violation(
                    "non_money_row_moves_money",
                    format!("a {} row moves {}", row.kind, row.amount),
                );
            }
            let source_is_system = accounts.get(&row.source).is_some_and(|account| account.1);
            if !source_is_system
                && row.balance_after - row.held_after + row.overdraft_limit < Decimal::ZERO
            {
                violation(
                    "row_below_overdraft_line",
                    format!(
                        "balance {} - held {} + line {} is below zero",
                        row.balance_after, row.held_after, row.overdraft_limit
                    ),
                );
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
                    Some((currency, ..)) if *currency == row.currency => {}
                    Some((currency, ..)) => violation(
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
            lines.insert(row.source, row.overdraft_limit);
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

        let mut sums: HashMap<&str, (u64, Decimal)> = HashMap::new();
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
            let (currency, is_system, closed_at, opening_line) = &accounts[id];
            let line = lines.get(id).unwrap_or(opening_line);
            let recomputed = balances.get(id).copied().unwrap_or_default();
            report.accounts_checked += 1;
            let total = sums.entry(currency).or_default();
            total.0 += 1;
            total.1 += recomputed;
            let subject = Some(id.to_string());
            if !is_system && recomputed + line < Decimal::ZERO {
                flag(
                    &mut report,
                    Violation {
                        rule: "below_overdraft_line",
                        row: None,
                        subject: subject.clone(),
                        detail: format!("balance {recomputed} is below its line of -{line}"),
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
        for (currency, (accounts, sum)) in currencies {
            report.currencies.push(CurrencyTotal {
                currency: currency.to_owned(),
                accounts,
                sum,
            });
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

        // A key records the write it protects in the same transaction, so a
        // recorded transfer or batch that is not there was lost or forged.
        let keys = tx
            .query(
                "select k.idempotency_key, k.transfer_id, k.batch_id, \
                        (k.transfer_id is null or exists (select 1 from ledger.transfers t \
                                                          where t.transfer_id = k.transfer_id)) \
                    and (k.batch_id is null or exists (select 1 from ledger.batches b \
                                                       where b.batch_id = k.batch_id)) \
                   from ledger.idempotency_keys k \
                  order by k.idempotency_key",
                &[],
            )
            .await?;
        for key in &keys {
            report.idempotency_keys_checked += 1;
            if !key.try_get::<_, bool>(3)? {
                let transfer: Option<Uuid> = key.try_get(1)?;
                let batch: Option<Uuid> = key.try_get(2)?;
                flag(
                    &mut report,
                    Violation {
                        rule: "idempotency_key_dangling",
                        row: None,
                        subject: Some(key.try_get(0)?),
                        detail: format!(
                            "the key records transfer {transfer:?} / batch {batch:?}, \
                             which the log does not hold"
                        ),
                    },
                );
            }
        }
        verify_holds_and_reversals(&tx, &mut report).await?;
        verify_journal(&tx, &mut report).await?;
        tx.commit().await.context("end the verify snapshot")?;
        Ok(report)
    }
}
