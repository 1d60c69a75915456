//! The JSON shapes of the API: request bodies (strict: unknown fields are
//! refused), query strings, and responses. Handlers turn requests into domain
//! types and store records into responses; nothing here touches the store.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ledger_domain::{AccountKind, Currency, Decimal, Metadata};
use ledger_store::{Account, Balance, Direction, HistoryEntry, Page, Transfer};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::timestamp::Timestamp;

/// Decimal notation accepted in amounts and written in responses.
const DECIMAL_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// `rust_decimal` holds 28 significant digits exactly; longer input would be
/// rounded, so it is refused instead.
const MAX_SIGNIFICANT_DIGITS: usize = 28;

// ---------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------

/// An exact amount or balance in a response: a decimal string with exactly
/// the currency's number of decimals (`"12.50"` USD, `"100"` JPY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money(pub Decimal);

impl Money {
    /// Writes `value` with the currency's number of decimals. The store's
    /// amounts are scaled already, but a sum over no rows is a bare `0`;
    /// padding never rounds (a value with more decimals is left as is).
    pub fn scaled(value: Decimal, currency: Currency) -> Self {
        let mut value = value;
        if value.scale() < currency.minor_units() {
            value.rescale(currency.minor_units());
        }
        Self(value)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(DECIMAL_PATTERN))
            .description(Some(
                "An exact decimal amount, as a string with the currency's number of decimals.",
            ))
            .examples(["12.50"])
            .into()
    }
}

impl ToSchema for Money {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }
}

/// An amount in a request: a JSON string (`"12.50"`) or a JSON number
/// (`12.5`), read from its text and never through a float. Exponent notation
/// (`1e3`), `NaN`, `Infinity`, signs other than a leading `-`, spaces and
/// empty strings are refused with 422 `validation_failed`; a value that is
/// neither a string nor a number (`true`, `{}`) is a malformed request (400).
#[derive(Clone, Debug)]
pub struct AmountInput {
    text: String,
}

impl<'de> Deserialize<'de> for AmountInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde_json's `arbitrary_precision` keeps a number's exact text.
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Self { text }),
            Value::Number(number) => Ok(Self {
                text: number.to_string(),
            }),
            other => Err(D::Error::custom(format!(
                "invalid type: {}, expected an amount as a decimal string or number",
                json_kind(&other)
            ))),
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl AmountInput {
    /// The exact value. `field` names the field in error details.
    pub fn parse(&self, field: &str) -> Result<Decimal, ApiError> {
        let text = self.text.as_str();
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if looks_like_exponent_notation(text) {
            return Err(ApiError::validation(format!(
                "{field} must be written in plain decimal notation, without an exponent \
                 (e.g. \"1000.00\" rather than {text})"
            )));
        }
        if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
            return Err(ApiError::validation(format!(
                "{field} must be a decimal number such as \"12.50\", got {text:?}"
            )));
        }
        let significant = whole.trim_start_matches('0').len()
            + fraction.map_or(0, |f| f.trim_end_matches('0').len());
        if significant > MAX_SIGNIFICANT_DIGITS {
            return Err(ApiError::validation(format!(
                "{field} has more than {MAX_SIGNIFICANT_DIGITS} significant digits"
            )));
        }
        // Trailing zeros carry no value; dropping them keeps the text within
        // what a Decimal holds exactly (`1.000…0` with 40 zeros is 1).
        let trimmed = match fraction {
            Some(f) => {
                let f = f.trim_end_matches('0');
                let sign = if text.starts_with('-') { "-" } else { "" };
                let whole = whole.trim_start_matches('0');
                let whole = if whole.is_empty() { "0" } else { whole };
                if f.is_empty() {
                    format!("{sign}{whole}")
                } else {
                    format!("{sign}{whole}.{f}")
                }
            }
            None => text.to_owned(),
        };
        Decimal::from_str(&trimmed).map_err(|_| {
            ApiError::validation(format!("{field} must be a decimal number, got {text:?}"))
        })
    }
}

/// `1e3`, `-2.5E-2`: numbers JSON allows but amounts do not.
fn looks_like_exponent_notation(text: &str) -> bool {
    let Some((mantissa, exponent)) = text.split_once(['e', 'E']) else {
        return false;
    };
    let mantissa = mantissa.strip_prefix('-').unwrap_or(mantissa);
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !mantissa.is_empty()
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(DECIMAL_PATTERN))
                    .examples(["12.50"]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .examples([12.5]),
            )
            .description(Some(
                "An exact amount: a decimal string (preferred) or a JSON number, read \
                 without a float step. At most the currency's number of decimals (trailing \
                 zeros aside); no exponent notation.",
            ))
            .into()
    }
}

impl ToSchema for AmountInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AmountInput")
    }
}

/// Checks optional client metadata: a JSON object of at most
/// [`Metadata::MAX_BYTES`], counted as PostgreSQL stores it.
pub fn parse_metadata(metadata: Option<Value>) -> Result<Option<Metadata>, ApiError> {
    let Some(metadata) = metadata else {
        return Ok(None);
    };
    // jsonb writes numbers out in full: `1e99999` is stored (and returned)
    // as a hundred thousand digits, and `1e999999` is beyond what it holds.
    // Measure numbers at their written-out length, so that a few bytes of
    // input can neither fail the insert nor blow up every later response.
    let expansion = number_expansion(&metadata);
    let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |bytes| bytes.len());
    if size.saturating_add(expansion) > Metadata::MAX_BYTES {
        return Err(ApiError::validation(format!(
            "metadata must be a JSON object of at most {} bytes (numbers counted written \
             out in full, as they are stored: 1e6 counts as 1000000)",
            Metadata::MAX_BYTES
        )));
    }
    Metadata::parse(metadata).map(Some).map_err(ApiError::from)
}

/// How many bytes writing every number of `value` out in full (without an
/// exponent) adds to its serialized size; saturates on absurd exponents.
fn number_expansion(value: &Value) -> usize {
    match value {
        Value::Number(number) => {
            let text = number.to_string();
            let Some((mantissa, exponent)) = text.split_once(['e', 'E']) else {
                return 0;
            };
            let exponent = exponent
                .trim_start_matches('+')
                .parse::<i64>()
                .map_or(usize::MAX, |e| {
                    usize::try_from(e.unsigned_abs()).unwrap_or(usize::MAX)
                });
            mantissa
                .len()
                .saturating_add(exponent)
                .saturating_sub(text.len())
        }
        Value::Array(items) => items
            .iter()
            .map(number_expansion)
            .fold(0, usize::saturating_add),
        Value::Object(map) => map
            .values()
            .map(number_expansion)
            .fold(0, usize::saturating_add),
        Value::Null | Value::Bool(_) | Value::String(_) => 0,
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Opens an account. Every field is optional: `{}` opens an account in the
/// default currency with a new id and a zero balance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// The id to use (a new UUIDv7 when absent). Ids below
    /// `00000000-0000-0000-0000-000000001000` are reserved for system accounts.
    pub id: Option<Uuid>,
    /// ISO 4217 code, e.g. `USD` (default: the service's default currency).
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Money deposited at opening, in the same transaction (default 0).
    pub initial_balance: Option<AmountInput>,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Moves money into an account (from its currency's system account) or out
/// of it (to the system account).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovementRequest {
    /// How much, greater than zero.
    pub amount: AmountInput,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Moves money between two customer accounts of the same currency.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The paying account (never a system account).
    pub source: Uuid,
    /// The receiving account.
    pub destination: Uuid,
    /// How much, greater than zero.
    pub amount: AmountInput,
    /// Free-form JSON object, at most 16 KiB, stored as given.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// An atomic batch of transfers between customer accounts: applied in
/// order (a later leg may spend what an earlier one received), all or
/// nothing, all at one `created_at`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 8,189 legs, each as the body of `POST /transfers`. Each leg is
    /// parsed on its own, so that a malformed one is named by its index.
    #[schema(value_type = Vec<TransferRequest>, min_items = 1, max_items = 8189)]
    pub transfers: Vec<Value>,
}

/// Pagination of `GET /accounts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAccountsParams {
    /// Page size, 1 to 1000 (default 50); larger values are refused. A page
    /// also stops once it passes about 1 MiB (always holding at least one
    /// item), so it may hold fewer with a `next_cursor`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, unchanged: cursors are signed,
    /// and any other value is refused with 400 `invalid_request`.
    pub cursor: Option<String>,
}

/// Pagination and time window of an account's history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Page size, 1 to 1000 (default 50); larger values are refused. A page
    /// also stops once it passes about 1 MiB (always holding at least one
    /// item), so it may hold fewer with a `next_cursor`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, unchanged: cursors are signed,
    /// and any other value is refused with 400 `invalid_request`.
    pub cursor: Option<String>,
    /// Only transfers at or after this time (RFC 3339, years 0000–9999;
    /// truncated to whole microseconds, the ledger's precision).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<Timestamp>,
    /// Only transfers at or before this time (RFC 3339, years 0000–9999;
    /// truncated to whole microseconds).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<Timestamp>,
}

/// The point in time of a balance.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BalanceParams {
    /// The balance including every transfer at or before this time (RFC 3339,
    /// e.g. `2025-01-31T23:59:59Z`, years 0000–9999; truncated to whole
    /// microseconds, the ledger's precision, and echoed so); the current
    /// balance when absent.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub at: Option<Timestamp>,
}

/// The default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Checks a page size: 1 to [`ledger_store::MAX_PAGE_SIZE`].
pub fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=ledger_store::MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::invalid_request(format!(
            "limit must be between 1 and {}, got {limit}",
            ledger_store::MAX_PAGE_SIZE
        ))),
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// Whether an account belongs to a client or is its currency's system
/// account (the one account money enters and leaves the ledger through).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AccountKind)]
pub enum AccountKindDto {
    /// A client's account; its balance never goes below zero.
    Customer,
    /// The system account; its balance is minus all customer money.
    System,
}

/// An account with its current balance.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountDto {
    /// Its id.
    pub id: Uuid,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// The balance when the account was read.
    pub balance: Money,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it was closed; null while open.
    #[schema(required = true)]
    pub closed_at: Option<DateTime<Utc>>,
    /// The client's metadata, or null.
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<Value>,
    /// Customer or system account.
    pub kind: AccountKindDto,
}

impl From<Account> for AccountDto {
    fn from(account: Account) -> Self {
        Self {
            id: account.id.as_uuid(),
            currency: account.currency.code().to_owned(),
            balance: Money::scaled(account.balance, account.currency),
            created_at: account.created_at,
            closed_at: account.closed_at,
            metadata: account.metadata,
            kind: match account.kind {
                AccountKind::Customer => AccountKindDto::Customer,
                AccountKind::System => AccountKindDto::System,
            },
        }
    }
}

/// One immutable entry of the ledger.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Transfer)]
pub struct TransferDto {
    /// Its id.
    pub id: Uuid,
    /// The account money left.
    pub source: Uuid,
    /// This is the source's `source_seq`-th outgoing transfer, from 0.
    pub source_seq: i64,
    /// The account money arrived in.
    pub destination: Uuid,
    /// How much moved.
    pub amount: Money,
    /// ISO 4217 code of both accounts.
    #[schema(example = "USD")]
    pub currency: String,
    /// When the ledger applied it.
    pub created_at: DateTime<Utc>,
    /// The client's metadata, or null.
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<Value>,
    /// The source's balance right after this transfer: the figure its
    /// overdraft check used.
    pub source_balance_after: Money,
}

impl From<Transfer> for TransferDto {
    fn from(transfer: Transfer) -> Self {
        Self {
            id: transfer.id.as_uuid(),
            source: transfer.source.as_uuid(),
            source_seq: transfer.source_seq,
            destination: transfer.destination.as_uuid(),
            amount: Money::scaled(transfer.amount, transfer.currency),
            currency: transfer.currency.code().to_owned(),
            created_at: transfer.created_at,
            metadata: transfer.metadata,
            source_balance_after: Money::scaled(transfer.source_balance_after, transfer.currency),
        }
    }
}

/// A committed batch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Batch)]
pub struct BatchDto {
    /// Its id.
    pub id: Uuid,
    /// The one `created_at` of all its transfers: an as-of read sees all of
    /// the batch or none of it.
    pub created_at: DateTime<Utc>,
    /// Its transfers, in the order of the request's legs.
    pub transfers: Vec<TransferDto>,
}

impl From<ledger_store::Batch> for BatchDto {
    fn from(batch: ledger_store::Batch) -> Self {
        Self {
            id: batch.id.as_uuid(),
            created_at: batch.created_at,
            transfers: batch.transfers.into_iter().map(TransferDto::from).collect(),
        }
    }
}

/// An account's balance, now or as of a point in time.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Balance)]
pub struct BalanceDto {
    /// The account.
    pub account_id: Uuid,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// Every transfer in minus every transfer out, up to `at`.
    pub balance: Money,
    /// The point in time the balance is for.
    pub at: DateTime<Utc>,
    /// True when no transfer at or before `at` can still commit, so asking
    /// again always gives the same answer. A balance "now" is never final.
    #[serde(rename = "final")]
    pub is_final: bool,
}

impl From<Balance> for BalanceDto {
    fn from(balance: Balance) -> Self {
        Self {
            account_id: balance.account_id.as_uuid(),
            currency: balance.currency.code().to_owned(),
            balance: Money::scaled(balance.balance, balance.currency),
            at: balance.at,
            is_final: balance.is_final,
        }
    }
}

/// Which way a transfer moved money, seen from the account.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Direction)]
pub enum DirectionDto {
    /// Money arrived.
    In,
    /// Money left.
    Out,
}

/// A transfer as it appears in one account's history.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryEntryDto {
    /// The transfer.
    pub transfer: TransferDto,
    /// In or out of this account.
    pub direction: DirectionDto,
    /// This account's balance right after the transfer, derived from the
    /// log in the history's order (`created_at`, then transfer id): the
    /// running balance of a statement.
    pub balance_after: Money,
}

impl From<HistoryEntry> for HistoryEntryDto {
    fn from(entry: HistoryEntry) -> Self {
        let balance_after = Money::scaled(entry.balance_after, entry.transfer.currency);
        Self {
            transfer: entry.transfer.into(),
            direction: match entry.direction {
                Direction::In => DirectionDto::In,
                Direction::Out => DirectionDto::Out,
            },
            balance_after,
        }
    }
}

/// A page of accounts, in id (creation) order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPage {
    /// The accounts.
    pub items: Vec<AccountDto>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<Account>> for AccountPage {
    fn from(page: Page<Account>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// A page of an account's history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// The entries.
    pub items: Vec<HistoryEntryDto>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<HistoryEntry>> for HistoryPage {
    fn from(page: Page<HistoryEntry>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// Liveness: the process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// Readiness: the database answers and is migrated.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(json: &str) -> Result<Decimal, String> {
        let input: AmountInput = serde_json::from_str(json).map_err(|e| format!("400: {e}"))?;
        input
            .parse("amount")
            .map_err(|e| format!("{}: {}", e.code().as_str(), e.detail()))
    }

    #[test]
    fn amounts_are_read_exactly_from_strings_and_numbers() {
        let cases = [
            ("10", "10"),
            ("\"10.00\"", "10.00"),
            ("0.1", "0.1"),
            ("\"-5\"", "-5"),
            ("12.50", "12.5"),
            (
                "0.30000000000000000000000001",
                "0.30000000000000000000000001",
            ),
            ("\"1.0000000000000000000000000000000000000000\"", "1"),
            ("1000000000000000", "1000000000000000"),
        ];
        for (json, expected) in cases {
            let value = parse_json(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(
                value,
                Decimal::from_str(expected).expect("literal"),
                "{json}"
            );
        }
    }

    #[test]
    fn amounts_that_are_not_plain_decimals_are_refused_with_the_reason() {
        let cases = [
            ("\"\"", "validation_failed", "an empty string is no number"),
            (
                "\" 10\"",
                "validation_failed",
                "whitespace is not part of a number",
            ),
            ("\"NaN\"", "validation_failed", "NaN is not an amount"),
            (
                "\"Infinity\"",
                "validation_failed",
                "infinity is not an amount",
            ),
            (
                "\"1e3\"",
                "validation_failed",
                "exponent notation is refused",
            ),
            (
                "1e3",
                "validation_failed",
                "exponent notation is refused for numbers too",
            ),
            (
                "\"+5\"",
                "validation_failed",
                "only a leading minus is accepted",
            ),
            ("\"1_000\"", "validation_failed", "no digit separators"),
            (
                "\".5\"",
                "validation_failed",
                "a digit must precede the point",
            ),
            (
                "\"5.\"",
                "validation_failed",
                "a digit must follow the point",
            ),
            (
                "\"12,50\"",
                "validation_failed",
                "a comma is not a decimal point",
            ),
            (
                "\"12345678901234567890123456789\"",
                "validation_failed",
                "29 digits",
            ),
            ("true", "400", "a boolean is not an amount"),
            ("{}", "400", "an object is not an amount"),
            ("null", "400", "null is not an amount"),
        ];
        for (json, expected, why) in cases {
            let err = parse_json(json).expect_err(why);
            assert!(err.starts_with(expected), "{why}: {err}");
        }
    }

    #[test]
    fn money_is_written_as_a_string_with_the_currency_scale() {
        let usd = Currency::parse("USD").expect("USD");
        let cases = [
            ("12.50", "\"12.50\""),
            ("0", "\"0.00\""),
            ("-3", "\"-3.00\""),
        ];
        for (value, json) in cases {
            let money = Money::scaled(Decimal::from_str(value).expect("literal"), usd);
            assert_eq!(serde_json::to_string(&money).expect("serializable"), json);
        }
    }

    #[test]
    fn metadata_is_measured_with_its_numbers_written_out() {
        let parse = |json: &str| parse_metadata(Some(serde_json::from_str(json).expect("JSON")));
        assert!(
            parse(r#"{"x": 1e6, "y": [1.5e-3, 7]}"#).is_ok(),
            "small exponents are fine"
        );
        for (json, why) in [
            (
                r#"{"x": 1e999999}"#,
                "beyond what PostgreSQL's numeric holds",
            ),
            (
                r#"{"x": 1e20000}"#,
                "twenty thousand digits once written out",
            ),
            (r#"{"x": [1e-20000]}"#, "tiny numbers expand too"),
            (
                r#"{"x": 1e99999999999999999999}"#,
                "an exponent that overflows",
            ),
        ] {
            let err = parse(json).expect_err(why);
            assert_eq!(err.code().as_str(), "validation_failed", "{why}");
        }
    }
}
