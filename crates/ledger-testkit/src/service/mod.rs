//! The service harness: the real server on a free loopback port, against a
//! fresh migrated database, and what a test needs to talk to it.
//!
//! It runs either in-process ([`spawn_app`]: `ledger_server::server`, the
//! same code `ledger serve` runs, with the horizon ticker, in the test's
//! runtime) or as the `ledger` binary in a child process ([`spawn_process`]:
//! for what only a process can suffer, `kill -9`, or configuration read
//! from the environment). Every request sent through [`TestApp::send`] is
//! checked against the OpenAPI document the server itself serves: the
//! operation must declare the status, the body must validate against the
//! declared schema, errors must be `application/problem+json` with the full
//! problem shape, and every response must carry an `X-Request-ID`. Raw
//! requests (`app.client`) skip the check, for inputs no contract covers.

mod contract;
mod process;
mod steps;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use ledger_server::ApiConfig;
use ledger_store::{Ledger, StoreConfig};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::TestDatabase;
use contract::Spec;
pub use process::LedgerProcess;
pub use steps::{header_text, rfc3339, spawn_app_with_accounts, timestamp};

/// How often the in-process servers advance the horizon.
pub const HORIZON_INTERVAL: Duration = Duration::from_millis(50);

/// A running server and what the test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client that sends the app's admin key with every request (see
    /// [`authorized_client`]); raw requests through it skip the contract
    /// check but not authentication.
    pub client: reqwest::Client,
    /// The admin key `client` sends (absent for an unreachable database).
    pub admin_key: Option<String>,
    /// The database the server uses (absent for an unreachable one).
    pub db: Option<TestDatabase>,
    runner: Runner,
    spec: Arc<Spec>,
}

/// How the server runs.
enum Runner {
    /// In this process, stopped when the test app is dropped.
    InProcess {
        handle: ServerHandle,
        ticker: tokio::task::JoinHandle<()>,
    },
    /// The `ledger` binary, killed when dropped.
    Process(LedgerProcess),
}

/// Starts the server in-process with the default API configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server in-process with an adjusted API configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ApiConfig)) -> TestApp {
    let db = TestDatabase::create()
        .await
        .expect("Failed to create a test database");
    let ledger = db.ledger_with(|config| config.pool_size = 16);
    start_in_process(ledger, Some(db), adjust).await
}

/// Starts the server in-process against a database that cannot be reached.
pub async fn spawn_app_without_database() -> TestApp {
    let mut config = StoreConfig::new("postgres://postgres@127.0.0.1:1/unreachable");
    config.connect_timeout = Duration::from_millis(500);
    config.acquire_timeout = Duration::from_millis(500);
    let ledger = Ledger::connect(config).expect("a valid database URL");
    start_in_process(ledger, None, |_| {}).await
}

/// Starts `binary` (`env!("CARGO_BIN_EXE_ledger")`, which only the server
/// crate's own tests know) as `ledger serve` against a fresh database, with
/// `env` on top of [`LedgerProcess::start`]'s defaults.
pub async fn spawn_process(binary: &str, env: &[(&str, &str)]) -> TestApp {
    let db = TestDatabase::create()
        .await
        .expect("Failed to create a test database");
    let process = LedgerProcess::start(binary, db.url(), env);
    let address = process.address().to_owned();
    connect(address, Some(db), Runner::Process(process)).await
}

async fn start_in_process(
    ledger: Ledger,
    db: Option<TestDatabase>,
    adjust: impl FnOnce(&mut ApiConfig),
) -> TestApp {
    let mut api = ApiConfig::default();
    adjust(&mut api);
    let ticker = tokio::spawn(ledger.clone().run_horizon_ticker(HORIZON_INTERVAL));
    let listener = TcpListener::bind("127.0.0.1:0").expect("Failed to bind a free port");
    let port = listener.local_addr().expect("a local address").port();
    let server =
        ledger_server::server(ledger, api, listener, 2).expect("Failed to start the server");
    let handle = server.handle();
    tokio::spawn(server);
    let address = format!("http://127.0.0.1:{port}");
    connect(address, db, Runner::InProcess { handle, ticker }).await
}

/// Fetches the served OpenAPI document, which every checked response is
/// judged by.
async fn connect(address: String, db: Option<TestDatabase>, runner: Runner) -> TestApp {
    let admin_key = match &db {
        Some(db) => Some(db.admin_key().await),
        None => None,
    };
    // Without a database no key can be made; a well-formed one still takes
    // requests as far as the key check, which needs the database.
    let unverifiable = format!("lk_{}", "0".repeat(64));
    let client = authorized_client(
        Duration::from_secs(30),
        admin_key.as_deref().unwrap_or(&unverifiable),
    );
    let document: Value = client
        .get(format!("{address}/openapi.json"))
        .send()
        .await
        .expect("Failed to fetch /openapi.json")
        .json()
        .await
        .expect("/openapi.json is JSON");
    TestApp {
        address,
        client,
        admin_key,
        db,
        runner,
        spec: Arc::new(Spec::new(document)),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop the server before the database is dropped under it (the
        // fields drop after this, `db` before `runner`).
        match &mut self.runner {
            Runner::InProcess { handle, ticker } => {
                drop(handle.stop(false));
                ticker.abort();
            }
            Runner::Process(process) => process.shut_down(),
        }
    }
}

/// The HTTP client of the suites: no redirects, no proxy, and a timeout, so
/// that a hanging server fails a test instead of hanging it. Idle
/// connections are dropped well before the server's keep-alive (5 s) ends
/// them, so that no request races a server-side close of its connection.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    client_builder(timeout)
        .build()
        .expect("Failed to build the HTTP client")
}

fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(2))
        .timeout(timeout)
}

/// [`http_client`] sending `Authorization: Bearer <key>` with every request.
pub fn authorized_client(timeout: Duration, key: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        .expect("an API key is a valid header value");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    client_builder(timeout)
        .default_headers(headers)
        .build()
        .expect("Failed to build the HTTP client")
}

/// Opens `count` USD accounts with `initial_balance` each over raw HTTP,
/// and returns their ids. Each open carries an Idempotency-Key and is
/// retried while the service answers 503, so that setup survives a slow
/// start (or a restarted process).
pub async fn open_accounts(
    client: &reqwest::Client,
    address: &str,
    count: usize,
    initial_balance: &str,
) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let id = Uuid::now_v7();
        let key = format!("open-{id}");
        let body = json!({"id": id, "currency": "USD", "initial_balance": initial_balance});
        let mut attempts = 0;
        loop {
            attempts += 1;
            let response = client
                .post(format!("{address}/accounts"))
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            match response {
                Ok(response) if response.status().as_u16() == 201 => break,
                Ok(response) if attempts < 50 && response.status().as_u16() == 503 => {}
                Err(_) if attempts < 50 => {}
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    panic!("opening an account failed: {status} {text}");
                }
                Err(err) => panic!("opening an account failed: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ids.push(id);
    }
    ids
}

/// The items of listing pages, each mapped to the string at `pointer`
/// (e.g. `/id`), in order.
pub fn item_ids(pages: &[Value], pointer: &str) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page["items"].as_array().expect("items"))
        .map(|item| {
            item.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no {pointer} in {item}"))
                .to_owned()
        })
        .collect()
}

/// Panics unless a listing page is not empty and stops near the store's
/// byte budget (past it by one row at most).
pub fn assert_page_within_budget(page: &Value) {
    let bytes = serde_json::to_vec(page).expect("JSON").len();
    assert!(
        bytes <= ledger_store::PAGE_BYTE_BUDGET as usize + 20_000,
        "a page of {bytes} bytes is past the budget by more than one row"
    );
    let items = page["items"].as_array().expect("items");
    assert!(!items.is_empty(), "a page is never empty");
}

/// A JSON body, shortened for messages.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

/// A response that has passed the contract checks.
#[derive(Debug)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty).
    pub body: Value,
}

impl ApiResponse {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem `code` (panics if this is not a problem response).
    pub fn code(&self) -> &str {
        self.body["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not a problem response: {} {}", self.status, self.body))
    }

    /// A string field of the body.
    pub fn str(&self, field: &str) -> &str {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string field {field:?} in {}", self.body))
    }

    /// Panics unless the status is `status`, showing the body.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Panics unless this is the problem `code` with `status`; the message
    /// says `why` the case must be refused (for table-driven tests).
    #[track_caller]
    pub fn expect_refusal(&self, status: u16, code: &str, why: &str) -> &Self {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (status, Some(code)),
            "{why}: {}",
            self.body
        );
        self
    }

    /// Panics unless this is the problem `code` with `status`.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Self {
        self.expect_refusal(status, code, "unexpected response")
    }
}

impl TestApp {
    /// The child process, when the server runs as one.
    pub fn process(&self) -> Option<&LedgerProcess> {
        match &self.runner {
            Runner::Process(process) => Some(process),
            Runner::InProcess { .. } => None,
        }
    }

    /// The database the server uses.
    pub fn database(&self) -> &TestDatabase {
        self.db.as_ref().expect("a test app with a database")
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request builder for `method path`; send it with [`TestApp::send`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a request and checks the response against the contract.
    pub async fn send(&self, request: RequestBuilder) -> ApiResponse {
        self.execute_checked(&self.client, request).await
    }

    /// `method path` (with a JSON `body`) sent with `key` rather than the
    /// admin key, or with no key at all; checked against the contract.
    pub async fn send_as(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ApiResponse {
        let anonymous = http_client(Duration::from_secs(30));
        let mut request = anonymous.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.execute_checked(&anonymous, request).await
    }

    async fn execute_checked(
        &self,
        client: &reqwest::Client,
        request: RequestBuilder,
    ) -> ApiResponse {
        let request = request.build().expect("a valid request");
        let method = request.method().as_str().to_lowercase();
        let path = request.url().path().to_owned();
        let response = client
            .execute(request)
            .await
            .unwrap_or_else(|err| panic!("{method} {path} failed: {err}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a readable body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                panic!(
                    "{method} {path} → {status}: body is not JSON ({err}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        let response = ApiResponse {
            status,
            headers,
            body,
        };
        self.spec.check(&method, &path, &response);
        response
    }

    /// `GET path`, checked.
    pub async fn get(&self, path: &str) -> ApiResponse {
        self.send(self.request(Method::GET, path)).await
    }

    /// `POST path` with a JSON body, checked.
    pub async fn post(&self, path: &str, body: &Value) -> ApiResponse {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// `PUT path` with a JSON body, checked.
    pub async fn put(&self, path: &str, body: &Value) -> ApiResponse {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    /// Posts each `(body, why)` to `path` and panics unless every one is
    /// refused as the problem `code` with `status`.
    pub async fn expect_posts_refused<'a>(
        &self,
        path: &str,
        status: u16,
        code: &str,
        cases: impl IntoIterator<Item = (Value, &'a str)>,
    ) {
        for (body, why) in cases {
            self.post(path, &body)
                .await
                .expect_refusal(status, code, why);
        }
    }

    /// Gets each `(path, why)` and panics unless every one is refused as
    /// the problem `code` with `status`.
    pub async fn expect_gets_refused<'a>(
        &self,
        status: u16,
        code: &str,
        cases: impl IntoIterator<Item = (String, &'a str)>,
    ) {
        for (path, why) in cases {
            self.get(&path).await.expect_refusal(status, code, why);
        }
    }

    /// Every page of a listing: `GET path` (which carries a query already),
    /// then each `next_cursor` until there is none. Each page is checked and
    /// must be a 200.
    pub async fn pages(&self, path: &str) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut next = path.to_owned();
        loop {
            let page = self.get(&next).await;
            page.expect_status(200);
            let cursor = page.body["next_cursor"].as_str().map(str::to_owned);
            pages.push(page.body);
            match cursor {
                Some(cursor) => next = format!("{path}&cursor={cursor}"),
                None => return pages,
            }
        }
    }

    /// `DELETE path`, checked.
    pub async fn delete(&self, path: &str) -> ApiResponse {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Opens an account (asserting 201) and returns its JSON.
    pub async fn open_account(&self, body: Value) -> Value {
        let response = self.post("/accounts", &body).await;
        response.expect_status(201);
        response.body
    }

    /// Opens a USD account holding `balance`; returns its id.
    pub async fn funded_account(&self, balance: &str) -> String {
        let account = self
            .open_account(json!({ "initial_balance": balance }))
            .await;
        account["id"].as_str().expect("an id").to_owned()
    }

    /// `POST /transfers`, checked.
    pub async fn transfer(&self, source: &str, destination: &str, amount: Value) -> ApiResponse {
        let body = json!({ "source": source, "destination": destination, "amount": amount });
        self.post("/transfers", &body).await
    }

    /// `POST /accounts/{id}/deposits`, checked.
    pub async fn deposit(&self, account: &str, amount: Value) -> ApiResponse {
        self.post(
            &format!("/accounts/{account}/deposits"),
            &json!({ "amount": amount }),
        )
        .await
    }

    /// The account's current balance string.
    pub async fn balance(&self, account: &str) -> String {
        let response = self.get(&format!("/accounts/{account}/balance")).await;
        response.expect_status(200);
        response.str("balance").to_owned()
    }

    /// The served OpenAPI document.
    pub fn document(&self) -> &Value {
        &self.spec.document
    }
}
