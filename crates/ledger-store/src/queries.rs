//! Finding transfers: the whole log newest first, filtered by account
//! (either side), currency, time and metadata, a page at a time.
//!
//! Each filter shape has an index (`sql/V7__transfer_queries.sql`; plans in
//! docs/design.md, "Finding transfers"). The statement is assembled from the
//! filters present, so that each shape gets a plan of its own: one
//! catch-all statement (`$n is null or …`) would be planned once, generically,
//! and could use none of them.

use chrono::{DateTime, Utc};
use ledger_domain::{AccountId, Currency};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::accounts::MAX_PAGE_SIZE;
use crate::balances::{parse_history_position, PAGE_BYTE_BUDGET};
use crate::records::{transfer_from_row, Page, Transfer, TRANSFER_COLUMNS};
use crate::{Ledger, StoreError};

/// The scope of transfer-list cursors (see `cursor`).
const TRANSFERS_SCOPE: &str = "transfers";

/// A transfer row's estimated size in the response (as in the history).
const ROW_BYTES: &str = "(512 + coalesce(octet_length(metadata::text), 0))";

/// Which transfers to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct TransferQuery {
    /// Only transfers into or out of this account.
    pub account: Option<AccountId>,
    /// Only transfers in this currency.
    pub currency: Option<Currency>,
    /// Only transfers at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only transfers at or before this time.
    pub to: Option<DateTime<Utc>>,
    /// Only transfers whose metadata contains this object: each top-level
    /// key with exactly this value (`@>`).
    pub metadata: Option<Value>,
    /// Also list transfers that are not final yet (stamped at or after the
    /// final horizon). A client paging through such a list may miss a
    /// transfer that commits late with an earlier time; the default
    /// (`false`) ends the list at the final horizon, which never moves back.
    pub latest: bool,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// A statement's numbered parameters, collected while its text is built.
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds `value` and returns its placeholder (`$n`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|value| value.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

impl Ledger {
    /// Transfers newest first (`created_at`, then transfer id, descending):
    /// at most `query.limit`, and no more than about [`PAGE_BYTE_BUDGET`]
    /// bytes of them (always at least one). Only money movements are listed
    /// (`amount > 0`): rows that move no money are not transfers.
    pub async fn list_transfers(
        &self,
        query: &TransferQuery,
    ) -> Result<Page<Transfer>, StoreError> {
        let before = match &query.cursor {
            Some(cursor) => {
                let position = self.cursor_key().await?.open(TRANSFERS_SCOPE, cursor)?;
                Some(parse_history_position(position)?)
            }
            None => None,
        };
        let limit = i64::from(query.limit.clamp(1, MAX_PAGE_SIZE)) + 1;

        let mut params = Params::default();
        let mut conditions = vec!["amount > 0".to_owned()];
        if !query.latest {
            // A stable function: evaluated once per statement, and usable as
            // an index bound.
            conditions.push("created_at < ledger.final_horizon()".to_owned());
        }
        if let Some(from) = query.from {
            conditions.push(format!("created_at >= {}", params.bind(from)));
        }
        if let Some(to) = query.to {
            conditions.push(format!("created_at <= {}", params.bind(to)));
        }
        if let Some((time, id)) = before {
            let (time, id) = (params.bind(time), params.bind(id));
            // The plain bound lets an index on (…, created_at) start there;
            // the row comparison is the exact position.
            conditions.push(format!(
                "created_at <= {time} and (created_at, transfer_id) < ({time}, {id})"
            ));
        }
        if let Some(currency) = query.currency {
            conditions.push(format!(
                "currency_code = {}",
                params.bind(currency.code().to_owned())
            ));
        }
        if let Some(metadata) = &query.metadata {
            // `metadata is not null` lets the planner use the partial index.
            conditions.push(format!(
                "metadata is not null and metadata @> {}",
                params.bind(metadata.clone())
            ));
        }
        let limit_param = params.bind(limit);
        let order = "order by created_at desc, transfer_id desc";
        let filtered = |side: Option<&str>| {
            let mut all = conditions.clone();
            if let Some(side) = side {
                all.insert(0, side.to_owned());
            }
            format!(
                "select {TRANSFER_COLUMNS} from ledger.transfers where {} {order} limit {limit_param}",
                all.join(" and ")
            )
        };
        let rows_sql = match query.account {
            // Either side: each half walks its own per-account index
            // backwards, as the history does; a transfer never has one
            // account on both sides, so the halves never share a row.
            Some(account) => {
                let account = params.bind(account.as_uuid());
                format!(
                    "({}) union all ({}) {order} limit {limit_param}",
                    filtered(Some(&format!("source_account_id = {account}"))),
                    filtered(Some(&format!("destination_account_id = {account}"))),
                )
            }
            None => filtered(None),
        };
        let budget = params.bind(PAGE_BYTE_BUDGET);
        // The byte budget is applied in SQL, so rows past it are never sent.
        let sql = format!(
            "select * from (
               select r.*,
                      sum({ROW_BYTES}) over ({order}) - {ROW_BYTES} as bytes_before,
                      count(*) over () as matched
                 from ({rows_sql}) r
             ) p
             where bytes_before < {budget}
             {order}"
        );

        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &params.refs()).await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut matched = 0_i64;
        for row in &rows {
            matched = row.try_get("matched")?;
            items.push(transfer_from_row(row)?);
        }
        let page_size = (limit - 1) as usize;
        let more = items.len() > page_size || matched > items.len() as i64;
        items.truncate(page_size);
        let next_cursor = match items.last() {
            Some(transfer) if more => {
                let position = position_of(transfer.created_at, transfer.id.as_uuid());
                Some(self.cursor_key().await?.seal(TRANSFERS_SCOPE, &position))
            }
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

/// A cursor position: `<created_at in µs>_<transfer id>` of the last
/// transfer of a page, the history's format (`parse_history_position`).
fn position_of(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", created_at.timestamp_micros(), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_as_the_same_time_and_id() {
        let time = DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).expect("a time");
        let id = Uuid::now_v7();
        let parsed = parse_history_position(&position_of(time, id)).expect("a position");
        assert_eq!(parsed, (time, id));
    }

    #[test]
    fn parameters_are_numbered_in_the_order_they_are_bound() {
        let mut params = Params::default();
        assert_eq!(params.bind(1_i64), "$1");
        assert_eq!(params.bind("x".to_owned()), "$2");
        assert_eq!(params.refs().len(), 2);
    }
}
