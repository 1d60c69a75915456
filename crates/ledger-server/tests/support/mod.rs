//! The harness shared by the fault suite (`tests/faults.rs`) and the
//! hostile-input suite (`tests/hostile_input.rs`).
//!
//! Both drive the real `ledger` binary as a child process, so that a fault
//! is a real one (`kill -9`, a stopped PostgreSQL) and not a simulation, and
//! both judge the outcome from the database itself, with plain SQL.
//!
//! - [`process`]: the `ledger serve` child process, its address and its logs;
//! - [`cluster`]: a PostgreSQL cluster of the test's own, one it may stop;
//! - [`load`]: concurrent writers that retry with their Idempotency-Key;
//! - [`ledger_state`]: invariants and snapshots read with plain SQL.

// Each test crate uses a different part of this module.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of the harness"
)]

pub mod cluster;
pub mod ledger_state;
pub mod load;
pub mod process;

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

/// The HTTP client of the suites: no redirects, no proxy, and a timeout, so
/// that a hanging server fails a test instead of hanging it. Idle
/// connections are dropped well before the server's keep-alive (5 s) ends
/// them, so that no request races a server-side close of its connection.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .build()
        .expect("Failed to build the HTTP client")
}

/// Opens `count` USD accounts with `initial_balance` each, and returns their
/// ids. Each open carries an Idempotency-Key and is retried while the
/// service answers 503, so that setup survives a slow start.
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

/// A JSON body, for messages.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}
