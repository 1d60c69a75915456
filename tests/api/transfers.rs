//! POST /transfers, GET /transfers/{id}, deposits and withdrawals.

use ledger_domain::Decimal;
use ledger_testkit::service::{spawn_app, spawn_app_with, spawn_app_with_accounts};
use serde_json::{json, Value};

const USD_SYSTEM: &str = "00000000-0000-0000-0000-000000000840";
const MISSING: &str = "01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b";

#[tokio::test]
async fn a_transfer_moves_money_and_reports_both_balances_after_it() {
    let (app, [source, destination]) = spawn_app_with_accounts(["100.00", "5"]).await;

    let response = app
        .post(
            "/transfers",
            &json!({
                "source": source,
                "destination": destination,
                "amount": "30.25",
                "metadata": { "invoice": "A-17" },
            }),
        )
        .await;

    response.expect_status(201);
    let id = response.str("id");
    assert_eq!(
        response.header("location"),
        Some(format!("/transfers/{id}").as_str())
    );
    assert_eq!(response.header("idempotent-replayed"), None);
    assert_eq!(response.body["source"], source);
    assert_eq!(response.body["destination"], destination);
    assert_eq!(response.body["amount"], "30.25");
    assert_eq!(response.body["currency"], "USD");
    assert_eq!(response.body["source_seq"], 0);
    assert_eq!(response.body["source_balance_after"], "69.75");
    assert!(response.body.get("destination_balance_after").is_none());
    assert_eq!(response.body["metadata"], json!({ "invoice": "A-17" }));
    assert_eq!(app.balance(&source).await, "69.75");
    assert_eq!(app.balance(&destination).await, "35.25");

    let read = app.get(&format!("/transfers/{id}")).await;
    read.expect_status(200);
    // The read adds what reversals moved back, derived when read.
    assert_eq!(read.body["reversed_amount"], "0.00");
    let mut original = read.body.clone();
    original
        .as_object_mut()
        .expect("an object")
        .remove("reversed_amount");
    assert_eq!(original, response.body);
}

#[tokio::test]
async fn a_missing_transfer_is_not_found() {
    let app = spawn_app().await;
    app.get(&format!("/transfers/{MISSING}"))
        .await
        .expect_problem(404, "transfer_not_found");
}

#[tokio::test]
async fn transfer_is_rejected_when_funds_are_insufficient() {
    let (app, [source, destination]) = spawn_app_with_accounts(["10.00", "0"]).await;

    let response = app.transfer(&source, &destination, json!("10.01")).await;

    response.expect_problem(422, "insufficient_funds");
    assert!(response.str("detail").contains(&source));
    assert_eq!(app.balance(&source).await, "10.00");
    assert_eq!(app.balance(&destination).await, "0.00");
}

#[tokio::test]
async fn a_transfer_between_currencies_is_a_mismatch() {
    let app = spawn_app().await;
    let dollars = app.funded_account("10").await;
    let euros = app.open_account(json!({ "currency": "EUR" })).await;

    let response = app
        .transfer(&dollars, euros["id"].as_str().expect("id"), json!("1"))
        .await;

    response.expect_problem(422, "currency_mismatch");
}

#[tokio::test]
async fn a_missing_account_in_the_body_is_named() {
    let app = spawn_app().await;
    let existing = app.funded_account("10").await;

    let to_missing = app.transfer(&existing, MISSING, json!("1")).await;
    let from_missing = app.transfer(MISSING, &existing, json!("1")).await;
    let deposit = app.deposit(MISSING, json!("1")).await;

    for response in [to_missing, from_missing, deposit] {
        response.expect_problem(404, "account_not_found");
        assert!(
            response.str("detail").contains(MISSING),
            "{}",
            response.body
        );
    }
}

#[tokio::test]
async fn transfers_that_break_a_rule_are_refused_with_the_reason() {
    let (app, [source, destination]) = spawn_app_with_accounts(["100", "0"]).await;
    // Between the two accounts; only the amount is wrong.
    let amount =
        |amount: Value| json!({ "source": source, "destination": destination, "amount": amount });
    let cases = [
        (amount(json!("0")), "zero moves nothing"),
        (amount(json!("-1")), "negative"),
        (amount(json!(0)), "zero as a number"),
        (amount(json!("0.001")), "a tenth of a cent"),
        (amount(json!(0.001)), "a tenth of a cent as a number"),
        (amount(json!("")), "empty string"),
        (amount(json!(" 1")), "whitespace"),
        (amount(json!("1,00")), "a comma"),
        (amount(json!("Infinity")), "infinity"),
        (amount(json!("2e2")), "exponent notation"),
        (
            amount(json!("1000000000000.01")),
            "above the configured maximum of 10^12",
        ),
        (
            json!({ "source": source, "destination": source, "amount": "1" }),
            "source = destination",
        ),
        (
            json!({ "source": USD_SYSTEM, "destination": destination, "amount": "1" }),
            "the system account as source",
        ),
        (
            json!({ "source": source, "destination": USD_SYSTEM, "amount": "1" }),
            "the system account as destination (a withdrawal under another name)",
        ),
        (
            json!({ "source": source, "destination": destination, "amount": "1", "metadata": 5 }),
            "metadata must be an object",
        ),
    ];
    app.expect_posts_refused("/transfers", 422, "validation_failed", cases)
        .await;
    assert_eq!(app.balance(&source).await, "100.00", "nothing moved");
}

#[tokio::test]
async fn malformed_transfers_are_bad_requests() {
    let (app, [a, b]) = spawn_app_with_accounts(["10", "0"]).await;
    let cases = [
        (
            json!({ "source": a, "destination": b }),
            "the amount is required",
        ),
        (
            json!({ "destination": b, "amount": "1" }),
            "the source is required",
        ),
        (
            json!({ "source": "x", "destination": b, "amount": "1" }),
            "the source must be a UUID",
        ),
        (
            json!({ "source": a, "destination": 7, "amount": "1" }),
            "the destination must be a UUID",
        ),
        (
            json!({ "source": a, "destination": b, "amount": true }),
            "a boolean is not an amount",
        ),
        (
            json!({ "source": a, "destination": b, "amount": null }),
            "null is not an amount",
        ),
        (
            json!({ "source": a, "destination": b, "amount": "1", "fee": "1" }),
            "an unknown field",
        ),
    ];
    app.expect_posts_refused("/transfers", 400, "invalid_request", cases)
        .await;
}

#[tokio::test]
async fn the_maximum_amount_comes_from_the_configuration() {
    let app = spawn_app_with(|api| api.max_amount = Decimal::from(50)).await;
    let [source, destination] = app.funded_accounts(["50", "0"]).await;

    let over = app.transfer(&source, &destination, json!("50.01")).await;
    let at = app.transfer(&source, &destination, json!("50")).await;

    over.expect_problem(422, "validation_failed");
    assert!(over.str("detail").contains("maximum"), "{}", over.body);
    at.expect_status(201);
}

#[tokio::test]
async fn amounts_are_accepted_as_json_numbers_and_strings_exactly() {
    let (app, [source, destination]) = spawn_app_with_accounts(["100", "0"]).await;

    app.transfer(&source, &destination, json!(10))
        .await
        .expect_status(201);
    app.transfer(&source, &destination, json!("10.00"))
        .await
        .expect_status(201);
    assert_eq!(app.balance(&destination).await, "20.00");

    let tenth: Value = serde_json::from_str("0.1").expect("a JSON number");
    for _ in 0..10 {
        let response = app.transfer(&source, &destination, tenth.clone()).await;
        response.expect_status(201);
        assert_eq!(response.body["amount"], "0.10");
    }
    assert_eq!(
        app.balance(&destination).await,
        "21.00",
        "ten tenths are exactly one"
    );
    assert_eq!(app.balance(&source).await, "79.00");
}

#[tokio::test]
async fn a_deposit_comes_from_the_system_account() {
    let app = spawn_app().await;
    let account = app.funded_account("0").await;

    let response = app.deposit(&account, json!("12.5")).await;

    response.expect_status(201);
    assert_eq!(response.body["source"], USD_SYSTEM);
    assert_eq!(response.body["destination"], account);
    assert_eq!(response.body["amount"], "12.50");
    assert_eq!(response.body["source_balance_after"], "-12.50");
    let location = response.header("location").expect("a Location").to_owned();
    app.get(&location).await.expect_status(200);
}

#[tokio::test]
async fn a_withdrawal_goes_to_the_system_account_and_cannot_overdraw() {
    let app = spawn_app().await;
    let account = app.funded_account("20").await;
    let path = format!("/accounts/{account}/withdrawals");

    let response = app.post(&path, &json!({ "amount": "7.5" })).await;
    let too_much = app.post(&path, &json!({ "amount": "12.51" })).await;

    response.expect_status(201);
    assert_eq!(response.body["source"], account);
    assert_eq!(response.body["destination"], USD_SYSTEM);
    assert_eq!(response.body["source_balance_after"], "12.50");
    too_much.expect_problem(422, "insufficient_funds");
    assert_eq!(app.balance(&account).await, "12.50");
}

#[tokio::test]
async fn deposits_and_withdrawals_refuse_bad_amounts() {
    let app = spawn_app().await;
    let account = app.funded_account("20").await;
    for kind in ["deposits", "withdrawals"] {
        let path = format!("/accounts/{account}/{kind}");
        let cases = [
            (json!({ "amount": "0" }), 422, "validation_failed", "zero"),
            (
                json!({ "amount": "1.234" }),
                422,
                "validation_failed",
                "three decimals in USD",
            ),
            (
                json!({ "amount": "x" }),
                422,
                "validation_failed",
                "not a number",
            ),
            (json!({}), 400, "invalid_request", "no amount"),
            (json!({ "amount": [] }), 400, "invalid_request", "an array"),
            (
                json!({ "amount": "1", "to": "x" }),
                400,
                "invalid_request",
                "unknown field",
            ),
        ];
        for (body, status, code, why) in cases {
            let response = app.post(&path, &body).await;
            assert_eq!(
                (response.status, response.code()),
                (status, code),
                "{kind}, {why}: {}",
                response.body
            );
        }
    }
    assert_eq!(app.balance(&account).await, "20.00");
}
