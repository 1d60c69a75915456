//! GET /journal/digest, GET /transfers/{id}/proof and GET
//! /journal/consistency: an auditor stores a digest, later checks a transfer
//! against it with an inclusion proof, and checks that a newer digest
//! extends it with a consistency proof. The checks below use only what the
//! README's "Verifiable journal" says.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use ledger_testkit::service::{spawn_app, spawn_app_with_accounts, TestApp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Polls the digest until it covers `after` (the horizon moves every 100 ms).
async fn digest_after(app: &TestApp, after: &str) -> Value {
    let after = DateTime::parse_from_rfc3339(after).expect("timestamp");
    for _ in 0..100 {
        let response = app.get("/journal/digest").await;
        if response.status == 422 {
            // No final horizon yet: the service has just started.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        response.expect_status(200);
        let at = DateTime::parse_from_rfc3339(response.str("at")).expect("timestamp");
        if at > after {
            return response.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the digest never passed {after}");
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// What an auditor does with an inclusion proof, from the README only.
fn check(proof: &Value, stored_root: &str) -> bool {
    // 1. The row hash from the previous hash and the encoding.
    let row = sha256(&[
        &unhex(proof["previous_hash"].as_str().expect("hex")),
        proof["encoding"].as_str().expect("encoding").as_bytes(),
    ]);
    // 2. The leaf.
    let mut node = sha256(&[&[0u8], &row]);
    // 3. Fold the audit path (RFC 9162 §2.1.3.2).
    let (mut index, mut last) = (
        proof["leaf_index"].as_u64().expect("index"),
        proof["digest"]["tree_size"].as_u64().expect("size") - 1,
    );
    for sibling in proof["audit_path"].as_array().expect("path") {
        if last == 0 {
            return false;
        }
        let sibling = unhex(sibling.as_str().expect("hex"));
        if index & 1 == 1 || index == last {
            node = sha256(&[&[1u8], &sibling, &node]);
            while index & 1 == 0 && index != 0 {
                index >>= 1;
                last >>= 1;
            }
        } else {
            node = sha256(&[&[1u8], &node, &sibling]);
        }
        index >>= 1;
        last >>= 1;
    }
    // 4. Compare with the stored root.
    last == 0 && hex(&node) == stored_root
}

/// What an auditor does with a consistency proof between the digest they
/// stored, `(first, first_root)`, and a newer one, from the README only
/// (RFC 9162 §2.1.4.2).
fn check_consistency(
    first: u64,
    first_root: &str,
    second: u64,
    second_root: &str,
    proof: &[Value],
) -> bool {
    let mut path: Vec<Vec<u8>> = proof
        .iter()
        .map(|node| unhex(node.as_str().expect("hex")))
        .collect();
    if first == second {
        return path.is_empty() && first_root == second_root;
    }
    if first == 0 || first > second {
        return false;
    }
    if first.is_power_of_two() {
        path.insert(0, unhex(first_root));
    }
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let Some((seed, rest)) = path.split_first() else {
        return false;
    };
    let (mut fr, mut sr) = (seed.clone(), seed.clone());
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = sha256(&[&[1u8], c, &fr]);
            sr = sha256(&[&[1u8], c, &sr]);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = sha256(&[&[1u8], &sr, c]);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    hex(&fr) == first_root && hex(&sr) == second_root && sn == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_transfer_is_proven_against_a_digest_stored_earlier() {
    let (app, [a, b]) = spawn_app_with_accounts(["10.00", "5.00"]).await;
    let transfer = app.transfer(&a, &b, json!("2.50")).await;
    transfer.expect_status(201);
    app.transfer(&b, &a, json!("1.00")).await.expect_status(201);

    let stored = digest_after(&app, transfer.str("created_at")).await;
    let at = stored["at"].as_str().expect("at").to_owned();
    // Later activity moves the current digest, not the stored one.
    app.transfer(&a, &b, json!("0.10")).await.expect_status(201);
    digest_after(&app, &Utc::now().to_rfc3339()).await;
    let again = app
        .get(&format!("/journal/digest?at={}", urlencode(&at)))
        .await;
    again.expect_status(200);
    assert_eq!(again.body, stored);

    let id = transfer.str("id");
    let proof = app
        .get(&format!("/transfers/{id}/proof?at={}", urlencode(&at)))
        .await;
    proof.expect_status(200);
    assert_eq!(proof.body["digest"], stored);
    assert!(check(&proof.body, stored["root"].as_str().expect("root")));
    // The first link is the transfer itself, in the README's encoding:
    // ledger-transfer-v2|id|source|seq|destination|currency|amount|
    // created_at µs|source_outgoing_total|source_balance_after|metadata.
    let encoding = proof.body["encoding"].as_str().expect("encoding");
    let fields: Vec<&str> = encoding.splitn(11, '|').collect();
    let created_at_micros = chrono::DateTime::parse_from_rfc3339(transfer.str("created_at"))
        .expect("created_at")
        .timestamp_micros()
        .to_string();
    let seq = transfer.body["source_seq"].to_string();
    assert_eq!(
        fields,
        [
            "ledger-transfer-v2",
            id,
            transfer.str("source"),
            seq.as_str(),
            transfer.str("destination"),
            "USD",
            "2.50",
            created_at_micros.as_str(),
            "2.50",
            transfer.str("source_balance_after"),
            "",
        ],
        "{encoding}"
    );

    let mut forged = proof.body.clone();
    forged["encoding"] = json!(encoding.replace("|2.50|", "|25.00|"));
    assert!(!check(&forged, stored["root"].as_str().expect("root")));
}

#[tokio::test]
async fn digests_and_proofs_are_refused_for_times_that_are_not_final() {
    let (app, [a, b]) = spawn_app_with_accounts(["1.00", "0"]).await;
    let transfer = app.transfer(&a, &b, json!("1.00")).await;
    transfer.expect_status(201);
    let future =
        (Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);

    app.get(&format!("/journal/digest?at={}", urlencode(&future)))
        .await
        .expect_problem(422, "validation_failed");
    let id = transfer.str("id");
    app.get(&format!("/transfers/{id}/proof?at={}", urlencode(&future)))
        .await
        .expect_problem(422, "validation_failed");
    app.get(&format!("/transfers/{}/proof", uuid::Uuid::new_v4()))
        .await
        .expect_problem(404, "transfer_not_found");
    app.get("/journal/digest?at=yesterday")
        .await
        .expect_problem(400, "invalid_request");
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// `T` plus `nanos` nanoseconds, written with nanosecond precision.
fn plus_nanos(time: &str, nanos: i64) -> String {
    (DateTime::parse_from_rfc3339(time).expect("timestamp") + chrono::Duration::nanoseconds(nanos))
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[tokio::test]
async fn a_sub_microsecond_time_is_truncated_so_digests_and_proofs_agree_with_the_ledger() {
    let (app, [a, b]) = spawn_app_with_accounts(["10.00", "0"]).await;
    // The first transfer out of `a`: seq 0 of its chain.
    let transfer = app.transfer(&a, &b, json!("1.00")).await;
    transfer.expect_status(201);
    let created_at = transfer.str("created_at").to_owned();
    let id = transfer.str("id");
    digest_after(&app, &plus_nanos(&created_at, 1_000)).await;
    let half_past = plus_nanos(&created_at, 500);

    // T + 500 ns is T to a ledger that stores microseconds: the digest says
    // so, and is the digest of T (which holds rows strictly before T).
    let digest = app
        .get(&format!("/journal/digest?at={}", urlencode(&half_past)))
        .await;
    digest.expect_status(200);
    let digest_at = DateTime::parse_from_rfc3339(digest.str("at")).expect("timestamp");
    assert_eq!(
        digest_at,
        DateTime::parse_from_rfc3339(&created_at).expect("timestamp")
    );
    let at_t = app
        .get(&format!("/journal/digest?at={}", urlencode(&created_at)))
        .await;
    assert_eq!(digest.body, at_t.body);

    // So the transfer is not in it: a clear refusal, never a 500 or an
    // empty chain no auditor could check.
    app.get(&format!(
        "/transfers/{id}/proof?at={}",
        urlencode(&half_past)
    ))
    .await
    .expect_problem(422, "validation_failed");

    // One microsecond later it is, with a proof that checks.
    let next = plus_nanos(&created_at, 1_000);
    let proof = app
        .get(&format!("/transfers/{id}/proof?at={}", urlencode(&next)))
        .await;
    proof.expect_status(200);
    let root = proof.body["digest"]["root"].as_str().expect("root");
    assert!(check(&proof.body, root));
}

#[tokio::test]
async fn times_outside_rfc3339_years_are_bad_requests_on_every_time_parameter() {
    let (app, [a, b]) = spawn_app_with_accounts(["1.00", "0"]).await;
    let transfer = app.transfer(&a, &b, json!("1.00")).await;
    let id = transfer.str("id");
    let cases = [
        (
            "-4714-11-24T00:00:00Z",
            "before PostgreSQL's first day (gave 500)",
        ),
        (
            "-262143-01-01T00:00:00Z",
            "chrono's first year, not RFC 3339",
        ),
        ("+10000-01-01T00:00:00Z", "a five-digit year, not RFC 3339"),
        (
            "+262142-12-31T23:59:59Z",
            "chrono's last year, not RFC 3339",
        ),
    ];
    for (time, why) in cases {
        let time = urlencode(time);
        for path in [
            format!("/journal/digest?at={time}"),
            format!("/transfers/{id}/proof?at={time}"),
            format!("/accounts/{a}/transfers?to={time}"),
            format!("/accounts/{a}/transfers?from={time}"),
            format!("/accounts/{a}/balance?at={time}"),
        ] {
            let response = app.get(&path).await;
            assert_eq!(
                (response.status, response.code()),
                (400, "invalid_request"),
                "{why}: {path}: {}",
                response.body
            );
        }
    }
}

/// `count` transfers of 0.01 from `a` to `b`, through `POST /batches`.
async fn many_transfers(app: &TestApp, a: &str, b: &str, count: usize) {
    let mut left = count;
    while left > 0 {
        let legs: Vec<Value> = (0..left.min(5_000))
            .map(|_| json!({"source": a, "destination": b, "amount": "0.01"}))
            .collect();
        left -= legs.len();
        app.post("/batches", &json!({ "transfers": legs }))
            .await
            .expect_status(201);
    }
}

async fn consistency(app: &TestApp, from: u64, to: u64) -> Value {
    let response = app
        .get(&format!("/journal/consistency?from={from}&to={to}"))
        .await;
    response.expect_status(200);
    response.body
}

#[tokio::test]
async fn a_newer_digest_is_proven_to_extend_a_stored_one_until_a_tamperer_rewrites_the_tree() {
    let (app, [a, b]) = spawn_app_with_accounts(["200.00", "0"]).await;
    let victim = app.transfer(&a, &b, json!("1.00")).await;
    victim.expect_status(201);
    let stored = digest_after(&app, victim.str("created_at")).await;
    let (first, first_root) = (
        stored["tree_size"].as_u64().expect("size"),
        stored["root"].as_str().expect("root").to_owned(),
    );
    let at = urlencode(stored["at"].as_str().expect("at"));
    let id = victim.str("id").to_owned();

    many_transfers(&app, &a, &b, 10_000).await;
    let newer = digest_after(&app, &Utc::now().to_rfc3339()).await;
    let second = newer["tree_size"].as_u64().expect("size");
    let second_root = newer["root"].as_str().expect("root");
    assert!(second >= first + 10_000, "{second} after {first}");
    let proof = consistency(&app, first, second).await;
    assert_eq!(proof["to"]["root"], newer["root"]);
    let nodes = proof["proof"].as_array().expect("proof").clone();
    assert!(nodes.len() <= 2 * 15, "O(log n): {}", nodes.len());
    assert!(check_consistency(
        first,
        &first_root,
        second,
        second_root,
        &nodes
    ));
    // The first transfer of a chain with 10,000 later rows: a proof of a
    // dozen or so hashes.
    let inclusion = app.get(&format!("/transfers/{id}/proof")).await;
    inclusion.expect_status(200);
    assert!(check(&inclusion.body, second_root));
    assert!(inclusion.body.to_string().len() < 10 * 1024);

    // A superuser edits the row with the triggers off: `verify` names it,
    // and its proof no longer leads to the digest stored before.
    let db = app.database();
    let edited = r#"metadata = '{"note": "edited"}'"#;
    db.edit_transfer(&id, edited).await;
    let report = db.ledger().verify().await.expect("verify");
    let named = report.violations.first().expect("a violation");
    assert_eq!(named.rule, "hash_mismatch");
    assert_eq!(named.row.map(|row| row.2.to_string()), Some(id.clone()));
    let proof = app.get(&format!("/transfers/{id}/proof?at={at}")).await;
    proof.expect_status(200);
    assert!(!check(&proof.body, &first_root));

    // One who also rebuilds the hash chains and the whole tree makes the
    // ledger agree with itself again, but not with the stored digest.
    db.edit_transfer_and_rechain(&id, edited).await;
    db.as_superuser("delete from ledger.journal_leaves; delete from ledger.journal_nodes;")
        .await;
    let rewritten = digest_after(&app, &Utc::now().to_rfc3339()).await;
    let third = rewritten["tree_size"].as_u64().expect("size");
    let proof = consistency(&app, first, third).await;
    assert_ne!(proof["from"]["root"].as_str(), Some(first_root.as_str()));
    assert!(!check_consistency(
        first,
        &first_root,
        third,
        rewritten["root"].as_str().expect("root"),
        proof["proof"].as_array().expect("proof"),
    ));
}

#[tokio::test]
async fn consistency_proofs_are_refused_for_sizes_that_are_malformed_or_not_final() {
    let app = spawn_app().await;
    let a = app.funded_account("1.00").await;
    let transfer = app.deposit(&a, json!("1.00")).await;
    let digest = digest_after(&app, transfer.str("created_at")).await;
    let size = digest["tree_size"].as_u64().expect("size");

    let cases = [
        (
            "from=0&to=1",
            400,
            "invalid_request",
            "the empty tree has no proof",
        ),
        ("from=2&to=1", 400, "invalid_request", "from after to"),
        ("from=1", 400, "invalid_request", "to missing"),
        ("from=x&to=1", 400, "invalid_request", "not a number"),
        ("from=-1&to=1", 400, "invalid_request", "negative"),
        (
            "from=1&to=1&at=x",
            400,
            "invalid_request",
            "unknown parameter",
        ),
        (
            "from=1&to=1000000",
            422,
            "validation_failed",
            "beyond the final tree",
        ),
    ];
    for (query, status, code, why) in cases {
        let response = app.get(&format!("/journal/consistency?{query}")).await;
        assert_eq!(
            (response.status, response.code()),
            (status, code),
            "{why}: {}",
            response.body
        );
    }
    let same = consistency(&app, size, size).await;
    assert_eq!(same["proof"], json!([]));
    assert_eq!(same["to"]["root"], digest["root"]);
}
