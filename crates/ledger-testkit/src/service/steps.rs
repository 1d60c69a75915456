//! Steps the suites repeat on top of single requests: opening several
//! accounts, sending with an idempotency key, reading what no contract
//! describes, and polling a balance until it is final.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use super::{spawn_app, ApiResponse, TestApp};

/// Starts the server in-process with the default API configuration and
/// opens one USD account per balance on it (see [`TestApp::funded_accounts`]):
/// `let (app, [source, destination]) = spawn_app_with_accounts(["10.00", "0"]).await;`
pub async fn spawn_app_with_accounts<const N: usize>(
    balances: [&str; N],
) -> (TestApp, [String; N]) {
    let app = spawn_app().await;
    let accounts = app.funded_accounts(balances).await;
    (app, accounts)
}

impl TestApp {
    /// Opens one USD account per balance, in order, and returns their ids:
    /// `let [source, destination] = app.funded_accounts(["10.00", "0"]).await;`
    pub async fn funded_accounts<const N: usize>(&self, balances: [&str; N]) -> [String; N] {
        let mut ids = Vec::with_capacity(N);
        for balance in balances {
            ids.push(self.funded_account(balance).await);
        }
        ids.try_into().expect("one account per balance")
    }

    /// `POST path` with a JSON body and an `Idempotency-Key`, checked.
    pub async fn post_with_key(&self, path: &str, key: &str, body: &Value) -> ApiResponse {
        self.send(
            self.request(Method::POST, path)
                .header("Idempotency-Key", key)
                .json(body),
        )
        .await
    }

    /// `GET path` sent as it is, past the contract check: for what no
    /// contract describes (HTML, scripts, redirects).
    pub async fn get_unchecked(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path} failed: {err}"))
    }

    /// The balance of `account` as of `at` (the whole body), polled until
    /// it is final (bounded: five seconds).
    pub async fn final_balance_at(&self, account: &str, at: DateTime<Utc>) -> Value {
        let path = format!("/accounts/{account}/balance?at={}", rfc3339(at));
        for _ in 0..100 {
            let response = self.get(&path).await;
            response.expect_status(200);
            if response.body["final"] == json!(true) {
                return response.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the balance of {account} at {at} never became final");
    }
}

impl ApiResponse {
    /// Panics unless this answers a retry as a replay of `original`: the
    /// same status and body, marked `Idempotent-Replayed: true`.
    #[track_caller]
    pub fn expect_replay_of(&self, original: &ApiResponse) -> &Self {
        self.expect_status(original.status);
        assert_eq!(self.header("idempotent-replayed"), Some("true"));
        assert_eq!(self.body, original.body, "the original response");
        self
    }
}

/// A timestamp of a response body (RFC 3339).
pub fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 timestamp: {value}"))
}

/// A time as the API writes it: RFC 3339, UTC, in microseconds.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A header's value as text, for raw responses.
pub fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
