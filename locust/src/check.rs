//! The ledger check after a run, read directly from PostgreSQL: balances sum
//! to zero per currency, no customer balance is negative, every derived
//! balance equals the plain sum of the log, and the log grew by exactly the
//! rows the run saw created.

use anyhow::Context;
use serde::Serialize;
use tokio_postgres::{Client, NoTls};

/// A connection to the ledger's database.
pub struct Ledger {
    client: Client,
}

/// What the check found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Per currency: the sum of every balance, system account included.
    pub sums: Vec<CurrencySum>,
    /// Customer accounts whose balance is below zero.
    pub negative_balances: i64,
    /// Accounts whose balance (from checkpoints and running totals) differs
    /// from the sum of their rows in the log.
    pub balances_not_matching_log: i64,
    /// Rows in ledger.transfers before the run (None: not counted).
    pub rows_before: Option<i64>,
    /// Rows after.
    pub rows_after: i64,
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
    pub accounts: i64,
    /// Sum of their balances, as PostgreSQL prints it.
    pub sum: String,
    /// Whether that is zero.
    pub zero: bool,
}

impl Ledger {
    /// Connects; the connection's task runs on the current runtime.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .context("Failed to connect to the ledger's database for the check")?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("ledger-load: database connection for the check failed: {err}");
            }
        });
        client
            .batch_execute("set statement_timeout = '120s'")
            .await
            .context("Failed to set a statement timeout for the check")?;
        Ok(Self { client })
    }

    /// Rows in the transfer log.
    pub async fn transfer_rows(&self) -> anyhow::Result<i64> {
        let row = self
            .client
            .query_one("select count(*) from ledger.transfers", &[])
            .await
            .context("Failed to count ledger.transfers")?;
        Ok(row.get(0))
    }

    /// Runs every check. `rows` is (rows before, rows the run created), when
    /// the run counted them.
    pub async fn check(&self, rows: Option<(i64, u64)>) -> anyhow::Result<Report> {
        let sums = self
            .client
            .query(
                "select currency_code, count(*), sum(balance)::text, sum(balance) = 0 \
                   from ledger.account_balances \
                  group by currency_code \
                  order by currency_code",
                &[],
            )
            .await
            .context("Failed to sum balances per currency")?
            .iter()
            .map(|row| CurrencySum {
                currency: row.get(0),
                accounts: row.get(1),
                sum: row.get(2),
                zero: row.get(3),
            })
            .collect::<Vec<_>>();
        let negative_balances: i64 = self
            .client
            .query_one(
                "select count(*) from ledger.account_balances where not is_system and balance < 0",
                &[],
            )
            .await
            .context("Failed to look for negative balances")?
            .get(0);
        // The balance functions read checkpoints and running totals; this
        // recomputes every balance from the raw rows, in the same snapshot.
        let balances_not_matching_log: i64 = self
            .client
            .query_one(
                "with movements as ( \
                     select destination_account_id as account_id, amount from ledger.transfers \
                     union all \
                     select source_account_id, -amount from ledger.transfers), \
                 from_log as ( \
                     select account_id, sum(amount) as balance from movements group by account_id) \
                 select count(*) \
                   from ledger.account_balances b \
                   left join from_log l using (account_id) \
                  where b.balance <> coalesce(l.balance, 0)",
                &[],
            )
            .await
            .context("Failed to compare balances with the log")?
            .get(0);
        let rows_after = self.transfer_rows().await?;

        let mut failures = Vec::new();
        for sum in sums.iter().filter(|sum| !sum.zero) {
            failures.push(format!(
                "{} balances sum to {}, not 0",
                sum.currency, sum.sum
            ));
        }
        if negative_balances > 0 {
            failures.push(format!(
                "{negative_balances} customer balances are negative"
            ));
        }
        if balances_not_matching_log > 0 {
            failures.push(format!(
                "{balances_not_matching_log} balances differ from the sum of their rows in the log"
            ));
        }
        if let Some((before, expected)) = rows {
            let grown = rows_after - before;
            if u64::try_from(grown).ok() != Some(expected) {
                failures.push(format!(
                    "ledger.transfers grew by {grown} rows ({before} → {rows_after}), \
                     but the run saw {expected} created"
                ));
            }
        }
        Ok(Report {
            sums,
            negative_balances,
            balances_not_matching_log,
            rows_before: rows.map(|(before, _)| before),
            rows_after,
            rows_expected: rows.map(|(_, expected)| expected),
            passed: failures.is_empty(),
            failures,
        })
    }
}

impl Report {
    /// Prints the report and its PASS/FAIL line.
    pub fn print(&self) {
        println!();
        println!("=== ledger check (PostgreSQL) ===");
        for sum in &self.sums {
            println!(
                "  {}: {} accounts, balances sum to {}",
                sum.currency, sum.accounts, sum.sum
            );
        }
        println!("  negative customer balances: {}", self.negative_balances);
        println!(
            "  balances differing from the log: {}",
            self.balances_not_matching_log
        );
        match (self.rows_before, self.rows_expected) {
            (Some(before), Some(expected)) => println!(
                "  ledger.transfers: {before} → {} rows (+{}), run saw {expected} created",
                self.rows_after,
                self.rows_after - before
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
