use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{AccountId, Decimal, DomainError};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::accounts::MAX_PAGE_SIZE;
use crate::error::Context;
use crate::records::{
    currency_of, find_one, transfer_from_row, Balance, Direction, HistoryEntry, HistoryQuery, Page,
    TRANSFER_COLUMNS,
};
use crate::{Ledger, StoreError};

impl Ledger {
    /// The account's balance now. Never final: a transfer may commit next.
    pub async fn balance(&self, account: AccountId) -> Result<Balance, StoreError> {
        self.read_balance(
            account,
            "select currency_code, ledger.balance(account_id) as balance, \
                    ledger.held_at(account_id, clock_timestamp()) as held, \
                    ledger.overdraft_limit(account_id) as overdraft_limit, \
                    clock_timestamp() as at, false as is_final \
               from ledger.accounts where account_id = $1",
            &[&account.as_uuid()],
        )
        .await
    }

    /// The account's balance including every transfer with `created_at <=
    /// at`, and whether that answer is final (see `ledger.final_horizon`).
    /// Value and finality come from one statement, hence one snapshot.
    pub async fn balance_at(
        &self,
        account: AccountId,
        at: DateTime<Utc>,
    ) -> Result<Balance, StoreError> {
        // Outside PostgreSQL's range the answer is the one at its edge: zero
        // before anything existed, the current balance after.
        let query_at = at.clamp(database_min(), database_max());
        let balance = self
            .read_balance(
                account,
                "select currency_code, ledger.balance_at(account_id, $2) as balance, \
                        ledger.held_at(account_id, $2) as held, \
                        ledger.overdraft_limit_at(account_id, $2) as overdraft_limit, \
                        $2 as at, $2 < ledger.final_horizon() as is_final \
                   from ledger.accounts where account_id = $1",
                &[&account.as_uuid(), &query_at],
            )
            .await?;
        // The answer is as of the time asked about, even one PostgreSQL
        // cannot hold.
        Ok(Balance { at, ..balance })
    }

    /// Runs a balance statement of `account` (its `$1`), which selects
    /// `currency_code`, `balance`, `at` and `is_final`.
    async fn read_balance(
        &self,
        account: AccountId,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Balance, StoreError> {
        let client = self.client().await?;
        let row = find_one(&client, sql, params, DomainError::AccountNotFound(account)).await?;
        Ok(Balance {
            account_id: account,
            currency: currency_of(row.try_get("currency_code")?)?,
            balance: row.try_get("balance")?,
            held: row.try_get("held")?,
            overdraft_limit: row.try_get("overdraft_limit")?,
            at: row.try_get("at")?,
            is_final: row.try_get("is_final")?,
        })
    }

    /// The transfers into and out of `account`, newest first: at most
    /// `query.limit` entries, and no more than about [`PAGE_BYTE_BUDGET`]
    /// bytes of them (always at least one).
    pub async fn history(
        &self,
        account: AccountId,
        query: &HistoryQuery,
    ) -> Result<Page<HistoryEntry>, StoreError> {
        let scope = format!("history:{account}");
        // Absent bounds are NULL and become ±infinity in SQL: chrono's own
        // extremes lie outside PostgreSQL's timestamp range.
        let (before_time, before_id) = match &query.cursor {
            Some(cursor) => {
                let position = self.cursor_key().await?.open(&scope, cursor)?;
                let (time, id) = parse_history_position(position)?;
                (Some(time), Some(id))
            }
            None => (None, None),
        };
        let from = query.from.filter(|from| *from > database_min());
        let to = query.to.filter(|to| *to < database_max());
        let limit = i64::from(query.limit.clamp(1, MAX_PAGE_SIZE)) + 1;

        let client = self.client().await?;
        exists(&client, account).await?;
        // Each half walks its own (account, created_at) index backwards; the
        // merge keeps the newest `limit`. The byte budget is applied in SQL,
        // so rows past it are never sent: a page of 1,000 rows with 16 KiB
        // of metadata each was 16 MB in the server's memory (issue 9). The
        // balance right after the newest entry comes from the same statement
        // (one snapshot): the balance at its time, less what entries of the
        // same microsecond that order before it moved; every older entry's
        // follows by walking the page.
        let statement = client
            .prepare_cached(&format!(
                "with page as (
                   select * from (
                     select h.*,
                            sum({ROW_BYTES}) over (order by created_at desc, transfer_id desc)
                              - {ROW_BYTES} as bytes_before,
                            count(*) over () as matched
                       from (
                         (select {TRANSFER_COLUMNS}, 'out' as direction from ledger.transfers
                           where source_account_id = $1 {WINDOW}
                           order by created_at desc, transfer_id desc limit $6)
                         union all
                         (select {TRANSFER_COLUMNS}, 'in' as direction from ledger.transfers
                           where destination_account_id = $1 {WINDOW}
                           order by created_at desc, transfer_id desc limit $6)
                       ) h
                      order by created_at desc, transfer_id desc
                      limit $6
                   ) p
                   where bytes_before < $7),
                 newest as (
                   select created_at, transfer_id from page
                    order by created_at desc, transfer_id desc limit 1)
                 select page.*,
                        (select ledger.balance_at($1, n.created_at)
                                - coalesce((select sum(t.amount) from ledger.transfers t
                                             where t.destination_account_id = $1
                                               and t.created_at = n.created_at
                                               and t.transfer_id > n.transfer_id), 0)
                                + coalesce((select sum(t.amount) from ledger.transfers t
                                             where t.source_account_id = $1
                                               and t.created_at = n.created_at
                                               and t.transfer_id > n.transfer_id), 0)
                           from newest n) as newest_balance_after
                   from page
                  order by created_at desc, transfer_id desc"
            ))
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &account.as_uuid(),
                    &from,
                    &to,
                    &before_time,
                    &before_id,
                    &limit,
                    &PAGE_BYTE_BUDGET,
                ],
            )
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut balance_after = match rows.first() {
            Some(row) => row.try_get::<_, Decimal>("newest_balance_after")?,
            None => Decimal::ZERO,
        };
        let mut matched = 0_i64;
        for row in &rows {
            matched = row.try_get("matched")?;
            let transfer = transfer_from_row(row)?;
            let direction = match row.try_get::<_, &str>("direction")? {
                "out" => Direction::Out,
                _ => Direction::In,
            };
            // Walking back in time: undo this entry to get the one before.
            let before = match direction {
                Direction::Out => balance_after + transfer.amount,
                Direction::In => balance_after - transfer.amount,
            };
            items.push(HistoryEntry {
                transfer,
                direction,
                balance_after,
            });
            balance_after = before;
        }
        let page_size = (limit - 1) as usize;
        // More follows when the page is cut by the row limit, or by the byte
        // budget (rows matched that were not sent).
        let more = items.len() > page_size || matched > items.len() as i64;
        items.truncate(page_size);
        let next_cursor = match items.last() {
            Some(entry) if more => {
                let position = format!(
                    "{}_{}",
                    entry.transfer.created_at.timestamp_micros(),
                    entry.transfer.id
                );
                Some(self.cursor_key().await?.seal(&scope, &position))
            }
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

/// About how many bytes of response a page may hold: rows are added while
/// the estimated size of the rows before them is below this, so a page is at
/// most this plus one row (about 17 KiB), and never empty.
pub const PAGE_BYTE_BUDGET: i64 = 1 << 20;

/// A history row's estimated size in the response: its metadata as
/// PostgreSQL writes it out (at least as long as the compact JSON the API
/// sends) plus 512 bytes for the other fields (about 400 in practice).
const ROW_BYTES: &str = "(512 + coalesce(octet_length(metadata::text), 0))";

/// The history window: `$2` from, `$3` to, `$4`/`$5` the cursor (time, id);
/// NULL means unbounded. Only money movements: a hold's placement and a line
/// change are rows of the log that move nothing (amount 0).
const WINDOW: &str = "\
    and amount > 0 \
    and created_at >= coalesce($2::timestamptz, '-infinity') \
    and created_at <= least(coalesce($3::timestamptz, 'infinity'), coalesce($4::timestamptz, 'infinity')) \
    and (created_at, transfer_id) < (coalesce($4::timestamptz, 'infinity'), \
                                      coalesce($5::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))";

/// PostgreSQL's earliest timestamp (4713 BC); chrono reaches further back.
fn database_min() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-210_866_803_200, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// chrono's latest time (262143 AD) is inside PostgreSQL's range (294276 AD).
fn database_max() -> DateTime<Utc> {
    DateTime::<Utc>::MAX_UTC
}

async fn exists(client: &impl GenericClient, account: AccountId) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached("select 1 from ledger.accounts where account_id = $1")
        .await?;
    match client
        .query_opt(&statement, &[&account.as_uuid()])
        .await
        .context("look the account up")?
    {
        Some(_) => Ok(()),
        None => Err(DomainError::AccountNotFound(account).into()),
    }
}

/// A history cursor's position is `<created_at in µs>_<transfer id>` of the
/// last entry returned: stable across inserts. Its MAC (see `cursor`) has
/// been checked already; the range check is the second line of defence.
pub(crate) fn parse_history_position(position: &str) -> Result<(DateTime<Utc>, Uuid), StoreError> {
    let (micros, id) = position.split_once('_').ok_or(StoreError::InvalidCursor)?;
    let micros: i64 = micros.parse().map_err(|_| StoreError::InvalidCursor)?;
    let time = DateTime::<Utc>::from_timestamp_micros(micros)
        .filter(|time| (database_min()..=database_max()).contains(time))
        .ok_or(StoreError::InvalidCursor)?;
    let id = id.parse().map_err(|_| StoreError::InvalidCursor)?;
    Ok((time, id))
}
