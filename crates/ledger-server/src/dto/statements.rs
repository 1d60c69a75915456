//! Account statements (`GET /accounts/{id}/statement`): the window asked
//! for, and how each line is written in CSV (RFC 4180) and in JSON Lines.
//!
//! Both formats have the same records, in this order:
//! 1. `opening`: the balance of everything before `from`;
//! 2. one `transfer` per money movement in `[from, to)`, oldest first
//!    (`created_at`, then transfer id), with the balance right after it;
//! 3. `closing`: the balance at the end of the window. Only a complete
//!    statement has it, and it is always the last line: a download cut
//!    short (an error after the first byte, a lost connection) lacks it.

use chrono::{DateTime, SecondsFormat, Utc};
use ledger_domain::{Currency, Decimal};
use ledger_store::{Direction, StatementLine};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Money;
use crate::timestamp::Timestamp;

/// The header line of a CSV statement: the columns, in order.
pub const CSV_HEADER: &str =
    "record,created_at,transfer_id,direction,counterparty,amount,balance,metadata\r\n";

/// How a statement is written.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatementFormat {
    /// `text/csv` (RFC 4180, with a header line).
    #[default]
    Csv,
    /// `application/jsonl`: one JSON object per line.
    Jsonl,
}

impl StatementFormat {
    /// The response's media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8; header=present",
            Self::Jsonl => "application/jsonl",
        }
    }
}

/// The window and format of a statement.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementParams {
    /// The window's start, inclusive (RFC 3339, years 0000–9999; truncated
    /// to whole microseconds).
    #[param(value_type = DateTime<Utc>)]
    pub from: Timestamp,
    /// The window's end, exclusive; after `from`, and at or before the
    /// final horizon (a statement never changes once issued: a later `to`
    /// is 422 `validation_failed`, retry once the horizon has passed it).
    #[param(value_type = DateTime<Utc>)]
    pub to: Timestamp,
    /// `csv` (default) or `jsonl`.
    #[param(value_type = Option<StatementFormat>)]
    pub format: Option<StatementFormat>,
}

/// One line of a JSON Lines statement (`format=jsonl`). The same records,
/// in the same order, as the CSV columns.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum StatementRecord {
    /// The first line: the balance of everything before `from`.
    Opening {
        /// The window's start.
        at: DateTime<Utc>,
        /// ISO 4217 code.
        currency: String,
        /// The balance before `at`.
        balance: Money,
    },
    /// One money movement in the window.
    Transfer {
        /// When the ledger applied it.
        created_at: DateTime<Utc>,
        /// The transfer.
        transfer_id: Uuid,
        /// `in` or `out` of the account.
        direction: String,
        /// The other account (destination of `out`, source of `in`).
        counterparty: Uuid,
        /// How much moved, positive.
        amount: Money,
        /// The account's balance right after it.
        balance: Money,
        /// The client's metadata, or null.
        #[schema(value_type = Option<Object>)]
        metadata: Option<Value>,
    },
    /// The last line, written only when the statement is complete.
    Closing {
        /// The window's end (exclusive).
        at: DateTime<Utc>,
        /// The balance of everything before `at`.
        balance: Money,
        /// How many `transfer` lines the statement has.
        transfers: u64,
    },
}

/// Writes statement records in one format.
#[derive(Clone, Copy, Debug)]
pub struct StatementWriter {
    /// The format.
    pub format: StatementFormat,
    /// The account's currency, for the scale of every amount.
    pub currency: Currency,
}

impl StatementWriter {
    /// The header (CSV only) and the opening line.
    pub fn opening(&self, at: DateTime<Utc>, balance: Decimal, out: &mut String) {
        if let StatementFormat::Csv = self.format {
            out.push_str(CSV_HEADER);
        }
        self.write(
            StatementRecord::Opening {
                at,
                currency: self.currency.code().to_owned(),
                balance: Money::scaled(balance, self.currency),
            },
            out,
        );
    }

    /// One transfer line.
    pub fn line(&self, line: StatementLine, out: &mut String) {
        self.write(
            StatementRecord::Transfer {
                created_at: line.created_at,
                transfer_id: line.transfer_id.as_uuid(),
                direction: match line.direction {
                    Direction::In => "in",
                    Direction::Out => "out",
                }
                .to_owned(),
                counterparty: line.counterparty.as_uuid(),
                amount: Money::scaled(line.amount, self.currency),
                balance: Money::scaled(line.balance_after, self.currency),
                metadata: line.metadata,
            },
            out,
        );
    }

    /// The closing line.
    pub fn closing(&self, at: DateTime<Utc>, balance: Decimal, transfers: u64, out: &mut String) {
        let balance = Money::scaled(balance, self.currency);
        self.write(
            StatementRecord::Closing {
                at,
                balance,
                transfers,
            },
            out,
        );
    }

    fn write(&self, record: StatementRecord, out: &mut String) {
        match self.format {
            StatementFormat::Jsonl => {
                // Serializing these types cannot fail (string keys only).
                out.push_str(&serde_json::to_string(&record).unwrap_or_default());
                out.push('\n');
            }
            StatementFormat::Csv => {
                let fields: [String; 8] = match record {
                    StatementRecord::Opening { at, balance, .. } => {
                        csv_summary("opening", at, &balance)
                    }
                    StatementRecord::Closing { at, balance, .. } => {
                        csv_summary("closing", at, &balance)
                    }
                    StatementRecord::Transfer {
                        created_at,
                        transfer_id,
                        direction,
                        counterparty,
                        amount,
                        balance,
                        metadata,
                    } => [
                        "transfer".to_owned(),
                        time(created_at),
                        transfer_id.to_string(),
                        direction,
                        counterparty.to_string(),
                        amount.0.to_string(),
                        balance.0.to_string(),
                        metadata.map(|value| value.to_string()).unwrap_or_default(),
                    ],
                };
                let quoted: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
                out.push_str(&quoted.join(","));
                out.push_str("\r\n");
            }
        }
    }
}

/// An opening or closing CSV record: its time and balance, the other
/// columns empty (a CSV reader counts the `transfer` records itself; JSON
/// Lines' closing record carries the count).
fn csv_summary(record: &str, at: DateTime<Utc>, balance: &Money) -> [String; 8] {
    [
        record.to_owned(),
        time(at),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        balance.0.to_string(),
        String::new(),
    ]
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// RFC 4180: a field with a comma, a quote or a line break is quoted, and
/// its quotes doubled.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_need_it() {
        let cases = [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            (r#"{"k":"v"}"#, r#""{""k"":""v""}""#),
            ("two\nlines", "\"two\nlines\""),
            ("", ""),
        ];
        for (field, written) in cases {
            assert_eq!(csv_field(field), written, "{field:?}");
        }
    }
}
