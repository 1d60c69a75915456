//! The Idempotency-Key header on writes.

use ledger_testkit::service::{spawn_app, spawn_app_with_accounts};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_replayed_transfer_returns_the_original_response_and_applies_once() {
    let (app, [source, destination]) = spawn_app_with_accounts(["100", "0"]).await;
    let body = json!({ "source": source, "destination": destination, "amount": "25" });
    let send = || app.post_with_key("/transfers", "transfer-7f3a", &body);

    let first = send().await;
    let replay = send().await;

    first.expect_status(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    replay.expect_replay_of(&first);
    assert_eq!(replay.header("location"), first.header("location"));
    assert_eq!(app.balance(&source).await, "75.00", "applied once");
    assert_eq!(app.balance(&destination).await, "25.00");
}

#[tokio::test]
async fn an_equal_amount_written_differently_is_the_same_request() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    let path = format!("/accounts/{account}/deposits");

    let first = app
        .post_with_key(&path, "deposit-1", &json!({ "amount": "10.00" }))
        .await;
    let replay = app
        .post_with_key(&path, "deposit-1", &json!({ "amount": 10 }))
        .await;

    first.expect_status(201);
    replay.expect_replay_of(&first);
    assert_eq!(app.balance(&account).await, "10.00");
}

#[tokio::test]
async fn a_replayed_account_opening_returns_the_same_account() {
    let app = spawn_app().await;
    let body = json!({ "initial_balance": "5", "metadata": { "owner": "alice" } });
    let open = || app.post_with_key("/accounts", "open-alice", &body);

    let first = open().await;
    let replay = open().await;

    first.expect_status(201);
    replay.expect_replay_of(&first);
    assert_eq!(replay.header("location"), first.header("location"));
    let list = app.get("/accounts").await;
    let customers = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|account| account["kind"] == "customer")
        .count();
    assert_eq!(customers, 1, "opened once");
}

#[tokio::test]
async fn a_replayed_account_opening_returns_the_original_body_after_the_account_changed() {
    let app = spawn_app().await;
    let body = json!({ "initial_balance": "5" });
    let open = || app.post_with_key("/accounts", "open-bob", &body);
    let first = open().await;
    first.expect_status(201);
    let account = first.body["id"].as_str().expect("id").to_owned();
    app.post(
        &format!("/accounts/{account}/withdrawals"),
        &json!({ "amount": "5" }),
    )
    .await
    .expect_status(201);
    app.send(app.request(Method::DELETE, &format!("/accounts/{account}")))
        .await
        .expect_status(200);

    let replay = open().await;

    // The original response, not the account now.
    replay.expect_replay_of(&first);
}

#[tokio::test]
async fn a_replayed_close_returns_the_closed_account() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    let close = || {
        app.send(
            app.request(Method::DELETE, &format!("/accounts/{account}"))
                .header("Idempotency-Key", "close-1"),
        )
    };

    let first = close().await;
    let replay = close().await;

    first.expect_status(200);
    replay.expect_replay_of(&first);
}

#[tokio::test]
async fn a_key_reused_with_a_different_request_is_refused() {
    let (app, [source, destination]) = spawn_app_with_accounts(["100", "0"]).await;
    let transfer =
        |amount: &str| json!({ "source": source, "destination": destination, "amount": amount });

    app.post_with_key("/transfers", "key-1", &transfer("10"))
        .await
        .expect_status(201);
    let reused = app
        .post_with_key("/transfers", "key-1", &transfer("11"))
        .await;
    let deposits = format!("/accounts/{destination}/deposits");
    let other_operation = app
        .post_with_key(&deposits, "key-1", &json!({ "amount": "10" }))
        .await;

    reused.expect_problem(422, "idempotency_key_reused");
    other_operation.expect_problem(422, "idempotency_key_reused");
    assert_eq!(app.balance(&source).await, "90.00");
}

#[tokio::test]
async fn a_failed_request_is_not_remembered_so_its_retry_runs_again() {
    let (app, [source, destination]) = spawn_app_with_accounts(["5", "0"]).await;
    let body = json!({ "source": source, "destination": destination, "amount": "8" });
    let transfer = || app.post_with_key("/transfers", "retry-me", &body);

    transfer().await.expect_problem(422, "insufficient_funds");
    app.deposit(&source, json!("3")).await.expect_status(201);
    let retry = transfer().await;

    retry.expect_status(201);
    assert_eq!(retry.header("idempotent-replayed"), None);
    assert_eq!(app.balance(&destination).await, "8.00");
}

#[tokio::test]
async fn a_key_still_in_flight_is_a_conflict() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    // Another request holds the key: its transaction has claimed it and
    // has not committed yet.
    let mut holder = app.database().connect().await.expect("a connection");
    let tx = holder.transaction().await.expect("a transaction");
    // Keys are stored within the namespace of the API key that sent them.
    let api_key = app.admin_key.as_deref().expect("an admin key");
    tx.execute(
        "insert into ledger.idempotency_keys (idempotency_key, request_fingerprint, operation) \
         select k.key_id::text || ':busy-key', $1, 'deposit' \
           from ledger.api_keys k where k.prefix = left($2, 12)",
        &[&vec![0_u8; 32], &api_key],
    )
    .await
    .expect("claim the key");

    let deposits = format!("/accounts/{account}/deposits");
    let response = app
        .post_with_key(&deposits, "busy-key", &json!({ "amount": "1" }))
        .await;

    response.expect_problem(409, "idempotency_in_flight");
    tx.rollback().await.expect("release the key");
    assert_eq!(app.balance(&account).await, "0.00");
}

#[tokio::test]
async fn malformed_idempotency_keys_are_bad_requests() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    let long = "k".repeat(256);
    let cases = [
        ("", "an empty key"),
        ("two words", "a space is not visible ASCII"),
        (long.as_str(), "longer than 255 characters"),
    ];
    let deposits = format!("/accounts/{account}/deposits");
    for (key, why) in cases {
        let response = app
            .post_with_key(&deposits, key, &json!({ "amount": "1" }))
            .await;
        response.expect_refusal(400, "invalid_request", why);
    }
    assert_eq!(app.balance(&account).await, "0.00");
}
