//! GET /transfers (finding transfers), the metadata filter of GET /accounts,
//! and GET /accounts/{id}/statement (CSV and JSON Lines, streamed).

use chrono::Duration;
use ledger_domain::{AccountId, Scope};
use ledger_testkit::service::{
    item_ids, rfc3339, spawn_app, spawn_app_with_accounts, timestamp, ApiResponse, TestApp,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const MISSING: &str = "01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b";

/// A transfer with metadata, which must succeed.
async fn tagged(
    app: &TestApp,
    source: &str,
    destination: &str,
    amount: &str,
    metadata: Value,
) -> ApiResponse {
    let body = json!({"source": source, "destination": destination, "amount": amount, "metadata": metadata});
    let response = app.post("/transfers", &body).await;
    response.expect_status(201);
    response
}

/// Waits until `response`'s transfer is behind the final horizon, so that
/// the default (final) listing and statements include it.
async fn settle(app: &TestApp, account: &str, response: &ApiResponse) {
    app.final_balance_at(account, timestamp(&response.body["created_at"]))
        .await;
}

fn ids(page: &ApiResponse) -> Vec<String> {
    item_ids(std::slice::from_ref(&page.body), "/id")
}

#[tokio::test]
async fn transfers_are_listed_newest_first_once_final_and_at_once_with_consistency_latest() {
    let (app, [alice, bob]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let first = app.transfer(&alice, &bob, json!("10.00")).await;
    let second = app.transfer(&bob, &alice, json!("3.00")).await;
    second.expect_status(201);

    let latest = app.get("/transfers?consistency=latest").await;
    latest.expect_status(200);
    assert_eq!(
        ids(&latest)[0],
        second.str("id"),
        "listed as soon as it commits"
    );

    settle(&app, &alice, &second).await;
    let listed = app.get("/transfers").await;
    listed.expect_status(200);
    let listed_ids = ids(&listed);
    assert_eq!(
        listed_ids.len(),
        3,
        "two transfers and alice's opening deposit"
    );
    assert_eq!(listed_ids[..2], [second.str("id"), first.str("id")]);
    assert_eq!(listed.body["items"][0]["amount"], "3.00");
    assert_eq!(listed.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn each_filter_lists_only_the_transfers_it_names() {
    let (app, [a, b, c]) = spawn_app_with_accounts(["100.00", "100.00", "0"]).await;
    let euro = app
        .open_account(json!({"currency": "EUR", "initial_balance": "5.00"}))
        .await;
    let a_to_b = tagged(&app, &a, &b, "1.00", json!({"order": "A-1", "shop": "x"})).await;
    let b_to_c = tagged(&app, &b, &c, "2.00", json!({"order": "A-1", "count": 1})).await;
    let c_to_a = tagged(&app, &c, &a, "0.50", json!({"order": "A 2&3"})).await;
    settle(&app, &a, &c_to_a).await;
    let euro_id = euro["id"].as_str().expect("an id");
    let euro_deposit = app.get(&format!("/accounts/{euro_id}/transfers")).await;
    let euro_deposit = euro_deposit.body["items"][0]["transfer"]["id"].clone();
    let (ab, bc, ca) = (a_to_b.str("id"), b_to_c.str("id"), c_to_a.str("id"));
    let at = |response: &ApiResponse| rfc3339(timestamp(&response.body["created_at"]));

    let cases = [
        (format!("account={c}"), vec![ca, bc], "either side of c"),
        ("metadata[order]=A-1".to_owned(), vec![bc, ab], "one key"),
        (
            "metadata[order]=A-1&metadata[shop]=x".to_owned(),
            vec![ab],
            "every key must match",
        ),
        (
            "metadata%5Border%5D=A%202%263".to_owned(),
            vec![ca],
            "percent-encoded key and value",
        ),
        (
            "metadata[count]=1".to_owned(),
            vec![],
            "a string never equals a number",
        ),
        (
            format!("account={a}&metadata[shop]=x"),
            vec![ab],
            "account and metadata",
        ),
        (
            format!("from={}&to={}", at(&b_to_c), at(&b_to_c)),
            vec![bc],
            "a window of one instant",
        ),
        (
            format!("account={MISSING}"),
            vec![],
            "an account that does not exist",
        ),
    ];
    for (query, expected, why) in cases {
        let page = app.get(&format!("/transfers?{query}")).await;
        page.expect_status(200);
        assert_eq!(ids(&page), expected, "{why}: {query}");
    }
    let euros = app.get("/transfers?currency=EUR").await;
    assert_eq!(
        ids(&euros),
        [euro_deposit.as_str().expect("an id")],
        "one currency"
    );
}

#[tokio::test]
async fn transfers_are_read_page_by_page_without_gaps_or_repeats() {
    let (app, [a, b]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let mut made = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let response = tagged(&app, &a, &b, "1.00", json!({"batch": "p"})).await;
        made.push(response.str("id").to_owned());
        last = Some(response);
    }
    settle(&app, &a, &last.expect("a transfer")).await;

    let pages = app.pages("/transfers?metadata[batch]=p&limit=2").await;

    assert_eq!(pages.len(), 3);
    made.reverse();
    assert_eq!(item_ids(&pages, "/id"), made);
}

#[tokio::test]
async fn bad_listings_are_refused_with_their_code() {
    let app = spawn_app().await;
    let accounts_cursor = {
        app.funded_account("1").await;
        app.funded_account("1").await;
        let page = app.get("/accounts?limit=1").await;
        page.str("next_cursor").to_owned()
    };
    let long = "k".repeat(257);
    let too_many: Vec<String> = (0..17).map(|i| format!("metadata[k{i}]=v")).collect();
    let bad_requests = [
        ("metadata=x".to_owned(), "a metadata filter without a key"),
        ("metadata[]=x".to_owned(), "an empty key"),
        ("metadata[a][b]=x".to_owned(), "a nested key"),
        ("metadata[a]=".to_owned(), "an empty value"),
        (
            "metadata[a]=%00".to_owned(),
            "a NUL, which jsonb cannot hold",
        ),
        (format!("metadata[{long}]=x"), "a key over 256 bytes"),
        (
            "metadata[a]=1&metadata[a]=2".to_owned(),
            "one key given twice",
        ),
        (too_many.join("&"), "17 metadata keys"),
        (
            "cursor=not-a-cursor".to_owned(),
            "a cursor the ledger did not sign",
        ),
        (
            format!("cursor={accounts_cursor}"),
            "a cursor of another list",
        ),
        ("consistency=eventual".to_owned(), "an unknown consistency"),
        ("account=not-a-uuid".to_owned(), "a bad account id"),
        ("from=yesterday".to_owned(), "a time that is not RFC 3339"),
        ("limit=0".to_owned(), "a page of nothing"),
        ("colour=red".to_owned(), "an unknown parameter"),
    ];
    let cases = bad_requests
        .iter()
        .map(|(q, why)| (format!("/transfers?{q}"), *why));
    app.expect_gets_refused(400, "invalid_request", cases).await;
    let cases = [("/transfers?currency=XYZ".to_owned(), "an unknown currency")];
    app.expect_gets_refused(422, "validation_failed", cases)
        .await;
    let cases = [
        (
            "/accounts?metadata[a][b]=x".to_owned(),
            "a nested key on accounts",
        ),
        ("/accounts?metadata[a]=%00".to_owned(), "a NUL on accounts"),
    ];
    app.expect_gets_refused(400, "invalid_request", cases).await;
}

#[tokio::test]
async fn a_restricted_key_lists_the_transfers_of_its_own_accounts_only() {
    let (app, [mine, theirs]) = spawn_app_with_accounts(["10.00", "10.00"]).await;
    let own = AccountId::from(Uuid::parse_str(&mine).expect("an id"));
    let key = app.database().api_key(Scope::Read, Some(vec![own])).await;
    let list = |path: String| {
        let key = key.clone();
        let app = &app;
        async move { app.send_as(Some(&key), Method::GET, &path, None).await }
    };

    list("/transfers".into())
        .await
        .expect_problem(403, "forbidden");
    list(format!("/transfers?account={theirs}"))
        .await
        .expect_problem(404, "account_not_found");
    list(format!("/transfers?account={mine}&consistency=latest"))
        .await
        .expect_status(200);
}

#[tokio::test]
async fn accounts_are_filtered_by_metadata() {
    let app = spawn_app().await;
    let gold = app
        .open_account(json!({"metadata": {"tier": "gold", "region": "eu"}}))
        .await;
    let gold_us = app
        .open_account(json!({"metadata": {"tier": "gold", "region": "us"}}))
        .await;
    app.open_account(json!({"metadata": {"tier": "silver"}}))
        .await;
    app.open_account(json!({})).await;

    let all_gold = app.get("/accounts?metadata[tier]=gold").await;
    let gold_eu = app
        .get("/accounts?metadata[tier]=gold&metadata[region]=eu")
        .await;

    all_gold.expect_status(200);
    assert_eq!(
        ids(&all_gold),
        [&gold["id"], &gold_us["id"]].map(|id| id.as_str().expect("an id"))
    );
    assert_eq!(ids(&gold_eu), [gold["id"].as_str().expect("an id")]);
    let pages = app.pages("/accounts?metadata[tier]=gold&limit=1").await;
    assert_eq!(item_ids(&pages, "/id").len(), 2, "paged with the filter");
}

/// A statement's body, fetched raw (it is not JSON), after checking that
/// the served document declares its status and media type.
async fn statement(app: &TestApp, account: &str, query: &str) -> (String, String) {
    let path = format!("/accounts/{account}/statement?{query}");
    let response = app.client.get(app.url(&path)).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("text")
        .to_owned();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let declared = &app.document()["paths"]["/accounts/{id}/statement"]["get"]["responses"]["200"]
        ["content"][media];
    assert!(declared.is_object(), "{media} is not declared for 200");
    (content_type, response.text().await.expect("a body"))
}

/// RFC 4180 quoting, for the expected lines.
fn quoted(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

#[tokio::test]
async fn a_csv_statement_runs_from_the_opening_balance_through_each_transfer_to_the_closing_one() {
    let (app, [a, b]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let memo = json!({"memo": "rent, \"march\"\nsecond line"});
    let t1 = tagged(&app, &a, &b, "30.00", memo.clone()).await;
    let t2 = app.transfer(&b, &a, json!("10.00")).await;
    let t3 = app.transfer(&a, &b, json!("5.00")).await;
    settle(&app, &a, &t3).await;
    let from = timestamp(&t1.body["created_at"]);
    let to = timestamp(&t3.body["created_at"]) + Duration::microseconds(1);

    let query = format!("from={}&to={}", rfc3339(from), rfc3339(to));
    let (content_type, body) = statement(&app, &a, &query).await;

    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let line = |t: &ApiResponse, direction: &str, other: &str, balance: &str, metadata: &str| {
        format!(
            "transfer,{},{},{direction},{other},{},{balance},{metadata}",
            t.str("created_at"),
            t.str("id"),
            t.str("amount")
        )
    };
    let at = |time| rfc3339(time).replace(".000000", "");
    let expected = [
        "record,created_at,transfer_id,direction,counterparty,amount,balance,metadata".to_owned(),
        format!("opening,{},,,,,100.00,", t1.str("created_at")),
        line(&t1, "out", &b, "70.00", &quoted(&memo.to_string())),
        line(&t2, "in", &b, "80.00", ""),
        line(&t3, "out", &b, "75.00", ""),
        format!("closing,{},,,,,75.00,", at(to)),
    ];
    assert_eq!(body, format!("{}\r\n", expected.join("\r\n")));
}

#[tokio::test]
async fn a_jsonl_statement_has_the_same_records_each_valid_against_the_document() {
    let (app, [a, b]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let t1 = tagged(&app, &a, &b, "30.00", json!({"order": "A-1"})).await;
    let t2 = app.transfer(&b, &a, json!("10.00")).await;
    settle(&app, &a, &t2).await;
    let to = timestamp(&t2.body["created_at"]) + Duration::microseconds(1);
    let long_ago = "2000-01-01T00:00:00Z";

    let query = format!("from={long_ago}&to={}&format=jsonl", rfc3339(to));
    let (content_type, body) = statement(&app, &a, &query).await;

    assert_eq!(content_type, "application/jsonl");
    let schema = json!({
        "components": app.document()["components"],
        "allOf": [{"$ref": "#/components/schemas/StatementRecord"}],
    });
    let validator = jsonschema::validator_for(&schema).expect("a schema");
    let records: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    for record in &records {
        assert!(
            validator.is_valid(record),
            "{record} does not match StatementRecord"
        );
    }
    let summary: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["record"].as_str().expect("record"),
                r["balance"].as_str().expect("balance"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("opening", "0.00"),
            ("transfer", "100.00"),
            ("transfer", "70.00"),
            ("transfer", "80.00"),
            ("closing", "80.00")
        ]
    );
    assert_eq!(records[2]["transfer_id"], t1.body["id"]);
    assert_eq!(records[2]["metadata"], json!({"order": "A-1"}));
    assert_eq!(records[3]["direction"], "in");
    assert_eq!(records[4]["transfers"], 3);
    assert_eq!(records[0]["at"], long_ago);
}

#[tokio::test]
async fn bad_statement_requests_are_refused_before_the_first_byte() {
    let (app, [a]) = spawn_app_with_accounts(["1.00"]).await;
    let path = |query: &str| format!("/accounts/{a}/statement?{query}");
    let (t0, t1) = ("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z");
    let cases = [
        (
            path(&format!("from={t0}&to={t1}&format=pdf")),
            "an unknown format",
        ),
        (path(&format!("from={t0}")), "no end of the window"),
        (path(&format!("to={t1}")), "no start of the window"),
        (
            path(&format!("from=yesterday&to={t1}")),
            "a start that is not RFC 3339",
        ),
        (
            path(&format!("from={t0}&to={t1}&limit=5")),
            "an unknown parameter",
        ),
        (
            format!("/accounts/not-a-uuid/statement?from={t0}&to={t1}"),
            "a bad account id",
        ),
    ];
    app.expect_gets_refused(400, "invalid_request", cases).await;
    let cases = [
        (
            path(&format!("from={t1}&to={t0}")),
            "a window that ends before it starts",
        ),
        (path(&format!("from={t0}&to={t0}")), "an empty window"),
        (
            path(&format!("from={t0}&to=9999-01-01T00:00:00Z")),
            "a window that is not final",
        ),
    ];
    app.expect_gets_refused(422, "validation_failed", cases)
        .await;
    app.get(&format!("/accounts/{MISSING}/statement?from={t0}&to={t1}"))
        .await
        .expect_problem(404, "account_not_found");
}

#[tokio::test]
async fn a_statement_that_does_not_add_up_ends_without_its_closing_record() {
    let (app, [a, b]) = spawn_app_with_accounts(["100.00", "0"]).await;
    let moved = app.transfer(&a, &b, json!("30.00")).await;
    settle(&app, &a, &moved).await;
    // A tampered amount: the running balance (100 - 29) no longer ends
    // where the ledger's as-of balance (from the running totals) does.
    app.database()
        .edit_transfer(moved.str("id"), "amount = 29.00")
        .await;
    let to = timestamp(&moved.body["created_at"]) + Duration::microseconds(1);

    let path = format!(
        "/accounts/{a}/statement?from=2000-01-01T00:00:00Z&to={}",
        rfc3339(to)
    );
    let response = app.client.get(app.url(&path)).send().await.expect("GET");

    assert_eq!(
        response.status().as_u16(),
        200,
        "the error came after the first byte"
    );
    let body = match response.bytes().await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => "<the transfer was cut>".to_owned(),
    };
    assert!(!body.contains("\r\nclosing,"), "{body}");
}
