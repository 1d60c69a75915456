//! The harness of the black-box API tests.
//!
//! [`spawn_app`] starts the real server (`ledger_server::server`, the same
//! code `ledger serve` runs) on a free port, against a fresh migrated
//! database with the horizon ticker running. Every request goes through
//! [`TestApp::send`], which checks the response against the OpenAPI document
//! the server itself serves: the operation must declare the status, the body
//! must validate against the declared schema, errors must be
//! `application/problem+json` with the full problem shape, and every
//! response must carry an `X-Request-ID`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use ledger_server::ApiConfig;
use ledger_store::{Ledger, StoreConfig};
use ledger_testkit::TestDatabase;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

/// How often the test servers advance the horizon.
pub const HORIZON_INTERVAL: Duration = Duration::from_millis(50);

/// A running server and what the test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client with no default headers.
    pub client: reqwest::Client,
    /// The database the server uses (absent for an unreachable one).
    pub db: Option<TestDatabase>,
    handle: ServerHandle,
    ticker: tokio::task::JoinHandle<()>,
    spec: Arc<Spec>,
}

/// Starts the server with the default API configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server with an adjusted API configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ApiConfig)) -> TestApp {
    let db = TestDatabase::create()
        .await
        .expect("Failed to create a test database");
    let ledger = db.ledger_with(|config| config.pool_size = 16);
    start(ledger, Some(db), adjust).await
}

/// Starts the server against a database that cannot be reached.
pub async fn spawn_app_without_database() -> TestApp {
    let mut config = StoreConfig::new("postgres://postgres@127.0.0.1:1/unreachable");
    config.connect_timeout = Duration::from_millis(500);
    config.acquire_timeout = Duration::from_millis(500);
    let ledger = Ledger::connect(config).expect("a valid database URL");
    start(ledger, None, |_| {}).await
}

async fn start(
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
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("Failed to build the HTTP client");
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
        db,
        handle,
        ticker,
        spec: Arc::new(Spec::new(document)),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop the server before the database is dropped under it.
        drop(self.handle.stop(false));
        self.ticker.abort();
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

    /// Panics unless this is the problem `code` with `status`.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (status, Some(code)),
            "unexpected response: {}",
            self.body
        );
        self
    }
}

impl TestApp {
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
        let request = request.build().expect("a valid request");
        let method = request.method().as_str().to_lowercase();
        let path = request.url().path().to_owned();
        let response = self
            .client
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

/// The served OpenAPI document, with compiled response validators.
struct Spec {
    document: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Spec {
    fn new(document: Value) -> Self {
        Self {
            document,
            validators: Mutex::default(),
        }
    }

    /// The path template of the spec that `path` matches, if any. A literal
    /// segment beats a `{parameter}`.
    fn template_for(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.document["paths"].as_object()?;
        paths
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literals = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') && part.ends_with('}') {
                        if segment.is_empty() {
                            return None;
                        }
                    } else if part == segment {
                        literals += 1;
                    } else {
                        return None;
                    }
                }
                Some((literals, template.clone()))
            })
            .max()
            .map(|(_, template)| template)
    }

    fn check(&self, method: &str, path: &str, response: &ApiResponse) {
        let what = format!("{} {path} → {}", method.to_uppercase(), response.status);
        let request_id = response
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{what}: no X-Request-ID header"));
        let content_type = response
            .header("content-type")
            .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_owned());

        if response.status >= 400 {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{what}: errors are problem+json"
            );
            let body = response
                .body
                .as_object()
                .unwrap_or_else(|| panic!("{what}: no body"));
            let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
            keys.sort_unstable();
            // A refused batch names its failing leg; nothing else carries one.
            if path == "/batches" && body.contains_key("leg") {
                assert!(
                    body["leg"].as_u64().is_some(),
                    "{what}: leg is an index from 0"
                );
                keys.retain(|key| *key != "leg");
            }
            assert_eq!(
                keys,
                ["code", "detail", "request_id", "status", "title", "type"],
                "{what}: problem fields"
            );
            assert_eq!(
                body["status"],
                json!(response.status),
                "{what}: problem status"
            );
            assert_eq!(
                body["request_id"],
                json!(request_id),
                "{what}: problem request_id"
            );
            assert!(
                !body["detail"].as_str().unwrap_or_default().is_empty(),
                "{what}: detail"
            );
        }

        let operation = self.template_for(path).and_then(|template| {
            let operation = &self.document["paths"][&template][method];
            operation.is_object().then(|| (template, operation.clone()))
        });
        let Some((template, operation)) = operation else {
            // Only the router's own answers are outside the document.
            assert!(
                matches!(response.status, 404 | 405),
                "{what}: undocumented operation"
            );
            let key = "#/components/schemas/Problem".to_owned();
            let schema = json!({ "$ref": key });
            self.validate(&key, &schema, &response.body, &what);
            return;
        };
        let status = response.status.to_string();
        let declared = &operation["responses"][&status];
        assert!(
            declared.is_object(),
            "{what}: status {status} is not declared for {} {template}",
            method.to_uppercase()
        );
        let content = declared["content"].as_object();
        match (content, content_type) {
            (None, _) => assert!(response.body.is_null(), "{what}: undeclared body"),
            (Some(content), Some(content_type)) => {
                let media = content.get(&content_type).unwrap_or_else(|| {
                    panic!("{what}: content type {content_type} is not declared")
                });
                let key = format!("{method} {template} {status} {content_type}");
                self.validate(&key, &media["schema"], &response.body, &what);
            }
            (Some(_), None) => panic!("{what}: no content type"),
        }
    }

    fn validate(&self, key: &str, schema: &Value, body: &Value, what: &str) {
        let validator = {
            let mut validators = self.validators.lock().expect("not poisoned");
            validators
                .entry(key.to_owned())
                .or_insert_with(|| {
                    // The response schema, with the document's components
                    // beside it so that `#/components/schemas/…` resolves.
                    let root = json!({
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "components": self.document["components"],
                        "allOf": [schema],
                    });
                    let validator = jsonschema::options()
                        .should_validate_formats(true)
                        .build(&root)
                        .unwrap_or_else(|err| panic!("{what}: invalid schema: {err}"));
                    Arc::new(validator)
                })
                .clone()
        };
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|err| format!("{} at {}", err, err.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the OpenAPI document:\n  {}\nbody: {body}",
            errors.join("\n  ")
        );
    }
}
