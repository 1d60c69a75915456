//! Holds (POST /holds, capture, void, GET /holds/{id}, an account's holds),
//! overdraft lines (PUT /accounts/{id}/overdraft) and reversals
//! (POST /transfers/{id}/reversals): every success and every refusal, each
//! response checked against the served document.

use std::time::Duration;

use chrono::Utc;
use ledger_domain::Scope;
use ledger_testkit::service::{rfc3339, spawn_app, spawn_app_with_accounts, timestamp, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const USD_SYSTEM: &str = "00000000-0000-0000-0000-000000000840";
const MISSING: &str = "01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b";

async fn hold(app: &TestApp, source: &str, destination: &str, amount: &str) -> Value {
    let response = app
        .post(
            "/holds",
            &json!({ "source": source, "destination": destination, "amount": amount }),
        )
        .await;
    response.expect_status(201);
    response.body.clone()
}

async fn balance(app: &TestApp, account: &str) -> Value {
    let response = app.get(&format!("/accounts/{account}/balance")).await;
    response.expect_status(200);
    response.body.clone()
}

/// (balance, held, available) now.
async fn figures(app: &TestApp, account: &str) -> (String, String, String) {
    let body = balance(app, account).await;
    let text = |field: &str| body[field].as_str().expect(field).to_owned();
    (text("balance"), text("held"), text("available"))
}

fn owned(figures: (&str, &str, &str)) -> (String, String, String) {
    (
        figures.0.to_owned(),
        figures.1.to_owned(),
        figures.2.to_owned(),
    )
}

#[tokio::test]
async fn a_hold_reserves_the_available_balance_and_a_partial_capture_releases_the_rest() {
    let (app, [payer, merchant]) = spawn_app_with_accounts(["100.00", "0"]).await;

    let response = app
        .post(
            "/holds",
            &json!({
                "source": payer, "destination": merchant, "amount": "60",
                "timeout_seconds": 600, "metadata": { "authorization": "A-1" },
            }),
        )
        .await;
    response.expect_status(201);
    let id = response.str("id").to_owned();
    assert_eq!(
        response.header("location"),
        Some(format!("/holds/{id}").as_str())
    );
    assert_eq!(response.body["status"], "pending");
    assert_eq!(response.body["amount"], "60.00");
    assert_eq!(response.body["currency"], "USD");
    assert_eq!(response.body["metadata"], json!({ "authorization": "A-1" }));
    let placed = timestamp(&response.body["created_at"]);
    let expires = timestamp(&response.body["expires_at"]);
    let life = (expires - placed).num_seconds();
    assert!(
        (598..=600).contains(&life),
        "expires {life} s after placing"
    );

    // The posted balance stays; only what can be spent drops.
    assert_eq!(
        figures(&app, &payer).await,
        owned(("100.00", "60.00", "40.00"))
    );
    app.transfer(&payer, &merchant, json!("40.01"))
        .await
        .expect_problem(422, "insufficient_funds");
    app.post(
        "/holds",
        &json!({ "source": payer, "destination": merchant, "amount": "40.01" }),
    )
    .await
    .expect_problem(422, "insufficient_funds");
    // A hold's row is not a transfer: not in the history, not readable as one.
    let history = app.get(&format!("/accounts/{payer}/transfers")).await;
    assert_eq!(history.body["items"].as_array().map(Vec::len), Some(1));
    let listed = app
        .get(&format!("/transfers?account={payer}&consistency=latest"))
        .await;
    listed.expect_status(200);
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(1),
        "only the opening deposit: {}",
        listed.body
    );
    app.get(&format!("/transfers/{id}"))
        .await
        .expect_problem(404, "transfer_not_found");

    app.post(
        &format!("/holds/{id}/capture"),
        &json!({ "amount": "60.01" }),
    )
    .await
    .expect_problem(422, "capture_exceeds_hold");
    let capture = app
        .post(&format!("/holds/{id}/capture"), &json!({ "amount": "25" }))
        .await;
    capture.expect_status(201);
    assert_eq!(capture.body["amount"], "25.00");
    assert_eq!(capture.body["hold_id"], id.as_str());
    assert_eq!(capture.body["source"], payer.as_str());
    assert_eq!(capture.body["destination"], merchant.as_str());
    assert_eq!(
        figures(&app, &payer).await,
        owned(("75.00", "0.00", "75.00"))
    );
    assert_eq!(app.balance(&merchant).await, "25.00");

    let read = app.get(&format!("/holds/{id}")).await;
    read.expect_status(200);
    assert_eq!(read.body["status"], "captured");
    assert_eq!(read.body["captured_amount"], "25.00");
    assert_eq!(read.body["capture_transfer_id"], capture.body["id"]);
    assert_eq!(read.body["resolved_at"], capture.body["created_at"]);

    // Exactly one outcome: nothing else can happen to it now.
    app.post(&format!("/holds/{id}/capture"), &json!({}))
        .await
        .expect_problem(409, "hold_not_pending");
    app.post(&format!("/holds/{id}/void"), &json!({}))
        .await
        .expect_problem(409, "hold_not_pending");
}

#[tokio::test]
async fn a_void_releases_everything_and_an_expired_hold_neither_counts_nor_captures() {
    let (app, [payer, merchant]) = spawn_app_with_accounts(["50.00", "0"]).await;
    let voided = hold(&app, &payer, &merchant, "30").await;
    let id = voided["id"].as_str().expect("id");
    let response = app.post(&format!("/holds/{id}/void"), &json!({})).await;
    response.expect_status(200);
    assert_eq!(response.body["status"], "voided");
    assert!(response.body["resolved_at"].is_string());
    assert_eq!(
        figures(&app, &payer).await,
        owned(("50.00", "0.00", "50.00"))
    );

    let short = app
        .post(
            "/holds",
            &json!({ "source": payer, "destination": merchant, "amount": "20",
                     "timeout_seconds": 1 }),
        )
        .await;
    short.expect_status(201);
    let short_id = short.str("id").to_owned();
    assert_eq!(figures(&app, &payer).await.1, "20.00");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    // By the database clock, whether or not the expiry is recorded yet.
    let read = app.get(&format!("/holds/{short_id}")).await;
    assert_eq!(read.body["status"], "expired");
    assert_eq!(
        figures(&app, &payer).await,
        owned(("50.00", "0.00", "50.00"))
    );
    app.post(&format!("/holds/{short_id}/capture"), &json!({}))
        .await
        .expect_problem(409, "hold_not_pending");
    app.post(&format!("/holds/{short_id}/void"), &json!({}))
        .await
        .expect_problem(409, "hold_not_pending");
    assert_eq!(app.balance(&merchant).await, "0.00");
}

#[tokio::test]
async fn hold_requests_that_break_a_rule_are_refused_and_reserve_nothing() {
    let app = spawn_app().await;
    let payer = app.funded_account("10").await;
    let merchant = app.funded_account("0").await;
    let euros = app.open_account(json!({ "currency": "EUR" })).await;
    let body = |extra: Value| {
        let mut body = json!({ "source": payer, "destination": merchant, "amount": "1" });
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        body
    };
    let past = rfc3339(Utc::now() - chrono::Duration::seconds(5));
    let far = rfc3339(Utc::now() + chrono::Duration::days(31));
    app.expect_posts_refused(
        "/holds",
        422,
        "validation_failed",
        [
            (body(json!({ "amount": "0" })), "zero"),
            (body(json!({ "amount": "0.001" })), "three decimals"),
            (body(json!({ "destination": payer })), "to itself"),
            (
                body(json!({ "destination": USD_SYSTEM })),
                "to a system account",
            ),
            (
                body(json!({ "source": USD_SYSTEM })),
                "out of a system account",
            ),
            (
                body(json!({ "expires_at": far.clone(), "timeout_seconds": 5 })),
                "both expiries",
            ),
            (body(json!({ "expires_at": past })), "an expiry in the past"),
            (
                body(json!({ "expires_at": far })),
                "beyond the 30-day maximum",
            ),
            (body(json!({ "timeout_seconds": 0 })), "a zero timeout"),
            (
                body(json!({ "timeout_seconds": 31 * 24 * 3600 })),
                "a timeout beyond the maximum",
            ),
            (body(json!({ "metadata": [1] })), "metadata not an object"),
        ],
    )
    .await;
    app.post(
        "/holds",
        &body(json!({ "destination": euros["id"].clone() })),
    )
    .await
    .expect_problem(422, "currency_mismatch");
    app.post("/holds", &body(json!({ "amount": "10.01" })))
        .await
        .expect_problem(422, "insufficient_funds");
    app.post("/holds", &body(json!({ "source": MISSING })))
        .await
        .expect_problem(404, "account_not_found");
    app.post("/holds", &body(json!({ "surprise": true })))
        .await
        .expect_problem(400, "invalid_request");
    assert_eq!(
        figures(&app, &payer).await,
        owned(("10.00", "0.00", "10.00"))
    );

    for path in [
        format!("/holds/{MISSING}/capture"),
        format!("/holds/{MISSING}/void"),
    ] {
        app.post(&path, &json!({}))
            .await
            .expect_problem(404, "hold_not_found");
    }
    app.get(&format!("/holds/{MISSING}"))
        .await
        .expect_problem(404, "hold_not_found");
    app.get("/holds/not-a-uuid")
        .await
        .expect_problem(400, "invalid_request");
    let placed = hold(&app, &payer, &merchant, "5").await;
    let id = placed["id"].as_str().expect("id");
    for (amount, why) in [
        ("0", "zero"),
        ("-1", "negative"),
        ("0.001", "three decimals"),
    ] {
        app.post(
            &format!("/holds/{id}/capture"),
            &json!({ "amount": amount }),
        )
        .await
        .expect_refusal(422, "validation_failed", why);
    }
}

#[tokio::test]
async fn an_accounts_holds_are_listed_newest_first_by_status_and_page() {
    let (app, [payer, merchant]) = spawn_app_with_accounts(["100", "0"]).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(hold(&app, &payer, &merchant, "1").await["id"].clone());
    }
    app.post(
        &format!("/holds/{}/void", ids[0].as_str().expect("id")),
        &json!({}),
    )
    .await
    .expect_status(200);

    let pages = app.pages(&format!("/accounts/{payer}/holds?limit=2")).await;
    assert_eq!(pages.len(), 3);
    let listed: Vec<Value> = pages
        .iter()
        .flat_map(|page| page["items"].as_array().expect("items").clone())
        .map(|hold| hold["id"].clone())
        .collect();
    let newest_first: Vec<Value> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);

    let pending = app
        .get(&format!("/accounts/{payer}/holds?status=pending"))
        .await;
    assert_eq!(pending.body["items"].as_array().map(Vec::len), Some(4));
    let voided = app
        .get(&format!("/accounts/{payer}/holds?status=voided"))
        .await;
    assert_eq!(voided.body["items"][0]["id"], ids[0]);
    app.get(&format!("/accounts/{payer}/holds?status=lost"))
        .await
        .expect_problem(400, "invalid_request");
    app.get(&format!("/accounts/{payer}/holds?cursor=forged"))
        .await
        .expect_problem(400, "invalid_request");
    app.get(&format!("/accounts/{MISSING}/holds"))
        .await
        .expect_problem(404, "account_not_found");
}

#[tokio::test]
async fn an_overdraft_line_lets_a_balance_go_below_zero_down_to_it_and_no_further() {
    let app = spawn_app().await;
    let account = app.open_account(json!({ "overdraft_limit": "50" })).await;
    assert_eq!(account["overdraft_limit"], "50.00");
    let id = account["id"].as_str().expect("id").to_owned();
    let other = app.funded_account("0").await;

    app.transfer(&id, &other, json!("50.01"))
        .await
        .expect_problem(422, "insufficient_funds");
    app.transfer(&id, &other, json!("30"))
        .await
        .expect_status(201);
    hold(&app, &id, &other, "15").await;
    assert_eq!(figures(&app, &id).await, owned(("-30.00", "15.00", "5.00")));

    // 30 owed + 15 held = 45 in use.
    let path = format!("/accounts/{id}/overdraft");
    app.put(&path, &json!({ "overdraft_limit": "44.99" }))
        .await
        .expect_problem(422, "overdraft_in_use");
    let lowered = app.put(&path, &json!({ "overdraft_limit": "45" })).await;
    lowered.expect_status(200);
    assert_eq!(lowered.body["overdraft_limit"], "45.00");
    assert_eq!(figures(&app, &id).await.2, "0.00");
    app.transfer(&id, &other, json!("0.01"))
        .await
        .expect_problem(422, "insufficient_funds");
    let raised = app.put(&path, &json!({ "overdraft_limit": "100" })).await;
    raised.expect_status(200);
    let read = app.get(&format!("/accounts/{id}")).await;
    assert_eq!(read.body["overdraft_limit"], "100.00");

    for (body, why) in [
        (json!({ "overdraft_limit": "-1" }), "negative"),
        (json!({ "overdraft_limit": "0.001" }), "three decimals"),
    ] {
        app.put(&path, &body)
            .await
            .expect_refusal(422, "validation_failed", why);
    }
    app.put(
        &format!("/accounts/{USD_SYSTEM}/overdraft"),
        &json!({ "overdraft_limit": "1" }),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.put(
        &format!("/accounts/{MISSING}/overdraft"),
        &json!({ "overdraft_limit": "1" }),
    )
    .await
    .expect_problem(404, "account_not_found");
    app.post("/accounts", &json!({ "overdraft_limit": "-5" }))
        .await
        .expect_problem(422, "validation_failed");

    // Extending credit is a treasury matter.
    let db = app.database();
    let writer = db.api_key(Scope::Write, None).await;
    app.send_as(
        Some(&writer),
        Method::PUT,
        &path,
        Some(&json!({ "overdraft_limit": "1000" })),
    )
    .await
    .expect_problem(403, "forbidden");
    app.send_as(
        Some(&writer),
        Method::POST,
        "/accounts",
        Some(&json!({ "overdraft_limit": "10" })),
    )
    .await
    .expect_problem(403, "forbidden");
}

#[tokio::test]
async fn reversals_move_money_back_up_to_the_original_and_never_touch_it() {
    let (app, [payer, payee]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let original = app.transfer(&payer, &payee, json!("40")).await;
    original.expect_status(201);
    let id = original.str("id").to_owned();
    let path = format!("/transfers/{id}/reversals");

    let first = app
        .post(
            &path,
            &json!({ "amount": "15", "metadata": { "reason": "refund" } }),
        )
        .await;
    first.expect_status(201);
    assert_eq!(first.body["reverses"], id.as_str());
    assert_eq!(first.body["source"], payee.as_str());
    assert_eq!(first.body["destination"], payer.as_str());
    assert_eq!(first.body["amount"], "15.00");
    app.post(&path, &json!({ "amount": "25.01" }))
        .await
        .expect_problem(422, "reversal_exceeds_transfer");
    let rest = app.post(&path, &json!({})).await;
    rest.expect_status(201);
    assert_eq!(rest.body["amount"], "25.00");
    app.post(&path, &json!({}))
        .await
        .expect_problem(422, "reversal_exceeds_transfer");

    let read = app.get(&format!("/transfers/{id}")).await;
    read.expect_status(200);
    assert_eq!(read.body["reversed_amount"], "40.00");
    let mut unchanged = read.body.clone();
    unchanged
        .as_object_mut()
        .expect("object")
        .remove("reversed_amount");
    assert_eq!(unchanged, original.body, "the original row never changes");
    assert_eq!(app.balance(&payer).await, "100.00");
    assert_eq!(app.balance(&payee).await, "0.00");

    // A reversal is not itself reversible; the payee must hold the money.
    let reversal_id = rest.str("id");
    app.post(&format!("/transfers/{reversal_id}/reversals"), &json!({}))
        .await
        .expect_problem(422, "validation_failed");
    let second = app.transfer(&payer, &payee, json!("10")).await;
    let spent = app.funded_account("0").await;
    app.transfer(&payee, &spent, json!("10"))
        .await
        .expect_status(201);
    app.post(
        &format!("/transfers/{}/reversals", second.str("id")),
        &json!({}),
    )
    .await
    .expect_problem(422, "insufficient_funds");
    app.post(&format!("/transfers/{MISSING}/reversals"), &json!({}))
        .await
        .expect_problem(404, "transfer_not_found");

    // A deposit reversed goes back to the system account.
    let deposit = app.deposit(&payer, json!("7")).await;
    let back = app
        .post(
            &format!("/transfers/{}/reversals", deposit.str("id")),
            &json!({}),
        )
        .await;
    back.expect_status(201);
    assert_eq!(back.body["destination"], USD_SYSTEM);
}

#[tokio::test]
async fn every_new_write_replays_under_its_idempotency_key_and_refuses_it_reused() {
    let (app, [payer, payee]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let original = app.transfer(&payer, &payee, json!("10")).await;
    let placed = hold(&app, &payer, &payee, "5").await;
    let to_void = hold(&app, &payer, &payee, "5").await;
    let hold_id = placed["id"].as_str().expect("id");
    let void_id = to_void["id"].as_str().expect("id");
    let cases: Vec<(Method, String, Value, Value)> = vec![
        (
            Method::POST,
            "/holds".to_owned(),
            json!({ "source": payer, "destination": payee, "amount": "3" }),
            json!({ "source": payer, "destination": payee, "amount": "4" }),
        ),
        (
            Method::POST,
            format!("/holds/{hold_id}/capture"),
            json!({ "amount": "2" }),
            json!({ "amount": "3" }),
        ),
        (
            Method::POST,
            format!("/holds/{void_id}/void"),
            json!({}),
            json!({}),
        ),
        (
            Method::POST,
            format!("/transfers/{}/reversals", original.str("id")),
            json!({ "amount": "1" }),
            json!({ "amount": "2" }),
        ),
        (
            Method::PUT,
            format!("/accounts/{payer}/overdraft"),
            json!({ "overdraft_limit": "5" }),
            json!({ "overdraft_limit": "6" }),
        ),
    ];
    for (index, (method, path, body, other_body)) in cases.into_iter().enumerate() {
        let key = format!("key-{index}");
        let send = |body: Value| {
            app.send(
                app.request(method.clone(), &path)
                    .header("Idempotency-Key", &key)
                    .json(&body),
            )
        };
        let first = send(body.clone()).await;
        assert!(first.status < 300, "{path}: {}", first.body);
        let again = send(body).await;
        assert_eq!(again.status, first.status, "{path}");
        assert_eq!(again.header("idempotent-replayed"), Some("true"), "{path}");
        assert_eq!(again.body["id"], first.body["id"], "{path}");
        if path.ends_with("/void") {
            continue; // a void's body has nothing to differ in
        }
        send(other_body)
            .await
            .expect_refusal(422, "idempotency_key_reused", &path);
    }
    // Applied once each: 100 - 10 - 2 (capture) + 1 (reversal) = 89, and
    // the 3 held by the replayed hold counted once.
    assert_eq!(
        figures(&app, &payer).await,
        owned(("89.00", "3.00", "91.00"))
    );
}

#[tokio::test]
async fn an_as_of_balance_counts_the_holds_pending_then_and_stays_final() {
    let (app, [payer, payee]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let placed = hold(&app, &payer, &payee, "60").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = rfc3339(Utc::now());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let id = placed["id"].as_str().expect("id");
    app.post(&format!("/holds/{id}/capture"), &json!({ "amount": "50" }))
        .await
        .expect_status(201);

    let path = format!("/accounts/{payer}/balance?at={between}");
    let mut then = balance(&app, &payer).await;
    for _ in 0..100 {
        then = app.get(&path).await.body.clone();
        if then["final"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(then["final"], true);
    assert_eq!(then["balance"], "100.00");
    assert_eq!(then["held"], "60.00");
    assert_eq!(then["available"], "40.00");
    assert_eq!(
        figures(&app, &payer).await,
        owned(("50.00", "0.00", "50.00"))
    );
    assert_eq!(
        app.get(&path).await.body,
        then,
        "a final answer never changes"
    );
}
