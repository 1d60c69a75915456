//! GET /health and GET /ready, and what happens without a database.

use ledger_testkit::service::{spawn_app, spawn_app_without_database};
use serde_json::json;

/// Panics unless `GET path`, with a database, answers 200 `{"status": status}`.
async fn assert_status_document(path: &str, status: &str) {
    let app = spawn_app().await;
    let response = app.get(path).await;
    response.expect_status(200);
    assert_eq!(response.body, json!({ "status": status }));
}

#[tokio::test]
async fn health_answers_ok() {
    assert_status_document("/health", "ok").await;
}

#[tokio::test]
async fn health_answers_ok_even_without_a_database() {
    let app = spawn_app_without_database().await;
    app.get("/health").await.expect_status(200);
}

#[tokio::test]
async fn ready_answers_ready_when_the_database_is_migrated() {
    assert_status_document("/ready", "ready").await;
}

#[tokio::test]
async fn ready_is_unavailable_without_a_database() {
    let app = spawn_app_without_database().await;
    let response = app.get("/ready").await;
    response.expect_problem(503, "unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn requests_needing_the_database_are_unavailable_with_retry_after() {
    let app = spawn_app_without_database().await;
    let cases = [
        app.get("/accounts").await,
        app.post("/accounts", &json!({})).await,
        app.get("/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b")
            .await,
    ];
    for response in cases {
        response.expect_problem(503, "unavailable");
        assert_eq!(response.header("retry-after"), Some("1"));
    }
}
