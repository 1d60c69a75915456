//! POST /accounts, GET /accounts, GET /accounts/{id}, DELETE /accounts/{id}.

use ledger_domain::Currency;
use ledger_testkit::service::{
    assert_page_within_budget, item_ids, spawn_app, spawn_app_with, spawn_app_with_accounts,
};
use reqwest::Method;
use serde_json::{json, Value};

const USD_SYSTEM: &str = "00000000-0000-0000-0000-000000000840";

#[tokio::test]
async fn an_empty_body_opens_a_default_currency_account_with_a_zero_balance() {
    let app = spawn_app().await;

    let response = app.post("/accounts", &json!({})).await;

    response.expect_status(201);
    let id = response.str("id");
    assert_eq!(
        response.header("location"),
        Some(format!("/accounts/{id}").as_str())
    );
    assert_eq!(response.body["currency"], "USD");
    assert_eq!(response.body["balance"], "0.00");
    assert_eq!(response.body["kind"], "customer");
    assert_eq!(response.body["closed_at"], Value::Null);
    assert_eq!(response.body["metadata"], Value::Null);
}

#[tokio::test]
async fn the_default_currency_comes_from_the_configuration() {
    let app = spawn_app_with(|api| {
        api.default_currency = Currency::parse("EUR").expect("EUR");
    })
    .await;
    let account = app.open_account(json!({})).await;
    assert_eq!(account["currency"], "EUR");
}

#[tokio::test]
async fn an_account_opens_with_the_chosen_id_currency_balance_and_metadata() {
    let app = spawn_app().await;
    let id = "01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b";

    let account = app
        .open_account(json!({
            "id": id,
            "currency": "KWD",
            "initial_balance": "12.5",
            "metadata": { "owner": "alice", "tags": [1, 2] },
        }))
        .await;

    assert_eq!(account["id"], id);
    assert_eq!(account["currency"], "KWD");
    assert_eq!(account["balance"], "12.500", "KWD has three decimals");
    assert_eq!(
        account["metadata"],
        json!({ "owner": "alice", "tags": [1, 2] })
    );
    let read = app.get(&format!("/accounts/{id}")).await;
    read.expect_status(200);
    assert_eq!(read.body, account);
}

#[tokio::test]
async fn opening_an_existing_id_is_a_conflict() {
    let app = spawn_app().await;
    let id = app.funded_account("1").await;

    let response = app.post("/accounts", &json!({ "id": id })).await;

    response.expect_problem(409, "account_exists");
    assert!(response.str("detail").contains(&id));
}

#[tokio::test]
async fn account_openings_that_break_a_rule_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "currency": "XYZ" }), "unknown currency"),
        (json!({ "currency": "usd" }), "ISO codes are upper case"),
        (
            json!({ "initial_balance": "-1.00" }),
            "negative initial balance",
        ),
        (json!({ "initial_balance": "0.001" }), "a tenth of a cent"),
        (json!({ "initial_balance": "abc" }), "not a decimal"),
        (json!({ "initial_balance": "" }), "an empty string"),
        (json!({ "initial_balance": "1e3" }), "exponent notation"),
        (json!({ "initial_balance": "NaN" }), "not a number"),
        (
            json!({ "initial_balance": "1000000000000.01" }),
            "above the configured maximum",
        ),
        (
            json!({ "id": USD_SYSTEM }),
            "an id reserved for system accounts",
        ),
        (
            json!({ "id": "00000000-0000-0000-0000-000000000fff" }),
            "the top of the reserved range",
        ),
        (json!({ "metadata": [1, 2] }), "metadata must be an object"),
        (json!({ "metadata": "text" }), "metadata must be an object"),
        (
            json!({ "metadata": { "blob": "x".repeat(17 * 1024) } }),
            "metadata over 16 KiB",
        ),
        (
            serde_json::from_str(r#"{ "metadata": { "x": 1e999999 } }"#).expect("JSON"),
            "a number PostgreSQL cannot store",
        ),
        (
            serde_json::from_str(r#"{ "metadata": { "x": 1e20000 } }"#).expect("JSON"),
            "a number of 20000 digits once written out",
        ),
    ];
    app.expect_posts_refused("/accounts", 422, "validation_failed", cases)
        .await;
}

#[tokio::test]
async fn malformed_account_openings_are_bad_requests() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "id": "not-a-uuid" }), "the id must be a UUID"),
        (json!({ "currency": 840 }), "the currency is a string"),
        (
            json!({ "initial_balance": true }),
            "an amount is a string or a number",
        ),
        (
            json!({ "initial_balance": {} }),
            "an amount is a string or a number",
        ),
        (
            json!({ "initial_balance": [] }),
            "an amount is a string or a number",
        ),
        (json!({ "owner": "alice" }), "unknown field"),
        (json!([]), "the body is an object"),
    ];
    app.expect_posts_refused("/accounts", 400, "invalid_request", cases)
        .await;
}

#[tokio::test]
async fn an_unknown_field_is_named_in_the_detail() {
    let app = spawn_app().await;
    let response = app.post("/accounts", &json!({ "currencyy": "USD" })).await;
    response.expect_problem(400, "invalid_request");
    assert!(
        response.str("detail").contains("currencyy"),
        "{}",
        response.body
    );
}

#[tokio::test]
async fn a_missing_account_is_not_found_and_named() {
    let app = spawn_app().await;
    let id = "01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b";
    let response = app.get(&format!("/accounts/{id}")).await;
    response.expect_problem(404, "account_not_found");
    assert!(response.str("detail").contains(id));
}

#[tokio::test]
async fn a_path_id_that_is_not_a_uuid_is_a_bad_request() {
    let app = spawn_app().await;
    for path in [
        "/accounts/42",
        "/accounts/not-a-uuid/balance",
        "/accounts/xyz/transfers",
        "/transfers/123",
    ] {
        app.get(path).await.expect_problem(400, "invalid_request");
    }
    app.delete("/accounts/42")
        .await
        .expect_problem(400, "invalid_request");
    app.post("/accounts/42/deposits", &json!({ "amount": "1" }))
        .await
        .expect_problem(400, "invalid_request");
}

#[tokio::test]
async fn the_system_account_can_be_read_and_shows_minus_the_customer_money() {
    let app = spawn_app().await;
    app.funded_account("100.00").await;
    app.funded_account("25.50").await;

    let response = app.get(&format!("/accounts/{USD_SYSTEM}")).await;

    response.expect_status(200);
    assert_eq!(response.body["kind"], "system");
    assert_eq!(response.body["balance"], "-125.50");
}

#[tokio::test]
async fn accounts_are_listed_page_by_page_in_creation_order() {
    let app = spawn_app().await;
    let opened = app.funded_accounts(["0"; 5]).await;

    let pages = app.pages("/accounts?limit=2").await;
    for page in &pages {
        assert!(page["items"].as_array().expect("items").len() <= 2);
    }
    let seen = item_ids(&pages, "/id");
    let pages = pages.len();

    assert_eq!(seen, opened);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn listing_without_a_limit_returns_a_page_of_at_most_fifty() {
    let app = spawn_app().await;
    app.open_account(json!({})).await;
    let page = app.get("/accounts").await;
    page.expect_status(200);
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn bad_list_parameters_are_bad_requests() {
    let app = spawn_app().await;
    let cases = [
        ("/accounts?limit=0", "a page holds at least one account"),
        ("/accounts?limit=1001", "a page holds at most 1000 accounts"),
        ("/accounts?limit=-1", "a limit is not negative"),
        ("/accounts?limit=ten", "a limit is a number"),
        (
            "/accounts?cursor=garbage",
            "a cursor the server did not issue",
        ),
        ("/accounts?page=2", "an unknown parameter"),
    ];
    app.expect_gets_refused(
        400,
        "invalid_request",
        cases.map(|(path, why)| (path.to_owned(), why)),
    )
    .await;
}

#[tokio::test]
async fn an_account_with_a_zero_balance_closes() {
    let app = spawn_app().await;
    let id = app.funded_account("0").await;

    let response = app.delete(&format!("/accounts/{id}")).await;

    response.expect_status(200);
    assert!(response.body["closed_at"].is_string());
    let read = app.get(&format!("/accounts/{id}")).await;
    assert_eq!(read.body["closed_at"], response.body["closed_at"]);
}

#[tokio::test]
async fn an_account_with_money_does_not_close() {
    let app = spawn_app().await;
    let id = app.funded_account("0.01").await;

    let response = app.delete(&format!("/accounts/{id}")).await;

    response.expect_problem(409, "account_not_empty");
    let read = app.get(&format!("/accounts/{id}")).await;
    assert_eq!(read.body["closed_at"], Value::Null);
}

#[tokio::test]
async fn a_closed_account_accepts_no_transfers() {
    let (app, [source, closed]) = spawn_app_with_accounts(["10", "0"]).await;
    app.delete(&format!("/accounts/{closed}"))
        .await
        .expect_status(200);

    let to_closed = app.transfer(&source, &closed, json!("1")).await;
    let deposit = app.deposit(&closed, json!("1")).await;
    let again = app.delete(&format!("/accounts/{closed}")).await;

    to_closed.expect_problem(409, "account_closed");
    assert!(to_closed.str("detail").contains(&closed));
    deposit.expect_problem(409, "account_closed");
    again.expect_problem(409, "account_closed");
    assert_eq!(app.balance(&source).await, "10.00");
}

#[tokio::test]
async fn the_system_account_never_closes() {
    let app = spawn_app().await;
    app.funded_account("1").await;
    let response = app.delete(&format!("/accounts/{USD_SYSTEM}")).await;
    response.expect_problem(422, "validation_failed");
}

#[tokio::test]
async fn closing_a_missing_account_is_not_found() {
    let app = spawn_app().await;
    let response = app
        .send(app.request(
            Method::DELETE,
            "/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b",
        ))
        .await;
    response.expect_problem(404, "account_not_found");
}

#[tokio::test]
async fn a_page_of_accounts_stops_near_one_mebibyte_and_the_rest_follows() {
    let app = spawn_app().await;
    let note = "x".repeat(16_000);
    let mut opened = Vec::new();
    for _ in 0..80 {
        let account = app
            .open_account(json!({ "metadata": { "note": note } }))
            .await;
        opened.push(account["id"].as_str().expect("id").to_owned());
    }

    let pages = app.pages("/accounts?limit=1000").await;
    pages.iter().for_each(assert_page_within_budget);
    let seen = item_ids(&pages, "/id");
    let pages = pages.len();

    assert_eq!(seen, opened, "every account once, in order");
    assert_eq!(pages, 2, "80 accounts of 16 kB are two pages");
}

#[tokio::test]
async fn account_list_cursors_are_tamper_evident() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.open_account(json!({})).await;
    }
    let first = app.get("/accounts?limit=1").await;
    let issued = first.str("next_cursor").to_owned();
    let (id, _) = issued.rsplit_once('.').expect("a signed cursor");
    let cases = [
        (id.to_owned(), "the bare account id, unsigned"),
        (uuid::Uuid::nil().to_string(), "a forged account id"),
        (
            format!("{}.{}", uuid::Uuid::nil(), "0".repeat(32)),
            "a forged MAC",
        ),
    ];
    let cases = cases.map(|(cursor, why)| (format!("/accounts?cursor={cursor}"), why));
    app.expect_gets_refused(400, "invalid_request", cases).await;
    app.get(&format!("/accounts?cursor={issued}"))
        .await
        .expect_status(200);
}
