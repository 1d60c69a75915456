//! API keys: every route against every kind of caller, what a key
//! restricted to accounts may see and move, who made a write, per-key
//! idempotency, and the per-key rate limit. (That a key never reaches the
//! log is checked on the real binary: `crates/ledger-server/tests/operate.rs`.)

use ledger_domain::{AccountId, Scope};
use std::time::Duration;

use ledger_testkit::service::{http_client, spawn_app, spawn_app_with, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// The kinds of caller of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    NoKey,
    BadKey,
    Revoked,
    Read,
    Write,
    Treasury,
    Admin,
    /// A `treasury` key restricted to the caller's own account `mine`.
    Restricted,
}

const CALLERS: [Caller; 8] = [
    Caller::NoKey,
    Caller::BadKey,
    Caller::Revoked,
    Caller::Read,
    Caller::Write,
    Caller::Treasury,
    Caller::Admin,
    Caller::Restricted,
];

/// What a route needs: a scope, and whether it names an account that is the
/// restricted key's own (`Mine`), another (`Theirs`), or none.
#[derive(Clone, Copy, Debug)]
enum Target {
    Mine,
    Theirs,
    None,
}

/// Everything one matrix row needs, made fresh for every caller so that a
/// write by one cannot change what another finds.
struct World {
    mine: String,
    theirs: String,
    empty_theirs: String,
    transfer_theirs: String,
    batch_theirs: String,
    key_id: String,
}

async fn world(app: &TestApp) -> World {
    let mine = app.funded_account("100.00").await;
    let theirs = app.funded_account("100.00").await;
    let empty_theirs = app.funded_account("0").await;
    let transfer_theirs = app.transfer(&theirs, &empty_theirs, json!("1.00")).await;
    transfer_theirs.expect_status(201);
    let empty_theirs_now = app.funded_account("0").await;
    let batch = app
        .post(
            "/batches",
            &json!({"transfers": [{"source": theirs, "destination": empty_theirs, "amount": "1.00"}]}),
        )
        .await;
    batch.expect_status(201);
    let key = app.post("/keys", &json!({"scope": "read"})).await;
    key.expect_status(201);
    World {
        mine,
        theirs,
        empty_theirs: empty_theirs_now,
        transfer_theirs: transfer_theirs.str("id").to_owned(),
        batch_theirs: batch.str("id").to_owned(),
        key_id: key.str("id").to_owned(),
    }
}

/// One request of the matrix: method, path, body, the scope it needs and
/// the account it concerns.
fn requests(w: &World) -> Vec<(Method, String, Option<Value>, Scope, Target)> {
    let (mine, theirs) = (&w.mine, &w.theirs);
    vec![
        (
            Method::GET,
            "/accounts".into(),
            None,
            Scope::Read,
            Target::None,
        ),
        (
            Method::POST,
            "/accounts".into(),
            Some(json!({})),
            Scope::Write,
            Target::None,
        ),
        (
            Method::GET,
            format!("/accounts/{mine}"),
            None,
            Scope::Read,
            Target::Mine,
        ),
        (
            Method::GET,
            format!("/accounts/{theirs}"),
            None,
            Scope::Read,
            Target::Theirs,
        ),
        (
            Method::GET,
            format!("/accounts/{mine}/balance"),
            None,
            Scope::Read,
            Target::Mine,
        ),
        (
            Method::GET,
            format!("/accounts/{theirs}/transfers"),
            None,
            Scope::Read,
            Target::Theirs,
        ),
        (
            Method::GET,
            format!("/transfers?account={theirs}"),
            None,
            Scope::Read,
            Target::Theirs,
        ),
        (
            Method::GET,
            format!("/transfers?account={mine}&metadata[order]=x"),
            None,
            Scope::Read,
            Target::Mine,
        ),
        (
            Method::POST,
            format!("/accounts/{mine}/deposits"),
            Some(json!({"amount": "1.00"})),
            Scope::Treasury,
            Target::Mine,
        ),
        (
            Method::POST,
            format!("/accounts/{mine}/withdrawals"),
            Some(json!({"amount": "1.00"})),
            Scope::Treasury,
            Target::Mine,
        ),
        (
            Method::POST,
            "/transfers".into(),
            Some(json!({"source": mine, "destination": theirs, "amount": "1.00"})),
            Scope::Write,
            Target::Mine,
        ),
        (
            Method::POST,
            "/transfers".into(),
            Some(json!({"source": theirs, "destination": mine, "amount": "1.00"})),
            Scope::Write,
            Target::Theirs,
        ),
        (
            Method::POST,
            "/batches".into(),
            Some(json!({"transfers": [{"source": mine, "destination": theirs, "amount": "1.00"}]})),
            Scope::Write,
            Target::Mine,
        ),
        (
            Method::GET,
            format!("/transfers/{}", w.transfer_theirs),
            None,
            Scope::Read,
            Target::Theirs,
        ),
        (
            Method::GET,
            format!("/batches/{}", w.batch_theirs),
            None,
            Scope::Read,
            Target::Theirs,
        ),
        (
            Method::GET,
            format!("/transfers/{}/proof", w.transfer_theirs),
            None,
            Scope::Read,
            Target::Theirs,
        ),
        (
            Method::GET,
            "/journal/digest".into(),
            None,
            Scope::Read,
            Target::None,
        ),
        (
            Method::DELETE,
            format!("/accounts/{}", w.empty_theirs),
            None,
            Scope::Admin,
            Target::Theirs,
        ),
        (
            Method::GET,
            "/keys".into(),
            None,
            Scope::Admin,
            Target::None,
        ),
        (
            Method::GET,
            "/keys/self".into(),
            None,
            Scope::Read,
            Target::None,
        ),
        (
            Method::POST,
            "/keys".into(),
            Some(json!({"scope": "read"})),
            Scope::Admin,
            Target::None,
        ),
        (
            Method::DELETE,
            format!("/keys/{}", w.key_id),
            None,
            Scope::Admin,
            Target::None,
        ),
    ]
}

/// The status a caller must get. A success is whatever the operation
/// answers when allowed (judged from its status class); a journal proof
/// may also be not final yet (422), which still shows it was allowed.
fn expected(caller: Caller, needs: Scope, target: Target) -> &'static [u16] {
    const ALLOWED: &[u16] = &[200, 201, 422];
    let scope = match caller {
        Caller::NoKey | Caller::BadKey | Caller::Revoked => return &[401],
        Caller::Read => Scope::Read,
        Caller::Write => Scope::Write,
        Caller::Treasury | Caller::Restricted => Scope::Treasury,
        Caller::Admin => Scope::Admin,
    };
    if !scope.grants(needs) {
        return &[403];
    }
    match (caller, target) {
        // Another account does not exist, to a restricted key.
        (Caller::Restricted, Target::Theirs) => &[404],
        // A restricted key may not open accounts (403, forbidden).
        (Caller::Restricted, Target::None) if needs == Scope::Write => &[403],
        _ => ALLOWED,
    }
}

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_its_scope_and_accounts_allow() {
    let app = spawn_app().await;
    let db = app.database();
    let revoked = db.admin_key().await;
    let revoked_id = app.get("/keys").await.body["items"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| revoked.starts_with(key["prefix"].as_str().unwrap_or("-")))
        .and_then(|key| key["id"].as_str())
        .expect("the key to revoke is listed")
        .to_owned();
    app.delete(&format!("/keys/{revoked_id}"))
        .await
        .expect_status(200);

    let mut failures = Vec::new();
    for caller in CALLERS {
        let w = world(&app).await;
        let mine = AccountId::from(Uuid::parse_str(&w.mine).expect("an id"));
        let key = match caller {
            Caller::NoKey => None,
            Caller::BadKey => Some(format!("lk_{}", "ab".repeat(32))),
            Caller::Revoked => Some(revoked.clone()),
            Caller::Read => Some(db.api_key(Scope::Read, None).await),
            Caller::Write => Some(db.api_key(Scope::Write, None).await),
            Caller::Treasury => Some(db.api_key(Scope::Treasury, None).await),
            Caller::Admin => Some(db.api_key(Scope::Admin, None).await),
            Caller::Restricted => Some(db.api_key(Scope::Treasury, Some(vec![mine])).await),
        };
        for (method, path, body, needs, target) in requests(&w) {
            let response = app
                .send_as(key.as_deref(), method.clone(), &path, body.as_ref())
                .await;
            let allowed = expected(caller, needs, target);
            if !allowed.contains(&response.status) {
                failures.push(format!(
                    "{caller:?} {method} {path}: {} {} (expected {allowed:?})",
                    response.status, response.body
                ));
            }
            if response.status == 401 {
                assert_eq!(response.code(), "unauthorized");
                assert_eq!(response.header("www-authenticate"), Some("Bearer"));
            }
            if response.status == 403 {
                assert_eq!(response.code(), "forbidden");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_probes_and_the_documents_answer_without_a_key() {
    let app = spawn_app().await;
    for path in ["/health", "/ready"] {
        let response = app.send_as(None, Method::GET, path, None).await;
        assert_eq!(response.status, 200, "{path}");
    }
    // Not operations of the document: sent raw, without a key.
    let anonymous = http_client(Duration::from_secs(10));
    for path in ["/openapi.json", "/docs/", "/console/"] {
        let response = anonymous.get(app.url(path)).send().await.expect(path);
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_key_learns_its_own_scope_and_accounts_and_nothing_secret() {
    let app = spawn_app().await;
    let mine = app.funded_account("10.00").await;
    let own = AccountId::from(Uuid::parse_str(&mine).expect("an id"));
    let restricted = app.database().api_key(Scope::Write, Some(vec![own])).await;
    let reader = app.database().api_key(Scope::Read, None).await;

    let response = app
        .send_as(Some(&restricted), Method::GET, "/keys/self", None)
        .await;
    response.expect_status(200);
    assert_eq!(response.body["scope"], "write");
    assert_eq!(response.body["accounts"], json!([mine]));
    let listed = app.get("/keys").await.body["items"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| restricted.starts_with(key["prefix"].as_str().unwrap_or("-")))
        .cloned()
        .expect("the key is listed");
    assert_eq!(response.body["id"], listed["id"]);
    assert!(
        !response.body.to_string().contains(&restricted[3..]),
        "never the secret"
    );

    let response = app
        .send_as(Some(&reader), Method::GET, "/keys/self", None)
        .await;
    response.expect_status(200);
    assert_eq!(response.body["scope"], "read");
    assert_eq!(response.body["accounts"], Value::Null);
    // `self` is not a key id: revoking it is no route.
    app.send_as(Some(&reader), Method::DELETE, "/keys/self", None)
        .await
        .expect_status(405);
}

#[tokio::test]
async fn a_restricted_key_reads_and_debits_only_its_own_accounts_and_lists_only_them() {
    let app = spawn_app().await;
    let mine = app.funded_account("10.00").await;
    let theirs = app.funded_account("10.00").await;
    let own = AccountId::from(Uuid::parse_str(&mine).expect("an id"));
    let key = app.database().api_key(Scope::Write, Some(vec![own])).await;

    let list = app
        .send_as(Some(&key), Method::GET, "/accounts", None)
        .await;
    list.expect_status(200);
    let listed: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|account| account["id"].as_str())
        .collect();
    assert_eq!(listed, [mine.as_str()], "only its own account is listed");

    let debit_theirs = json!({"source": theirs, "destination": mine, "amount": "1.00"});
    app.send_as(Some(&key), Method::POST, "/transfers", Some(&debit_theirs))
        .await
        .expect_problem(404, "account_not_found");
    let read_theirs = format!("/accounts/{theirs}/balance");
    app.send_as(Some(&key), Method::GET, &read_theirs, None)
        .await
        .expect_problem(404, "account_not_found");
    assert_eq!(app.balance(&theirs).await, "10.00", "nothing moved");

    let pay = json!({"source": mine, "destination": theirs, "amount": "1.00"});
    app.send_as(Some(&key), Method::POST, "/transfers", Some(&pay))
        .await
        .expect_status(201);
    assert_eq!(app.balance(&theirs).await, "11.00");
}

#[tokio::test]
async fn every_write_records_the_key_that_made_it() {
    let app = spawn_app().await;
    let a = app.funded_account("10.00").await;
    let b = app.funded_account("0").await;
    let key = app
        .post("/keys", &json!({"scope": "write", "name": "payments"}))
        .await;
    key.expect_status(201);
    let (secret, key_id) = (key.str("key").to_owned(), key.str("id").to_owned());

    let body = json!({"source": a, "destination": b, "amount": "1.00"});
    let made = app
        .send_as(Some(&secret), Method::POST, "/transfers", Some(&body))
        .await;
    made.expect_status(201);
    assert_eq!(made.str("created_by"), key_id);
    let read = app.get(&format!("/transfers/{}", made.str("id"))).await;
    assert_eq!(read.str("created_by"), key_id, "as read back, for good");

    // Opening and closing an account are writes too.
    let admin = app.post("/keys", &json!({"scope": "admin"})).await;
    let (admin_secret, admin_id) = (admin.str("key").to_owned(), admin.str("id").to_owned());
    let opened = app
        .send_as(
            Some(&admin_secret),
            Method::POST,
            "/accounts",
            Some(&json!({})),
        )
        .await;
    opened.expect_status(201);
    let account = opened.str("id").to_owned();
    app.send_as(
        Some(&admin_secret),
        Method::DELETE,
        &format!("/accounts/{account}"),
        None,
    )
    .await
    .expect_status(200);
    let row = app
        .database()
        .connect()
        .await
        .expect("a connection")
        .query_one(
            "select opened_by::text, closed_by::text from ledger.accounts where account_id = $1",
            &[&Uuid::parse_str(&account).expect("an id")],
        )
        .await
        .expect("the account");
    let (opened_by, closed_by): (String, String) = (row.get(0), row.get(1));
    assert_eq!(
        (opened_by.as_str(), closed_by.as_str()),
        (admin_id.as_str(), admin_id.as_str())
    );
}

#[tokio::test]
async fn idempotency_keys_of_one_api_key_neither_block_nor_reveal_another_s() {
    let app = spawn_app().await;
    let a = app.funded_account("10.00").await;
    let b = app.funded_account("0").await;
    let first = app.database().api_key(Scope::Write, None).await;
    let second = app.database().api_key(Scope::Write, None).await;
    let send = |key: String, amount: &'static str| {
        let request = app
            .client
            .post(app.url("/transfers"))
            .bearer_auth(key)
            .header("Idempotency-Key", "order-1")
            .json(&json!({"source": a, "destination": b, "amount": amount}));
        app.send(request)
    };
    send(first.clone(), "1.00").await.expect_status(201);
    // The same client key from another API key is a request of its own:
    // neither `idempotency_key_reused` nor a replay of the first.
    let other = send(second, "2.00").await;
    other.expect_status(201);
    assert_eq!(other.header("idempotent-replayed"), None);
    assert_eq!(app.balance(&b).await, "3.00");
}

#[tokio::test]
async fn a_key_past_its_rate_is_answered_429_with_retry_after() {
    let app = spawn_app_with(|api| api.rate_limit_per_key = 5).await;
    let key = app.database().api_key(Scope::Read, None).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = app
            .send_as(Some(&key), Method::GET, "/accounts", None)
            .await;
        if response.status == 429 {
            assert_eq!(response.code(), "rate_limited");
            assert_eq!(response.header("retry-after"), Some("1"));
        }
        statuses.push(response.status);
    }
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(
        (1..=7).contains(&limited) && statuses[..5].iter().all(|&s| s == 200),
        "a burst of 5 passes, then the rate holds: {statuses:?}"
    );
    // Another key has its own budget.
    let other = app.database().api_key(Scope::Read, None).await;
    app.send_as(Some(&other), Method::GET, "/accounts", None)
        .await
        .expect_status(200);
}

#[tokio::test]
async fn a_key_request_that_breaks_a_rule_is_refused_and_makes_no_key() {
    let app = spawn_app().await;
    let before = app.get("/keys").await.body["items"]
        .as_array()
        .map(Vec::len);
    app.expect_posts_refused(
        "/keys",
        422,
        "validation_failed",
        [
            (json!({"scope": "root"}), "no such scope"),
            (json!({"accounts": []}), "an empty account list"),
            (
                json!({"name": "x".repeat(201)}),
                "a name over 200 characters",
            ),
            (
                json!({"name": "nul\u{0}byte"}),
                "a NUL, which PostgreSQL text cannot hold",
            ),
            (json!({"name": "line\nbreak"}), "a control character"),
        ],
    )
    .await;
    let after = app.get("/keys").await.body["items"]
        .as_array()
        .map(Vec::len);
    assert_eq!(before, after, "no key was made");
}
