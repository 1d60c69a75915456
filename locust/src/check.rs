//! The ledger check after a run: the store's one invariant check
//! (`ledger_store::Ledger::verify`, the same `ledger verify` runs: balances
//! sum to zero per currency, no customer balance is below its overdraft line, every derived
//! balance equals the plain sum of the log, chains, hashes, closed accounts,
//! idempotency keys), plus the run's own condition: the log grew by exactly
//! the rows the run saw created. No SQL here: the store owns every statement.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use ledger_store::{Ledger, StoreConfig, VerifyReport};
use serde::Serialize;

/// The check reads the whole log in one statement: far longer than a
/// request may take.
const CHECK_STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The ledger a run is checked against.
pub struct LedgerCheck {
    ledger: Ledger,
}

/// What the check found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Per currency: the sum of every balance, system account included.
    pub sums: Vec<CurrencySum>,
    /// Customer accounts whose balance is below minus their overdraft line.
    pub balances_below_line: u64,
    /// Accounts whose balance (from checkpoints and running totals) differs
    /// from the sum of their rows in the log.
    pub balances_not_matching_log: u64,
    /// Every broken rule of `ledger verify`, with how often it broke.
    pub violations: BTreeMap<String, u64>,
    /// Rows in ledger.transfers before the run (None: not counted).
    pub rows_before: Option<u64>,
    /// Rows after.
    pub rows_after: u64,
    /// Rows the run saw created (201s of writes, funded opens).
    pub rows_expected: Option<u64>,
    /// Every condition held.
    pub passed: bool,
    /// What failed, in words.
    pub failures: Vec<String>,
}

/// One currency's total.
#[derive(Debug, Serialize)]
pub struct CurrencySum {
    /// ISO 4217 code.
    pub currency: String,
    /// Accounts in it.
    pub accounts: u64,
    /// Sum of their balances.
    pub sum: String,
    /// Whether that is zero.
    pub zero: bool,
}

impl LedgerCheck {
    /// A store on the ledger's database; connections open when first used.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        let mut config = StoreConfig::new(url);
        config.pool_size = 2;
        config.statement_timeout = CHECK_STATEMENT_TIMEOUT;
        let ledger = Ledger::connect(config)
            .context("Failed to set up a connection to the ledger's database for the check")?;
        Ok(Self { ledger })
    }

    /// Rows in the transfer log.
    pub async fn transfer_rows(&self) -> anyhow::Result<u64> {
        self.ledger
            .transfer_rows()
            .await
            .context("Failed to count ledger.transfers")
    }

    /// Runs every check. `rows` is (rows before, rows the run created), when
    /// the run counted them.
    pub async fn check(&self, rows: Option<(u64, u64)>) -> anyhow::Result<Report> {
        let report = self
            .ledger
            .verify()
            .await
            .context("Failed to verify the ledger")?;
        Ok(Report::new(&report, rows))
    }
}

impl Report {
    /// The run's verdict from the store's report and the row counts.
    fn new(report: &VerifyReport, rows: Option<(u64, u64)>) -> Self {
        let sums: Vec<CurrencySum> = report
            .currencies
            .iter()
            .map(|total| CurrencySum {
                currency: total.currency.clone(),
                accounts: total.accounts,
                sum: total.sum.to_string(),
                zero: total.sum.is_zero(),
            })
            .collect();
        let balances_below_line =
            report.count("below_overdraft_line") + report.count("row_below_overdraft_line");
        let balances_not_matching_log = report.count("derived_balance_mismatch");
        let rows_after = report.rows_checked;

        let mut failures = Vec::new();
        for sum in sums.iter().filter(|sum| !sum.zero) {
            failures.push(format!(
                "{} balances sum to {}, not 0",
                sum.currency, sum.sum
            ));
        }
        if balances_below_line > 0 {
            failures.push(format!(
                "{balances_below_line} customer balances are below their overdraft line"
            ));
        }
        if balances_not_matching_log > 0 {
            failures.push(format!(
                "{balances_not_matching_log} balances differ from the sum of their rows in the log"
            ));
        }
        let told = [
            "conservation",
            "below_overdraft_line",
            "row_below_overdraft_line",
            "derived_balance_mismatch",
        ];
        for (rule, count) in &report.counts {
            if !told.contains(rule) {
                failures.push(format!("ledger verify: {count} × {rule}"));
            }
        }
        if let Some((before, expected)) = rows {
            let grown = rows_after.checked_sub(before);
            if grown != Some(expected) {
                failures.push(format!(
                    "ledger.transfers grew from {before} to {rows_after} rows, \
                     but the run saw {expected} created"
                ));
            }
        }
        Self {
            sums,
            balances_below_line,
            balances_not_matching_log,
            violations: report
                .counts
                .iter()
                .map(|(rule, count)| ((*rule).to_owned(), *count))
                .collect(),
            rows_before: rows.map(|(before, _)| before),
            rows_after,
            rows_expected: rows.map(|(_, expected)| expected),
            passed: failures.is_empty(),
            failures,
        }
    }

    /// Prints the report and its PASS/FAIL line.
    pub fn print(&self) {
        println!();
        println!("=== ledger check (ledger verify) ===");
        for sum in &self.sums {
            println!(
                "  {}: {} accounts, balances sum to {}",
                sum.currency, sum.accounts, sum.sum
            );
        }
        println!(
            "  customer balances below their overdraft line: {}",
            self.balances_below_line
        );
        println!(
            "  balances differing from the log: {}",
            self.balances_not_matching_log
        );
        let broken: u64 = self.violations.values().sum();
        println!("  violations of any rule: {broken}");
        match (self.rows_before, self.rows_expected) {
            (Some(before), Some(expected)) => println!(
                "  ledger.transfers: {before} → {} rows (+{}), run saw {expected} created",
                self.rows_after,
                self.rows_after.saturating_sub(before)
            ),
            _ => println!("  ledger.transfers: {} rows", self.rows_after),
        }
        if self.passed {
            println!("LEDGER CHECK: PASS");
        } else {
            for failure in &self.failures {
                println!("  FAILED: {failure}");
            }
            println!("LEDGER CHECK: FAIL");
        }
    }
}
