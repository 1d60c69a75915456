//! Hostile input suite: what an attacker or a broken client can send to the
//! write endpoints of the real `ledger` binary, and what must come back.
//!
//! - every malformed amount, body, header or path gets a clear 4xx
//!   `application/problem+json` with a stable `code`, promptly (never a 5xx,
//!   never a hang), and leaves the ledger exactly as it was (transfer,
//!   account and idempotency-key counts, every balance);
//! - generated amounts are checked against an independent oracle of what an
//!   amount is, so that valid ones must be accepted, exactly, too;
//! - strings built to break out of SQL land as data, byte for byte, or as a
//!   4xx, and the schema is untouched.
//!
//! `HOSTILE_SEED=<n>` replays the generated cases of an earlier run (the seed
//! is printed); `HOSTILE_CASES=<n>` changes how many are generated.

use std::str::FromStr;
use std::time::{Duration, Instant};

use ledger_domain::Decimal;
use ledger_testkit::service::{header_text, open_accounts, short, spawn_process, TestApp};
use ledger_testkit::{assert_invariants, schema_shape, snapshot};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// The binary under test.
const LEDGER: &str = env!("CARGO_BIN_EXE_ledger");

/// A refusal must come back at least this fast: far below any timeout.
const PROMPT: Duration = Duration::from_secs(5);

/// The service's default per-request maximum (`LEDGER_MAX_AMOUNT`).
const MAX_AMOUNT: &str = "1000000000000";

/// A server on a fresh database, with three USD accounts.
struct Fixture {
    app: TestApp,
    http: reqwest::Client,
    sql: tokio_postgres::Client,
    /// Holds 1000.00.
    funded: Uuid,
    /// Holds nothing: no transfer out of it can succeed.
    empty: Uuid,
    /// Holds 1000.00; the destination of transfers.
    other: Uuid,
}

impl Fixture {
    async fn new() -> Self {
        let app = spawn_process(LEDGER, &[]).await;
        let http = app.client.clone();
        let funded = open_accounts(&http, &app.address, 2, "1000.00").await;
        let empty = open_accounts(&http, &app.address, 1, "0").await;
        let sql = app.database().connect().await.expect("a plain connection");
        Self {
            app,
            http,
            sql,
            funded: funded[0],
            other: funded[1],
            empty: empty[0],
        }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// Panics unless the ledger's one invariant check finds nothing.
    async fn assert_invariants(&self) {
        assert_invariants(&self.app.database().ledger()).await;
    }

    /// Sends `body` as is, with `content_type` (none when `None`).
    async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &[u8])],
    ) -> Answer {
        let mut request = self.http.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in headers {
            let value =
                reqwest::header::HeaderValue::from_bytes(value).expect("a sendable header value");
            request = request.header(*name, value);
        }
        Answer::of(request).await
    }

    /// Sends a JSON body given as text (which need not be valid JSON).
    async fn post_json_text(&self, path: &str, body: &str) -> Answer {
        self.post_raw(path, Some("application/json"), body.to_owned(), &[])
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        Answer::of(self.http.get(self.url(path))).await
    }
}

/// A response, read in full.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    replayed: bool,
    body: Value,
    latency: Duration,
}

impl Answer {
    async fn of(request: reqwest::RequestBuilder) -> Self {
        let started = Instant::now();
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let header = |name: &str| header_text(response.headers(), name);
        let content_type = header("content-type");
        let replayed = header("idempotent-replayed").as_deref() == Some("true");
        let bytes = response.bytes().await.expect("a readable body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Self {
            status,
            content_type,
            replayed,
            body,
            latency: started.elapsed(),
        }
    }

    fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }

    /// Panics unless this is the problem `code` with `status`, a well-formed
    /// problem document, answered promptly.
    #[track_caller]
    fn expect_problem(&self, status: u16, code: &str, case: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, Some(code)),
            "{case}: expected {status} {code}, got {} {}",
            self.status,
            short(&self.body)
        );
        self.expect_well_formed_problem(case);
    }

    /// Panics unless this is some 4xx problem document, answered promptly.
    #[track_caller]
    fn expect_well_formed_problem(&self, case: &str) {
        assert!(
            (400..500).contains(&self.status),
            "{case}: expected a 4xx, got {} {}",
            self.status,
            short(&self.body)
        );
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json"),
            "{case}: a problem must be application/problem+json"
        );
        assert_eq!(
            self.body["status"].as_u64(),
            Some(u64::from(self.status)),
            "{case}: the problem's status field"
        );
        for field in ["type", "title", "detail", "code", "request_id"] {
            assert!(
                self.body[field].is_string(),
                "{case}: the problem has no {field}: {}",
                short(&self.body)
            );
        }
        assert!(
            self.latency < PROMPT,
            "{case}: took {:?} to be refused",
            self.latency
        );
    }
}

// ---------------------------------------------------------------------------
// Amounts: a table of known-hostile ones
// ---------------------------------------------------------------------------

/// A hostile amount: the raw JSON token sent, the expected answer, whether
/// it is also refused as an initial balance (zero is a valid one), and why.
struct HostileAmount {
    token: String,
    status: u16,
    code: &'static str,
    refused_as_initial_balance: bool,
    why: &'static str,
}

fn hostile(token: impl Into<String>, status: u16, why: &'static str) -> HostileAmount {
    HostileAmount {
        token: token.into(),
        status,
        code: if status == 400 {
            "invalid_request"
        } else {
            "validation_failed"
        },
        refused_as_initial_balance: true,
        why,
    }
}

fn zero(token: &str, why: &'static str) -> HostileAmount {
    HostileAmount {
        refused_as_initial_balance: false,
        ..hostile(token, 422, why)
    }
}

fn string(text: &str) -> String {
    serde_json::to_string(text).expect("a JSON string")
}

fn hostile_amounts() -> Vec<HostileAmount> {
    let nines = "9".repeat(100);
    let googol = format!("1{}", "0".repeat(400));
    vec![
        hostile("1e400", 422, "exponent notation, beyond any float"),
        hostile(string("1e400"), 422, "exponent notation in a string"),
        hostile("1e3", 422, "exponent notation, even when exact"),
        hostile(string("1e3"), 422, "exponent notation in a string"),
        hostile("1E-2", 422, "upper-case exponent, negative"),
        hostile(string("1E-2"), 422, "upper-case exponent in a string"),
        hostile("-2.5E+2", 422, "signed mantissa and exponent"),
        hostile("0.1e1", 422, "an exponent on a fraction"),
        hostile(
            nines.clone(),
            422,
            "100 nines: beyond 28 significant digits",
        ),
        hostile(string(&nines), 422, "100 nines in a string"),
        hostile(googol.clone(), 422, "a 401-digit integer"),
        hostile(string(&googol), 422, "a 401-digit integer in a string"),
        hostile(
            string(&"9".repeat(60_000)),
            422,
            "60,000 digits (under the body limit)",
        ),
        hostile(string("NaN"), 422, "NaN is not an amount"),
        hostile(string("nan"), 422, "nan is not an amount"),
        hostile(string("Infinity"), 422, "Infinity is not an amount"),
        hostile(string("-Infinity"), 422, "-Infinity is not an amount"),
        hostile(string("inf"), 422, "inf is not an amount"),
        hostile("NaN", 400, "bare NaN is not JSON"),
        hostile("Infinity", 400, "bare Infinity is not JSON"),
        hostile("-Infinity", 400, "bare -Infinity is not JSON"),
        zero("-0", "negative zero is not positive"),
        zero(&string("-0"), "negative zero in a string"),
        zero(&string("-0.00"), "negative zero with decimals"),
        zero("0", "zero is not positive"),
        zero(&string("0.00"), "zero with decimals"),
        zero(
            &string("0.000000000000000000000000000"),
            "zero, 27 decimals",
        ),
        hostile(string("0.001"), 422, "three decimals for USD"),
        hostile("12.345", 422, "three decimals as a number"),
        hostile(
            string("0.0000000000000000000000000001"),
            422,
            "28 decimals: the smallest Decimal",
        ),
        hostile(
            string(&format!("1.{}1", "0".repeat(60))),
            422,
            "62 significant digits after the point",
        ),
        hostile(string("١٢٣"), 422, "Arabic-Indic digits"),
        hostile(string("１２３"), 422, "full-width digits"),
        hostile(string("𝟙𝟚𝟛"), 422, "mathematical double-struck digits"),
        hostile(string("²"), 422, "a superscript digit"),
        hostile(string("½"), 422, "a vulgar fraction"),
        hostile(
            string("12\u{0663}"),
            422,
            "an ASCII number ending in an Arabic-Indic digit",
        ),
        hostile(string(" 12.50"), 422, "a leading space"),
        hostile(string("12.50 "), 422, "a trailing space"),
        hostile(string("\t1"), 422, "a tab"),
        hostile(string("1\n"), 422, "a newline"),
        hostile(string("1 000"), 422, "a space as digit separator"),
        hostile(string("\u{a0}1"), 422, "a no-break space"),
        hostile(string("\u{200b}1"), 422, "a zero-width space"),
        hostile(string("1\u{0}"), 422, "a NUL character"),
        hostile(string("+5"), 422, "a plus sign"),
        hostile(string("--5"), 422, "two minus signs"),
        hostile(string("5-"), 422, "a trailing minus"),
        hostile(string("\u{2212}5"), 422, "a Unicode minus sign"),
        hostile(string("0x10"), 422, "hexadecimal"),
        hostile(string("1_000"), 422, "an underscore separator"),
        hostile(string("1,000.00"), 422, "a comma separator"),
        hostile(string("12,50"), 422, "a decimal comma"),
        hostile(string(".5"), 422, "no digit before the point"),
        hostile(string("5."), 422, "no digit after the point"),
        hostile(string("1..2"), 422, "two points"),
        hostile(string("1.2.3"), 422, "three parts"),
        hostile(string(""), 422, "an empty string"),
        hostile(string(" "), 422, "a blank string"),
        hostile(string("12.50 USD"), 422, "a currency suffix"),
        hostile(string("$12.50"), 422, "a currency sign"),
        hostile("-12.50", 422, "a negative number"),
        hostile(string("-12.50"), 422, "a negative string"),
        hostile(
            string("1000000000000.01"),
            422,
            "a cent above the configured maximum",
        ),
        hostile(
            string("1000000000000000"),
            422,
            "the ledger's ceiling, above the configured maximum",
        ),
        hostile("012", 400, "a leading zero is not JSON"),
        hostile(".5", 400, "no digit before the point is not JSON"),
        hostile("+1", 400, "a plus sign is not JSON"),
        hostile("1.", 400, "no digit after the point is not JSON"),
        hostile("0x10", 400, "hexadecimal is not JSON"),
        hostile("true", 400, "a boolean"),
        HostileAmount {
            // An absent initial balance is zero, and null is absent.
            refused_as_initial_balance: false,
            ..hostile("null", 400, "null")
        },
        hostile("[]", 400, "an array"),
        hostile("[12.5]", 400, "an array holding a number"),
        hostile("{}", 400, "an object"),
        hostile(r#"{"value": "12.50"}"#, 400, "an object holding an amount"),
    ]
}

#[tokio::test]
async fn hostile_amounts_get_a_4xx_problem_and_change_nothing() {
    let fx = Fixture::new().await;
    let before = snapshot(&fx.sql).await;
    let mut sent = 0;
    for case in hostile_amounts() {
        let transfer = format!(
            r#"{{"source": "{}", "destination": "{}", "amount": {}}}"#,
            fx.funded, fx.other, case.token
        );
        let deposit = format!(r#"{{"amount": {}}}"#, case.token);
        let open = format!(
            r#"{{"currency": "USD", "initial_balance": {}}}"#,
            case.token
        );
        let mut requests = vec![
            ("POST /transfers", "/transfers".to_owned(), transfer),
            (
                "POST /accounts/{id}/deposits",
                format!("/accounts/{}/deposits", fx.funded),
                deposit.clone(),
            ),
            (
                "POST /accounts/{id}/withdrawals",
                format!("/accounts/{}/withdrawals", fx.funded),
                deposit,
            ),
        ];
        if case.refused_as_initial_balance {
            requests.push(("POST /accounts", "/accounts".to_owned(), open));
        }
        for (route, path, body) in requests {
            let label = format!(
                "{route} with amount {} ({})",
                shorten(&case.token),
                case.why
            );
            let answer = fx.post_json_text(&path, &body).await;
            answer.expect_problem(case.status, case.code, &label);
            sent += 1;
        }
    }
    assert_eq!(
        snapshot(&fx.sql).await,
        before,
        "a refused amount changed the ledger"
    );
    fx.assert_invariants().await;
    println!(
        "hostile amounts: {} cases, {sent} requests, all refused with a 4xx problem, ledger \
         unchanged, violations: 0",
        hostile_amounts().len()
    );
}

fn shorten(token: &str) -> String {
    if token.chars().count() > 40 {
        format!(
            "{}… ({} chars)",
            token.chars().take(20).collect::<String>(),
            token.chars().count()
        )
    } else {
        token.to_owned()
    }
}

// ---------------------------------------------------------------------------
// Amounts: generated, judged by an oracle
// ---------------------------------------------------------------------------

/// What an amount of USD is, restated from the API's contract rather than
/// from its code: an ASCII decimal `-?digits(.digits)?`, greater than zero,
/// at most two decimals once trailing zeros are dropped, and at most the
/// configured maximum (10^12). `None` when the text is not one.
fn oracle(text: &str) -> Option<Decimal> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.unwrap_or("").trim_end_matches('0');
    let is_zero = whole.is_empty() && fraction.is_empty();
    if negative || is_zero || fraction.len() > 2 {
        return None;
    }
    let too_large = whole.len() > MAX_AMOUNT.len()
        || (whole.len() == MAX_AMOUNT.len() && (whole > MAX_AMOUNT || !fraction.is_empty()));
    if too_large {
        return None;
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    Decimal::from_str(&format!("{whole}.{fraction:0<2}")).ok()
}

/// Characters that look like parts of a number, or like nothing at all.
const HOSTILE_CHARS: &[char] = &[
    ' ', '\t', '\n', '\u{a0}', '\u{200b}', '\u{feff}', '\0', '+', '-', '.', ',', '_', 'e', 'E',
    'x', '١', '٣', '۵', '१', '０', '９', '𝟘', '²', '½', '٫', '\u{2212}', '"', '\\', '\'', '$',
];

/// A random amount token: mostly decimal-looking text, as a JSON string or
/// as a bare JSON token (which may not be valid JSON at all), with digits
/// stretched, signs and exponents added, and hostile characters inserted.
fn generate_token(rng: &mut StdRng) -> String {
    let digits = |rng: &mut StdRng, max: usize| -> String {
        let len = rng.gen_range(0..=max);
        (0..len)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect()
    };
    let mut text = String::new();
    if rng.gen_bool(0.15) {
        text.push('-');
    }
    // Leading zeros now and then; lengths up to past 28 digits sometimes.
    if rng.gen_bool(0.1) {
        text.push_str(&"0".repeat(rng.gen_range(1..40)));
    }
    let long = rng.gen_bool(0.1);
    text.push_str(&digits(rng, if long { 120 } else { 14 }));
    if rng.gen_bool(0.6) {
        text.push('.');
        text.push_str(&digits(rng, if long { 60 } else { 4 }));
    }
    if rng.gen_bool(0.1) {
        text.push(if rng.gen_bool(0.5) { 'e' } else { 'E' });
        if rng.gen_bool(0.5) {
            text.push(if rng.gen_bool(0.5) { '+' } else { '-' });
        }
        text.push_str(&digits(rng, 4));
    }
    for _ in 0..rng.gen_range(0..3) {
        if rng.gen_bool(0.2) {
            let at = rng.gen_range(0..=text.chars().count());
            let c = HOSTILE_CHARS[rng.gen_range(0..HOSTILE_CHARS.len())];
            let byte = text.char_indices().nth(at).map_or(text.len(), |(i, _)| i);
            text.insert(byte, c);
        }
    }
    if rng.gen_bool(0.5) {
        string(&text)
    } else {
        text
    }
}

/// What the server should answer for an amount token, and the amount.
enum Expected {
    Malformed,
    NotAnAmount,
    Amount(Decimal),
}

fn expectation(body: &str) -> Expected {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return Expected::Malformed;
    };
    let text = match &value["amount"] {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Expected::Malformed,
    };
    match oracle(&text) {
        Some(amount) => Expected::Amount(amount),
        None => Expected::NotAnAmount,
    }
}

#[tokio::test]
async fn generated_amounts_are_accepted_exactly_when_the_oracle_says_they_are_amounts() {
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cases: usize = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut rng = StdRng::seed_from_u64(seed);
    let fx = Fixture::new().await;
    let initial = Decimal::from_str("1000.00").expect("a decimal");
    let (mut funded, mut other) = (initial, initial);
    let mut transfers = snapshot(&fx.sql).await.transfers;
    let (mut accepted, mut malformed, mut refused, mut insufficient) = (0, 0, 0, 0);

    for case in 0..cases {
        let token = generate_token(&mut rng);
        let deposit = rng.gen_bool(0.5);
        let (route, path, body) = if deposit {
            (
                "deposit",
                format!("/accounts/{}/deposits", fx.funded),
                format!(r#"{{"amount": {token}}}"#),
            )
        } else {
            (
                "transfer",
                "/transfers".to_owned(),
                format!(
                    r#"{{"source": "{}", "destination": "{}", "amount": {token}}}"#,
                    fx.funded, fx.other
                ),
            )
        };
        let label = format!("case {case} (seed {seed}): {route} of {}", shorten(&token));
        let answer = fx.post_json_text(&path, &body).await;
        match expectation(&body) {
            Expected::Malformed => {
                answer.expect_problem(400, "invalid_request", &label);
                malformed += 1;
            }
            Expected::NotAnAmount => {
                answer.expect_problem(422, "validation_failed", &label);
                refused += 1;
            }
            Expected::Amount(amount) if !deposit && amount > funded => {
                answer.expect_problem(422, "insufficient_funds", &label);
                insufficient += 1;
            }
            Expected::Amount(amount) => {
                assert_eq!(answer.status, 201, "{label}: {}", short(&answer.body));
                let stored = answer.body["amount"]
                    .as_str()
                    .and_then(|a| Decimal::from_str(a).ok());
                assert_eq!(stored, Some(amount), "{label}: the amount stored");
                if deposit {
                    funded += amount;
                } else {
                    funded -= amount;
                    other += amount;
                }
                transfers += 1;
                accepted += 1;
            }
        }
        // The ledger is exactly what the accepted cases made it.
        let row = fx
            .sql
            .query_one(
                "select (select count(*) from ledger.transfers),
                        ledger.balance($1), ledger.balance($2)",
                &[&fx.funded, &fx.other],
            )
            .await
            .expect("the ledger's state");
        let now: (i64, Decimal, Decimal) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(now, (transfers, funded, other), "{label}: the ledger");
    }
    fx.assert_invariants().await;
    println!(
        "generated amounts: seed {seed}, {cases} cases: {accepted} accepted with the exact \
         amount, {refused} refused as not an amount (422), {malformed} refused as malformed \
         (400), {insufficient} refused for insufficient funds; ledger matched the oracle after \
         every case, violations: 0"
    );
}

// ---------------------------------------------------------------------------
// Bodies, headers and paths
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_bodies_headers_and_paths_get_a_4xx_problem_and_change_nothing() {
    let fx = Fixture::new().await;
    let before = snapshot(&fx.sql).await;
    // Transfers out of the empty account: even a body wrongly accepted could
    // not move money, and would show up as insufficient_funds instead.
    let (empty, other) = (fx.empty, fx.other);
    let valid = format!(r#""source": "{empty}", "destination": "{other}", "amount": "1.00""#);
    let nested = |depth: usize, open: &str, close: &str| {
        format!("{}{}", open.repeat(depth), close.repeat(depth))
    };
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (
            nested(10_000, "[", "]"),
            400,
            "invalid_request",
            "10,000 nested arrays",
        ),
        (
            "[".repeat(10_000),
            400,
            "invalid_request",
            "10,000 unclosed arrays",
        ),
        (
            format!(
                r#"{{{valid}, "metadata": {}}}"#,
                nested(10_000, r#"{"a":"#, "}")
            ),
            400,
            "invalid_request",
            "metadata nested 10,000 objects deep",
        ),
        (
            format!(
                r#"{{{valid}, "metadata": {{"a": {}}}}}"#,
                nested(200, "[", "]")
            ),
            400,
            "invalid_request",
            "metadata nested 200 arrays deep (past the parser's limit of 128)",
        ),
        (
            format!(
                r#"{{{valid}, "metadata": {{"blob": "{}"}}}}"#,
                "x".repeat(20_000)
            ),
            422,
            "validation_failed",
            "metadata of 20 KB (limit 16 KiB)",
        ),
        (
            format!(
                r#"{{{valid}, "metadata": {{"blob": "{}"}}}}"#,
                "x".repeat(70_000)
            ),
            413,
            "payload_too_large",
            "a body of 70 KB (limit 64 KiB)",
        ),
        (
            format!(r#"{{{valid}, "metadata": {{"k": "nul\u0000byte"}}}}"#),
            422,
            "validation_failed",
            "a NUL character in metadata (jsonb cannot hold it)",
        ),
        (
            format!(r#"{{{valid}, "metadata": {{"nul\u0000key": 1}}}}"#),
            422,
            "validation_failed",
            "a NUL character in a metadata key",
        ),
        (
            format!(r#"{{{valid}, "metadata": {{"n": 1e999999}}}}"#),
            422,
            "validation_failed",
            "a metadata number beyond PostgreSQL's numeric",
        ),
        (
            format!(r#"{{{valid}, "metadata": {{"n": [-1e20000, 1e-20000]}}}}"#),
            422,
            "validation_failed",
            "metadata numbers of 20,000 digits once written out",
        ),
        (
            format!(r#"{{{valid}, "metadata": {{"n": 1e99999999999999999999}}}}"#),
            422,
            "validation_failed",
            "a metadata exponent that overflows",
        ),
        (
            format!(
                r#"{{{valid}, "metadata": {{"n": {}}}}}"#,
                "9".repeat(20_000)
            ),
            422,
            "validation_failed",
            "a metadata number of 20,000 digits",
        ),
        (
            format!(r#"{{{valid}, "metadata": {{"n": NaN}}}}"#),
            400,
            "invalid_request",
            "NaN in metadata is not JSON",
        ),
        (
            format!(r#"{{{valid}, "metadata": "text"}}"#),
            422,
            "validation_failed",
            "metadata that is a string",
        ),
        (
            format!(r#"{{{valid}, "metadata": [1, 2]}}"#),
            422,
            "validation_failed",
            "metadata that is an array",
        ),
        (
            format!(r#"{{{valid}, "metadata": {{"s": "\ud800"}}}}"#),
            400,
            "invalid_request",
            "a lone surrogate escape",
        ),
        (
            format!("\u{feff}{{{valid}}}"),
            400,
            "invalid_request",
            "a byte-order mark",
        ),
        (
            format!("{{{valid}}} x"),
            400,
            "invalid_request",
            "trailing garbage",
        ),
        (
            format!("{{{valid}}}{{{valid}}}"),
            400,
            "invalid_request",
            "two JSON documents",
        ),
        (
            format!(r#"{{{valid}, "amount": "2.00"}}"#),
            400,
            "invalid_request",
            "a duplicated field",
        ),
        (
            format!(r#"{{{valid}, "extra": 1}}"#),
            400,
            "invalid_request",
            "an unknown field",
        ),
        (
            format!(r#"{{{valid}, "Amount": "1.00"}}"#),
            400,
            "invalid_request",
            "a field name in another case",
        ),
        (String::new(), 400, "invalid_request", "an empty body"),
        ("null".to_owned(), 400, "invalid_request", "null"),
        ("[]".to_owned(), 400, "invalid_request", "an array"),
        (
            r#""transfer""#.to_owned(),
            400,
            "invalid_request",
            "a string",
        ),
        ("42".to_owned(), 400, "invalid_request", "a number"),
        ("{}".to_owned(), 400, "invalid_request", "no fields"),
        (
            format!(r#"{{"source": 5, "destination": "{other}", "amount": "1.00"}}"#),
            400,
            "invalid_request",
            "a number as account id",
        ),
        (
            format!(r#"{{"source": null, "destination": "{other}", "amount": "1.00"}}"#),
            400,
            "invalid_request",
            "null as account id",
        ),
        (
            format!(r#"{{"source": "not-a-uuid", "destination": "{other}", "amount": "1.00"}}"#),
            400,
            "invalid_request",
            "a malformed account id",
        ),
        (
            format!(
                r#"{{"source": "{empty}'; drop table ledger.transfers; --", "destination": "{other}", "amount": "1.00"}}"#
            ),
            400,
            "invalid_request",
            "SQL after an account id",
        ),
        (
            format!(r#"{{"source": ["{empty}"], "destination": "{other}", "amount": "1.00"}}"#),
            400,
            "invalid_request",
            "an array as account id",
        ),
        (
            format!(r#"{{"source": "{empty}", "destination": "{empty}", "amount": "1.00"}}"#),
            422,
            "validation_failed",
            "the same account on both sides",
        ),
        (
            format!(
                r#"{{"source": "00000000-0000-0000-0000-000000000840", "destination": "{other}", "amount": "1.00"}}"#
            ),
            422,
            "validation_failed",
            "the system account as source",
        ),
        (
            format!(r#"{{{valid}}}"#),
            422,
            "insufficient_funds",
            "the control case: well-formed, out of an empty account",
        ),
    ];
    let mut sent = 0;
    for (body, status, code, why) in &cases {
        let answer = fx.post_json_text("/transfers", body).await;
        answer.expect_problem(*status, code, why);
        sent += 1;
    }

    // The same structural attacks on the other write routes.
    let deposits = format!("/accounts/{}/deposits", fx.funded);
    let withdrawals = format!("/accounts/{}/withdrawals", fx.funded);
    for path in ["/accounts", deposits.as_str(), withdrawals.as_str()] {
        let structural: [(String, u16, &str, &str); 7] = [
            (
                nested(10_000, "[", "]"),
                400,
                "invalid_request",
                "10,000 nested arrays",
            ),
            (
                format!(r#"{{"metadata": {}}}"#, nested(10_000, r#"{"a":"#, "}")),
                400,
                "invalid_request",
                "metadata nested 10,000 objects deep",
            ),
            (
                format!(r#"{{"metadata": {{"blob": "{}"}}}}"#, "x".repeat(70_000)),
                413,
                "payload_too_large",
                "a body of 70 KB",
            ),
            (String::new(), 400, "invalid_request", "an empty body"),
            ("[]".to_owned(), 400, "invalid_request", "an array"),
            (
                r#"{"amount": "1.00", "extra": 1}"#.to_owned(),
                400,
                "invalid_request",
                "an unknown field",
            ),
            (
                r#"{"amount": "1.00", "currency": "USD", "metadata": {"k": "\u0000"}}"#.to_owned(),
                400,
                "invalid_request",
                "a field this route does not have (amount or currency)",
            ),
        ];
        for (body, status, code, why) in &structural {
            let answer = fx.post_json_text(path, body).await;
            answer.expect_problem(*status, code, &format!("POST {path}: {why}"));
            sent += 1;
        }
    }

    // Bytes that are not UTF-8, where JSON text must be.
    let mut invalid_utf8 = format!(r#"{{{valid}, "metadata": {{"k": ""#).into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc0\xaf");
    invalid_utf8.extend_from_slice(b"\"}}");
    let byte_cases: Vec<(Vec<u8>, &str)> = vec![
        (invalid_utf8, "invalid UTF-8 bytes in a metadata string"),
        (
            b"{\"amount\": \"\xff1.00\"}".to_vec(),
            "invalid UTF-8 in an amount",
        ),
        (b"\xff\xfe{}".to_vec(), "a UTF-16 byte-order mark"),
        (b"\x00\x00\x00\x00".to_vec(), "NUL bytes"),
    ];
    for (bytes, why) in byte_cases {
        let answer = fx
            .post_raw("/transfers", Some("application/json"), bytes, &[])
            .await;
        answer.expect_problem(400, "invalid_request", why);
        sent += 1;
    }

    // Content types other than JSON.
    let body = format!("{{{valid}}}");
    for (content_type, why) in [
        (Some("text/plain"), "text/plain"),
        (Some("application/x-www-form-urlencoded"), "a form"),
        (Some("application/xml"), "XML"),
        (None, "no Content-Type"),
    ] {
        let answer = fx
            .post_raw("/transfers", content_type, body.clone(), &[])
            .await;
        answer.expect_problem(415, "unsupported_media_type", why);
        sent += 1;
    }

    // Idempotency-Key headers that are not keys.
    let long_key = "k".repeat(256);
    for (value, why) in [
        (&b"\xff\xfe"[..], "invalid UTF-8"),
        (b"has space", "a space"),
        (long_key.as_bytes(), "256 characters"),
        (b"caf\xc3\xa9", "non-ASCII"),
        (b"\"\"", "an empty quoted key"),
    ] {
        let answer = fx
            .post_raw(
                "/transfers",
                Some("application/json"),
                body.clone(),
                &[("idempotency-key", value)],
            )
            .await;
        answer.expect_problem(400, "invalid_request", why);
        sent += 1;
    }

    // Path segments that are not ids.
    for (path, why) in [
        ("/accounts/%FF%FE/deposits", "invalid UTF-8 in the id"),
        ("/accounts/%00/deposits", "a NUL in the id"),
        (
            "/accounts/'%3B%20drop%20table%20ledger.transfers%3B--/deposits",
            "SQL as the id",
        ),
        ("/accounts/1%20or%201%3D1/deposits", "a tautology as the id"),
        (
            "/accounts/00000000-0000-0000-0000-00000000084/deposits",
            "a short id",
        ),
    ] {
        let answer = fx.post_json_text(path, r#"{"amount": "1.00"}"#).await;
        answer.expect_problem(400, "invalid_request", why);
        sent += 1;
    }

    // Bodies over the limit: with a length, and chunked with no length.
    let big = format!(
        r#"{{{valid}, "metadata": {{"blob": "{}"}}}}"#,
        "x".repeat(4 << 20)
    );
    let answer = fx
        .post_raw("/transfers", Some("application/json"), big.clone(), &[])
        .await;
    answer.expect_problem(413, "payload_too_large", "a 4 MiB body");
    let key = fx.app.admin_key.as_deref().expect("an admin key");
    let chunked =
        raw_chunked_post(fx.app.address.as_str(), key, "/transfers", big.as_bytes()).await;
    assert!(
        chunked.starts_with("HTTP/1.1 413"),
        "a 4 MiB chunked body: {}",
        chunked.lines().next().unwrap_or_default()
    );
    sent += 2;

    // Requests that are not HTTP/1.1: actix-web's parser refuses them before
    // the application sees them, with a bare 400 (no problem document: the
    // application never gets the request).
    let address = fx.app.address.as_str();
    let host = address.trim_start_matches("http://");
    let body = format!("{{{valid}}}");
    let length = body.len();
    for (head, why) in [
        (
            format!("POST /transfers HTTP/1.1\r\nHost: {host}\r\nIdempotency-Key: a\x01b\r\n"),
            "a control character in a header value",
        ),
        (
            format!("POST /transfers HTTP/1.1\r\nHost: {host}\r\nBad Header: 1\r\n"),
            "a space in a header name",
        ),
        (
            format!("POST /transfers HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1e3\r\n"),
            "a Content-Length that is not a number",
        ),
        (
            format!(
                "POST /transfers HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\
                 Content-Length: {}\r\n",
                length + 1
            ),
            "two different Content-Lengths",
        ),
        (
            format!(
                "POST /transfers HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\
                 Transfer-Encoding: chunked\r\n"
            ),
            "Content-Length with Transfer-Encoding (request smuggling)",
        ),
    ] {
        let request =
            format!("{head}Content-Type: application/json\r\nConnection: close\r\n\r\n{body}");
        let response = raw_exchange(address, &[request.into_bytes()]).await;
        assert!(
            response.starts_with("HTTP/1.1 400"),
            "{why}: {}",
            response.lines().next().unwrap_or_default()
        );
        // The known exception to "every error is a problem" (README, Hostile
        // input): actix-http answers these itself, with an empty body and no
        // request id; it offers no hook to render them. If it ever does, this
        // fails and the README should change with it.
        let lower = response.to_ascii_lowercase();
        assert!(
            lower.contains("content-length: 0") && !lower.contains("x-request-id"),
            "{why}: the parser's own 400 changed shape: {response}"
        );
        sent += 1;
    }

    assert_eq!(
        snapshot(&fx.sql).await,
        before,
        "a refused request changed the ledger"
    );
    println!(
        "malformed input: {sent} requests (bodies, bytes, content types, headers, paths, \
         oversized), all refused with a 4xx problem, ledger unchanged"
    );
}

#[tokio::test]
async fn a_body_dribbled_slower_than_the_read_timeout_gets_408_and_a_closed_connection() {
    let app = spawn_process(LEDGER, &[("LEDGER_BODY_READ_TIMEOUT_MS", "1000")]).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let body = br#"{"metadata": {"note": "one byte at a time"}}"#;
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("a connection");
    let key = app.admin_key.as_deref().expect("an admin key");
    let head = format!(
        "POST /accounts HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {key}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("the headers are sent");
    let started = Instant::now();

    // One byte every 300 ms: the 43-byte body would take 13 s. Stop writing
    // as soon as the server has answered (or closed).
    let (mut reader, mut writer) = stream.into_split();
    let dribble = async move {
        for byte in body {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let mut response = Vec::new();
    let read = async { reader.read_to_end(&mut response).await };
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            read = read => read,
            () = dribble => Ok(0),
        }
    })
    .await;
    let elapsed = started.elapsed();

    let read = outcome.expect("the server answered within 10 s");
    assert!(read.is_ok(), "the connection was closed cleanly: {read:?}");
    let response = String::from_utf8_lossy(&response).into_owned();
    assert!(
        response.starts_with("HTTP/1.1 408"),
        "a stalled body times out: {response}"
    );
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{response}"
    );
    assert!(lower.contains("connection: close"), "{response}");
    assert!(
        response.contains(r#""code":"request_timeout""#),
        "{response}"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < PROMPT,
        "answered after {elapsed:?}, expected about the 1 s timeout"
    );
    // Nothing was opened.
    let sql = app.database().connect().await.expect("a plain connection");
    let accounts: i64 = sql
        .query_one(
            "select count(*) from ledger.accounts where not is_system",
            &[],
        )
        .await
        .expect("a count")
        .get(0);
    assert_eq!(accounts, 0);
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no length to refuse it
/// by) over a raw connection; returns the response.
async fn raw_chunked_post(address: &str, key: &str, path: &str, body: &[u8]) -> String {
    let host = address.trim_start_matches("http://");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut parts = vec![head.into_bytes()];
    for chunk in body.chunks(16 * 1024) {
        let mut part = format!("{:x}\r\n", chunk.len()).into_bytes();
        part.extend_from_slice(chunk);
        part.extend_from_slice(b"\r\n");
        parts.push(part);
    }
    parts.push(b"0\r\n\r\n".to_vec());
    raw_exchange(address, &parts).await
}

/// Writes `parts` to a fresh connection as they are (no HTTP client to tidy
/// them up), then reads the whole response; the server may answer and close
/// before it has read everything, so write errors are ignored.
async fn raw_exchange(address: &str, parts: &[Vec<u8>]) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("a connection");
    let write = async {
        for part in parts {
            stream.write_all(part).await?;
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(PROMPT, write).await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(PROMPT, stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "no answer within {PROMPT:?}");
    String::from_utf8_lossy(&response).into_owned()
}

// ---------------------------------------------------------------------------
// SQL injection
// ---------------------------------------------------------------------------

/// Strings made to end a SQL literal or statement, or to be one.
const INJECTIONS: &[&str] = &[
    "'; drop table ledger.transfers; --",
    "\"; drop table ledger.transfers; --",
    "'); delete from ledger.accounts; --",
    "' or '1'='1",
    "1; select pg_sleep(10)",
    "$$; drop table ledger.transfers; $$",
    "$tag$ truncate ledger.transfers $tag$",
    "\\x00",
    "\\",
    "\\'",
    "''",
    "E'\\x27'",
    "/* */ union select * from pg_shadow --",
    "%s%s%s%n",
    "{\"a\": 1}",
    "\u{202e}RTL override",
    "Robert'); DROP TABLE Students;--",
    "ledger.transfers",
    "\r\nX-Injected: 1",
];

/// Idempotency keys (1 to 255 visible ASCII characters) made the same way.
const INJECTED_KEYS: &[&str] = &[
    "';drop_table_ledger.transfers;--",
    "$$;truncate_ledger.transfers;$$",
    "\\x00",
    "'or'1'='1",
    "%27%3B--",
    "\\",
    "\"",
    "'",
];

#[tokio::test]
async fn injection_attempts_land_as_data_or_as_a_4xx_never_as_sql() {
    let fx = Fixture::new().await;
    let shape = schema_shape(&fx.sql).await;
    let mut expected = snapshot(&fx.sql).await;
    let mut sent = 0;

    // Metadata keys and values: stored and returned byte for byte.
    let metadata: serde_json::Map<String, Value> = INJECTIONS
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let value = json!({ "value": text, "list": [text], (*text): i });
            ((*text).to_owned(), value)
        })
        .collect();
    let metadata = Value::Object(metadata);
    let open = json!({"currency": "USD", "initial_balance": "5.00", "metadata": metadata});
    let answer = Answer::of(fx.http.post(fx.url("/accounts")).json(&open)).await;
    assert_eq!(answer.status, 201, "{}", short(&answer.body));
    let account = answer.body["id"].as_str().expect("an id").to_owned();
    let read = fx.get(&format!("/accounts/{account}")).await;
    assert_eq!(
        read.body["metadata"], metadata,
        "account metadata round trip"
    );
    let stored: Value = fx
        .sql
        .query_one(
            "select metadata from ledger.accounts where account_id = $1::text::uuid",
            &[&account],
        )
        .await
        .expect("the stored metadata")
        .get(0);
    assert_eq!(stored, metadata, "account metadata as stored");
    expected.accounts += 1;
    expected.transfers += 1; // the opening deposit
    sent += 2;

    for text in INJECTIONS {
        let metadata = json!({ (*text): text, "note": [text, {"k": text}] });
        let answer = Answer::of(
            fx.http
                .post(fx.url(&format!("/accounts/{}/deposits", fx.funded)))
                .json(&json!({"amount": "0.01", "metadata": metadata})),
        )
        .await;
        assert_eq!(
            answer.status,
            201,
            "deposit with {text:?}: {}",
            short(&answer.body)
        );
        let id = answer.body["id"].as_str().expect("an id");
        let read = fx.get(&format!("/transfers/{id}")).await;
        assert_eq!(
            read.body["metadata"], metadata,
            "transfer metadata round trip: {text:?}"
        );
        assert!(
            read.latency < Duration::from_secs(2),
            "{text:?} took {:?}",
            read.latency
        );
        expected.transfers += 1;
        sent += 2;
    }

    // Currencies: refused as unknown codes, whatever they hold.
    for text in INJECTIONS.iter().chain(&["USD'--", "USD;", "usd"]) {
        let answer = Answer::of(
            fx.http
                .post(fx.url("/accounts"))
                .json(&json!({"currency": text})),
        )
        .await;
        answer.expect_problem(422, "validation_failed", &format!("currency {text:?}"));
        sent += 1;
    }

    // Idempotency keys: stored as data, replayed by exact match.
    for key in INJECTED_KEYS {
        let send = || {
            Answer::of(
                fx.http
                    .post(fx.url(&format!("/accounts/{}/deposits", fx.funded)))
                    .header("idempotency-key", *key)
                    .json(&json!({"amount": "0.01"})),
            )
        };
        let first = send().await;
        // A lone `"` is a key; `""` quoting is stripped only around a key.
        assert_eq!(first.status, 201, "key {key:?}: {}", short(&first.body));
        let again = send().await;
        assert_eq!(again.status, 201, "key {key:?} again");
        assert!(again.replayed, "key {key:?} was not replayed");
        assert_eq!(again.body, first.body, "key {key:?}: the replay differs");
        let stored: i64 = fx
            .sql
            .query_one(
                // Stored within the API key's namespace: `<key id>:<key>`.
                "select count(*) from ledger.idempotency_keys
                  where idempotency_key = (select key_id::text from ledger.api_keys
                                            where prefix = left($2, 12)) || ':' || $1",
                &[key, &fx.app.admin_key.as_deref().unwrap_or_default()],
            )
            .await
            .expect("the stored key")
            .get(0);
        assert_eq!(stored, 1, "key {key:?} is not stored as given");
        expected.transfers += 1;
        expected.idempotency_keys += 1;
        sent += 2;
    }

    // Query strings and path segments: refused as malformed.
    let history = format!("/accounts/{}/transfers", fx.funded);
    for (path, why) in [
        (
            format!("{history}?cursor='%3B%20drop%20table%20ledger.transfers%3B--"),
            "SQL as cursor",
        ),
        (
            format!("{history}?cursor=1_'or'1'='1"),
            "a tautology in the cursor",
        ),
        (
            format!("{history}?limit=1%3B%20drop%20table%20ledger.transfers"),
            "SQL after a limit",
        ),
        (
            format!("{history}?from=2020-01-01'--"),
            "SQL after a timestamp",
        ),
        (
            format!("/accounts/{}/balance?at=now()", fx.funded),
            "SQL function as time",
        ),
        (
            "/accounts?cursor=$$x$$".to_owned(),
            "dollar quoting as cursor",
        ),
        (
            "/accounts/'%20or%20'1'='1".to_owned(),
            "a tautology as account id",
        ),
        (
            "/transfers/1;select%20pg_sleep(10)".to_owned(),
            "pg_sleep as transfer id",
        ),
    ] {
        let answer = fx.get(&path).await;
        answer.expect_problem(400, "invalid_request", why);
        sent += 1;
    }

    // Nothing but the accepted writes happened, and the schema is intact.
    assert_eq!(schema_shape(&fx.sql).await, shape, "the schema changed");
    let now = snapshot(&fx.sql).await;
    assert_eq!(
        (now.transfers, now.accounts, now.idempotency_keys),
        (
            expected.transfers,
            expected.accounts,
            expected.idempotency_keys
        ),
        "only the accepted writes may change the ledger"
    );
    fx.assert_invariants().await;
    println!(
        "injection: {sent} requests with {} payloads in metadata keys and values, currencies, \
         idempotency keys, paths and query strings: stored byte for byte or refused with a 4xx; \
         schema intact ({} objects), violations: 0",
        INJECTIONS.len() + INJECTED_KEYS.len(),
        shape.len()
    );
}
