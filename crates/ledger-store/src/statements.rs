//! Account statements: the opening balance, every transfer of a window
//! oldest first with the running balance, and the closing balance, read in
//! batches so that a statement of any length takes constant memory.
//!
//! Each batch is its own short query, keyset-paginated on (created_at,
//! transfer id), on a connection taken from the pool for that batch only.
//! That is sound because a statement's window is final (it ends at or
//! before the final horizon): no row can appear in it between two batches.
//! Compared with one long query or a portal, nothing is held between
//! batches: no connection while the client reads slowly (a few slow
//! downloads cannot drain the pool), no open transaction pinning the
//! vacuum horizon for the whole download, and each batch is well inside the
//! statement timeout.

use chrono::{DateTime, Duration, Utc};
use ledger_domain::{AccountId, Currency, Decimal, DomainError, TransferId};
use serde_json::Value;
use uuid::Uuid;

use crate::records::{currency_of, find_one, Direction};
use crate::{Ledger, StoreError};

/// Rows per batch: about 0.5 MB of response with no metadata, few enough
/// that a batch's rows in memory stay small even at 16 KiB of metadata each.
const BATCH_ROWS: i64 = 1_000;

/// One transfer in a statement, seen from the statement's account.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementLine {
    /// The transfer.
    pub transfer_id: TransferId,
    /// When the ledger applied it.
    pub created_at: DateTime<Utc>,
    /// Into or out of the account.
    pub direction: Direction,
    /// The other account: the destination of money out, the source of
    /// money in.
    pub counterparty: AccountId,
    /// How much moved (always positive; `direction` says which way).
    pub amount: Decimal,
    /// The account's balance right after it, in statement order.
    pub balance_after: Decimal,
    /// The client's metadata, as given.
    pub metadata: Option<Value>,
}

/// A statement being read: the opening balance is known, the lines come
/// batch by batch ([`Self::next_batch`]).
pub struct StatementReader {
    ledger: Ledger,
    account: AccountId,
    /// The account's currency.
    pub currency: Currency,
    /// The window's start (inclusive).
    pub from: DateTime<Utc>,
    /// The window's end (exclusive).
    pub to: DateTime<Utc>,
    /// The balance of everything before `from`.
    pub opening: Decimal,
    balance: Decimal,
    /// The last line read: where the next batch starts after.
    after: (DateTime<Utc>, Uuid),
    lines: u64,
    done: bool,
}

impl Ledger {
    /// Starts the statement of `account` for `[from, to)`. Refused with
    /// [`DomainError::NotYetFinal`] when `to` is after the final horizon:
    /// a statement never changes once issued.
    pub async fn open_statement(
        &self,
        account: AccountId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<StatementReader, StoreError> {
        let before_from = from - Duration::microseconds(1);
        let client = self.client().await?;
        // Opening balance and horizon from one statement (one snapshot).
        let row = find_one(
            &client,
            "select currency_code, ledger.balance_at(account_id, $2) as opening,
                    ledger.final_horizon() as horizon
               from ledger.accounts where account_id = $1",
            &[&account.as_uuid(), &before_from],
            DomainError::AccountNotFound(account),
        )
        .await?;
        let horizon: DateTime<Utc> = match row.try_get::<_, Option<DateTime<Utc>>>("horizon") {
            Ok(Some(horizon)) => horizon,
            // '-infinity' (no horizon yet) does not fit a DateTime.
            _ => DateTime::<Utc>::MIN_UTC,
        };
        if to > horizon {
            return Err(DomainError::NotYetFinal {
                at: to.to_rfc3339(),
                horizon: horizon.to_rfc3339(),
            }
            .into());
        }
        let opening: Decimal = row.try_get("opening")?;
        Ok(StatementReader {
            ledger: self.clone(),
            account,
            currency: currency_of(row.try_get("currency_code")?)?,
            from,
            to,
            opening,
            balance: opening,
            after: (before_from, Uuid::nil()),
            lines: 0,
            done: false,
        })
    }
}

impl StatementReader {
    /// The next lines, oldest first; empty once the window is read. After
    /// the last line it checks the closing balance against the ledger's
    /// own as-of balance, so a statement that ends cleanly adds up.
    pub async fn next_batch(&mut self) -> Result<Vec<StatementLine>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let client = self.ledger.client().await?;
        // Each half walks its per-account index in time order from the last
        // line read; the merge keeps the next BATCH_ROWS. Only money
        // movements (`amount > 0`) are lines.
        let statement = client
            .prepare_cached(
                "(select transfer_id, created_at, destination_account_id as counterparty,
                         amount, metadata, true as outgoing
                    from ledger.transfers
                   where source_account_id = $1 and amount > 0
                     and created_at >= greatest($2::timestamptz, $4::timestamptz) and created_at < $3
                     and (created_at, transfer_id) > ($4::timestamptz, $5::uuid)
                   order by created_at, transfer_id limit $6)
                 union all
                 (select transfer_id, created_at, source_account_id as counterparty,
                         amount, metadata, false as outgoing
                    from ledger.transfers
                   where destination_account_id = $1 and amount > 0
                     and created_at >= greatest($2::timestamptz, $4::timestamptz) and created_at < $3
                     and (created_at, transfer_id) > ($4::timestamptz, $5::uuid)
                   order by created_at, transfer_id limit $6)
                 order by created_at, transfer_id limit $6",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &self.account.as_uuid(),
                    &self.from,
                    &self.to,
                    &self.after.0,
                    &self.after.1,
                    &BATCH_ROWS,
                ],
            )
            .await?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            let amount: Decimal = row.try_get("amount")?;
            let direction = if row.try_get("outgoing")? {
                self.balance -= amount;
                Direction::Out
            } else {
                self.balance += amount;
                Direction::In
            };
            let line = StatementLine {
                transfer_id: TransferId::from(row.try_get::<_, Uuid>("transfer_id")?),
                created_at: row.try_get("created_at")?,
                direction,
                counterparty: AccountId::from(row.try_get::<_, Uuid>("counterparty")?),
                amount,
                balance_after: self.balance,
                metadata: row.try_get("metadata")?,
            };
            self.after = (line.created_at, line.transfer_id.as_uuid());
            lines.push(line);
        }
        self.lines += lines.len() as u64;
        if (rows.len() as i64) < BATCH_ROWS {
            self.done = true;
            self.check_closing(&client).await?;
        }
        Ok(lines)
    }

    /// The balance after the lines read so far: the closing balance once
    /// [`Self::next_batch`] has returned an empty batch.
    pub fn balance(&self) -> Decimal {
        self.balance
    }

    /// How many lines have been read.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The running balance must end where the ledger's as-of balance does:
    /// the same figure reached two ways (the window is final, so both read
    /// the same rows).
    async fn check_closing(&self, client: &deadpool_postgres::Object) -> Result<(), StoreError> {
        let last_included = self.to - Duration::microseconds(1);
        let row = client
            .query_one(
                "select ledger.balance_at($1, $2) as closing",
                &[&self.account.as_uuid(), &last_included],
            )
            .await?;
        let closing: Decimal = row.try_get("closing")?;
        if closing != self.balance {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "statement of {} ends at {} but its balance as of {} is {closing}",
                self.account,
                self.balance,
                self.to
            )));
        }
        Ok(())
    }
}
