//! POST /batches and GET /batches/{id}: atomic multi-leg batches.

use futures::future::join_all;
use ledger_domain::Decimal;
use ledger_testkit::service::{spawn_app, spawn_app_with_accounts, timestamp};
use serde_json::{json, Value};

const MISSING: &str = "01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b";

fn leg(source: &str, destination: &str, amount: &str) -> Value {
    json!({ "source": source, "destination": destination, "amount": amount })
}

/// The body of `POST /batches` with these legs.
fn batch(legs: Vec<Value>) -> Value {
    json!({ "transfers": legs })
}

#[tokio::test]
async fn a_batch_applies_its_legs_in_order_so_a_later_leg_spends_what_an_earlier_one_received() {
    let (app, [alice, bob, carol]) = spawn_app_with_accounts(["10.00", "0", "0"]).await;

    let legs = vec![
        leg(&alice, &bob, "10.00"),
        // Bob had nothing before this batch.
        json!({ "source": bob, "destination": carol, "amount": "7.50", "metadata": { "n": 2 } }),
    ];

    let response = app.post("/batches", &batch(legs)).await;

    response.expect_status(201);
    let id = response.str("id").to_owned();
    assert_eq!(
        response.header("location"),
        Some(format!("/batches/{id}").as_str())
    );
    let transfers = response.body["transfers"].as_array().expect("transfers");
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[0]["source"], alice);
    assert_eq!(transfers[1]["source"], bob);
    assert_eq!(transfers[1]["source_balance_after"], "2.50");
    assert_eq!(transfers[1]["metadata"], json!({ "n": 2 }));
    for transfer in transfers {
        assert_eq!(
            transfer["created_at"], response.body["created_at"],
            "one time for the whole batch"
        );
    }
    assert_eq!(app.balance(&alice).await, "0.00");
    assert_eq!(app.balance(&bob).await, "2.50");
    assert_eq!(app.balance(&carol).await, "7.50");

    let read = app.get(&format!("/batches/{id}")).await;
    read.expect_status(200);
    assert_eq!(read.body, response.body);
    app.get(&format!("/batches/{MISSING}"))
        .await
        .expect_problem(404, "batch_not_found");
}

#[tokio::test]
async fn when_leg_k_fails_nothing_of_the_legs_before_it_is_visible() {
    let (app, [alice, bob, carol]) = spawn_app_with_accounts(["10", "0", "0"]).await;

    let cases = [
        (
            vec![
                leg(&alice, &bob, "4"),
                leg(&bob, &carol, "4"),
                leg(&alice, &carol, "6.01"),
            ],
            2,
            422,
            "insufficient_funds",
            "alice has 6 left after leg 0",
        ),
        (
            vec![leg(&alice, &bob, "1"), leg(&bob, MISSING, "1")],
            1,
            404,
            "account_not_found",
            "leg 1 names a missing account",
        ),
        (
            vec![leg(&alice, &bob, "1"), leg(&alice, &alice, "1")],
            1,
            422,
            "validation_failed",
            "leg 1 pays its own source",
        ),
        (
            vec![
                leg(&alice, &bob, "1"),
                json!({ "source": alice, "destination": bob }),
            ],
            1,
            400,
            "invalid_request",
            "leg 1 has no amount",
        ),
        (
            vec![leg(&alice, &bob, "1"), leg(&alice, &bob, "0.001")],
            1,
            422,
            "validation_failed",
            "leg 1 has too many decimals",
        ),
    ];
    for (legs, failing, status, code, why) in cases {
        let response = app.post("/batches", &batch(legs)).await;
        response.expect_problem(status, code);
        assert_eq!(response.body["leg"], json!(failing), "{why}");
        assert_eq!(app.balance(&alice).await, "10.00", "{why}");
        assert_eq!(app.balance(&bob).await, "0.00", "{why}");
        assert_eq!(app.balance(&carol).await, "0.00", "{why}");
    }
    let history = app.get(&format!("/accounts/{bob}/transfers")).await;
    history.expect_status(200);
    assert_eq!(
        history.body["items"].as_array().map(Vec::len),
        Some(0),
        "bob never received anything: {}",
        history.body
    );
}

#[tokio::test]
async fn a_batch_replayed_with_its_idempotency_key_returns_the_original_and_applies_once() {
    let (app, [alice, bob]) = spawn_app_with_accounts(["10", "0"]).await;
    let body = batch(vec![leg(&alice, &bob, "3"), leg(&alice, &bob, "2")]);
    let post = || app.post_with_key("/batches", "batch-1", &body);

    let first = post().await;
    first.expect_status(201);
    let again = post().await;

    again.expect_replay_of(&first);
    assert_eq!(app.balance(&alice).await, "5.00");
    let other = app
        .post_with_key("/batches", "batch-1", &batch(vec![leg(&alice, &bob, "1")]))
        .await;
    other.expect_problem(422, "idempotency_key_reused");
}

#[tokio::test]
async fn a_batch_of_8189_legs_is_accepted_and_one_of_8190_or_none_is_refused() {
    let (app, [alice, bob]) = spawn_app_with_accounts(["10000", "0"]).await;
    let legs = |n: usize| batch(vec![leg(&alice, &bob, "1"); n]);

    let none = app.post("/batches", &legs(0)).await;
    none.expect_problem(422, "validation_failed");
    assert!(none.str("detail").contains("1 to 8189"), "{}", none.body);
    let too_many = app.post("/batches", &legs(8_190)).await;
    too_many.expect_problem(422, "validation_failed");
    assert!(too_many.str("detail").contains("8190"), "{}", too_many.body);

    let most = app.post("/batches", &legs(8_189)).await;

    most.expect_status(201);
    let transfers = most.body["transfers"].as_array().expect("transfers");
    assert_eq!(transfers.len(), 8_189);
    assert_eq!(transfers[8_188]["source_seq"], 8_188);
    assert_eq!(app.balance(&alice).await, "1811.00");
    assert_eq!(app.balance(&bob).await, "8189.00");
}

#[tokio::test]
async fn concurrent_batches_over_shared_accounts_neither_deadlock_nor_fail() {
    let app = spawn_app().await;
    let accounts = app.funded_accounts(["1000"; 4]).await;
    // Each batch walks the four accounts from its own starting point and in
    // its own direction, so that batches hold rows the others want.
    let batches = (0..8).map(|b| {
        let legs: Vec<Value> = (0..24)
            .map(|i| {
                let step = if b % 2 == 0 { 1 } else { 3 };
                let from = (b + i * step) % 4;
                let to = (from + step) % 4;
                leg(&accounts[from], &accounts[to], "1.25")
            })
            .collect();
        batch(legs)
    });
    let bodies: Vec<Value> = batches.collect();

    let responses = join_all(bodies.iter().map(|body| app.post("/batches", body))).await;

    for response in &responses {
        response.expect_status(201);
    }
    let mut total = Decimal::ZERO;
    for account in &accounts {
        let balance: Decimal = app.balance(account).await.parse().expect("a decimal");
        assert!(balance >= Decimal::ZERO, "no overdraft");
        total += balance;
    }
    assert_eq!(total, Decimal::from(4_000), "money is conserved");
}

#[tokio::test]
async fn a_final_as_of_read_never_shows_part_of_a_batch() {
    let (app, [alice, bob, carol]) = spawn_app_with_accounts(["10", "0", "0"]).await;
    let legs = vec![
        leg(&alice, &bob, "6"),
        leg(&bob, &carol, "5"),
        leg(&alice, &carol, "4"),
        leg(&carol, &alice, "1"),
    ];
    let response = app.post("/batches", &batch(legs)).await;
    response.expect_status(201);
    let at = timestamp(&response.body["created_at"]);
    let just_before = at - chrono::Duration::microseconds(1);

    let mut before = Vec::new();
    let mut after = Vec::new();
    for account in [&alice, &bob, &carol] {
        before.push(app.final_balance_at(account, just_before).await["balance"].clone());
        after.push(app.final_balance_at(account, at).await["balance"].clone());
    }

    assert_eq!(before, ["10.00", "0.00", "0.00"], "none of the batch");
    assert_eq!(after, ["1.00", "1.00", "8.00"], "all of the batch");
}
