//! GET /accounts/{id}/balance (now and as of a time) and
//! GET /accounts/{id}/transfers (history).

use chrono::{DateTime, Utc};
use ledger_testkit::service::{
    assert_page_within_budget, item_ids, rfc3339, spawn_app, spawn_app_with_accounts, timestamp,
};
use serde_json::{json, Value};

#[tokio::test]
async fn the_current_balance_is_never_final() {
    let app = spawn_app().await;
    let account = app.funded_account("42.10").await;

    let response = app.get(&format!("/accounts/{account}/balance")).await;

    response.expect_status(200);
    assert_eq!(response.body["account_id"], account);
    assert_eq!(response.body["currency"], "USD");
    assert_eq!(response.body["balance"], "42.10");
    assert_eq!(response.body["final"], false);
}

#[tokio::test]
async fn the_balance_as_of_a_time_before_a_transfer_is_the_earlier_balance() {
    let app = spawn_app().await;
    let account = app.funded_account("100.00").await;
    let deposit = app.deposit(&account, json!("50.00")).await;
    deposit.expect_status(201);
    let deposited_at = timestamp(&deposit.body["created_at"]);

    let just_before = deposited_at - chrono::Duration::microseconds(1);
    let before = app.final_balance_at(&account, just_before).await;
    let at = app.final_balance_at(&account, deposited_at).await;

    assert_eq!(before["balance"], "100.00");
    assert_eq!(at["balance"], "150.00");
    assert_eq!(app.balance(&account).await, "150.00");
}

#[tokio::test]
async fn the_balance_before_the_account_existed_is_zero() {
    let app = spawn_app().await;
    let account = app.funded_account("5").await;
    let long_ago = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z")
        .expect("a timestamp")
        .with_timezone(&Utc);

    let balance = app.final_balance_at(&account, long_ago).await;

    assert_eq!(balance["balance"], "0.00");
    assert_eq!(balance["at"], "2000-01-01T00:00:00Z");
}

#[tokio::test]
async fn a_balance_time_that_is_not_rfc3339_is_a_bad_request() {
    let app = spawn_app().await;
    let account = app.funded_account("5").await;
    let cases = [
        ("yesterday", "not a timestamp"),
        ("2025-01-01", "a date without a time"),
        ("2025-13-01T00:00:00Z", "month 13"),
    ];
    let cases = cases.map(|(at, why)| (format!("/accounts/{account}/balance?at={at}"), why));
    app.expect_gets_refused(400, "invalid_request", cases).await;
}

#[tokio::test]
async fn the_balance_of_a_missing_account_is_not_found() {
    let app = spawn_app().await;
    app.get("/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b/balance")
        .await
        .expect_problem(404, "account_not_found");
}

#[tokio::test]
async fn history_lists_both_directions_newest_first_with_balances_after() {
    let (app, [alice, bob]) = spawn_app_with_accounts(["100", "0"]).await;
    app.transfer(&alice, &bob, json!("30"))
        .await
        .expect_status(201);
    app.transfer(&bob, &alice, json!("10"))
        .await
        .expect_status(201);

    let response = app.get(&format!("/accounts/{alice}/transfers")).await;

    response.expect_status(200);
    let items = response.body["items"].as_array().expect("items");
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|entry| {
            (
                entry["direction"].as_str().expect("direction"),
                entry["transfer"]["amount"].as_str().expect("amount"),
                entry["balance_after"].as_str().expect("balance_after"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("in", "10.00", "80.00"),
            ("out", "30.00", "70.00"),
            ("in", "100.00", "100.00")
        ]
    );
    assert_eq!(response.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn history_is_read_page_by_page_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    let mut deposited = Vec::new();
    for _ in 0..7 {
        let response = app.deposit(&account, json!("1")).await;
        response.expect_status(201);
        deposited.push(response.str("id").to_owned());
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/accounts/{account}/transfers?limit=3&cursor={cursor}"),
            None => format!("/accounts/{account}/transfers?limit=3"),
        };
        let page = app.get(&path).await;
        page.expect_status(200);
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|e| e["transfer"]["id"].as_str().expect("id").to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    deposited.reverse();
    assert_eq!(seen, deposited, "newest first, each once");
}

#[tokio::test]
async fn history_can_be_limited_to_a_time_window() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    let mut times = Vec::new();
    for amount in ["1", "2", "3"] {
        let response = app.deposit(&account, json!(amount)).await;
        times.push(timestamp(&response.body["created_at"]));
    }

    let path = format!(
        "/accounts/{account}/transfers?from={}&to={}",
        rfc3339(times[1]),
        rfc3339(times[2])
    );
    let response = app.get(&path).await;

    response.expect_status(200);
    let amounts: Vec<&str> = response.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["transfer"]["amount"].as_str().expect("amount"))
        .collect();
    assert_eq!(amounts, ["3.00", "2.00"]);
}

#[tokio::test]
async fn bad_history_parameters_are_bad_requests() {
    let app = spawn_app().await;
    let account = app.funded_account("1").await;
    let cases = [
        ("limit=0", "a page holds at least one entry"),
        ("limit=5000", "a page holds at most 1000 entries"),
        ("cursor=nonsense", "a cursor the server did not issue"),
        ("cursor=123_not-a-uuid", "a cursor with a bad id"),
        ("from=last-week", "not a timestamp"),
        ("to=2025-01-01", "a date without a time"),
        ("order=asc", "an unknown parameter"),
    ];
    let cases = cases.map(|(query, why)| (format!("/accounts/{account}/transfers?{query}"), why));
    app.expect_gets_refused(400, "invalid_request", cases).await;
}

#[tokio::test]
async fn the_history_of_a_missing_account_is_not_found() {
    let app = spawn_app().await;
    app.get("/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b/transfers")
        .await
        .expect_problem(404, "account_not_found");
}

#[tokio::test]
async fn history_cursors_are_tamper_evident() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    for _ in 0..3 {
        app.deposit(&account, json!("1")).await.expect_status(201);
    }
    let first = app
        .get(&format!("/accounts/{account}/transfers?limit=1"))
        .await;
    first.expect_status(200);
    let issued = first.str("next_cursor").to_owned();
    let mut flipped = issued.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ASCII");
    let cases = [
        (
            "-250000000000000000_00000000-0000-0000-0000-000000000000".to_owned(),
            "a forged cursor before PostgreSQL's first day (gave 500)",
        ),
        (
            format!("{}_{}", Utc::now().timestamp_micros(), uuid::Uuid::nil()),
            "a well-formed cursor the server did not issue",
        ),
        (flipped, "an issued cursor with one character changed"),
        (
            issued.replacen('1', "2", 1),
            "an issued cursor pointing somewhere else",
        ),
    ];
    for (cursor, why) in cases {
        let response = app
            .get(&format!("/accounts/{account}/transfers?cursor={cursor}"))
            .await;
        assert_eq!(
            (response.status, response.code()),
            (400, "invalid_request"),
            "{why}: {cursor}: {}",
            response.body
        );
    }
    // The issued cursor itself still works.
    app.get(&format!("/accounts/{account}/transfers?cursor={issued}"))
        .await
        .expect_status(200);
}

#[tokio::test]
async fn a_history_page_stops_near_one_mebibyte_and_the_rest_follows() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;
    let note = "x".repeat(16_000);
    let mut deposited = Vec::new();
    for _ in 0..80 {
        let response = app
            .post(
                &format!("/accounts/{account}/deposits"),
                &json!({ "amount": "1", "metadata": { "note": note } }),
            )
            .await;
        response.expect_status(201);
        deposited.push(response.str("id").to_owned());
    }

    let pages = app
        .pages(&format!("/accounts/{account}/transfers?limit=1000"))
        .await;
    pages.iter().for_each(assert_page_within_budget);
    let seen = item_ids(&pages, "/transfer/id");
    let pages = pages.len();

    deposited.reverse();
    assert_eq!(seen, deposited, "newest first, each once");
    assert_eq!(pages, 2, "80 transfers of 16 kB are two pages");
}
