//! GET /journal/digest and GET /transfers/{id}/proof: an auditor stores a
//! digest, and later checks a transfer against it with a proof.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use ledger_testkit::service::{spawn_app, TestApp};
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

/// What an auditor does with a proof, from the README's description only.
fn check(proof: &Value, stored_root: &str) -> bool {
    let mut hash = unhex(proof["previous_hash"].as_str().expect("hex"));
    let mut seq = 0i64;
    for link in proof["chain"].as_array().expect("chain") {
        hash = sha256(&[
            &hash,
            link["encoding"].as_str().expect("encoding").as_bytes(),
        ]);
        if hex(&hash) != link["hash"].as_str().expect("hash") {
            return false;
        }
        seq = link["seq"].as_i64().expect("seq");
    }
    let source = uuid::Uuid::parse_str(proof["source"].as_str().expect("source")).expect("uuid");
    let mut node = sha256(&[&[0u8], source.as_bytes(), &seq.to_be_bytes(), &hash]);
    let (mut index, mut last) = (
        proof["leaf_index"].as_u64().expect("index"),
        proof["digest"]["chains"].as_u64().expect("size") - 1,
    );
    for sibling in proof["audit_path"].as_array().expect("path") {
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
    last == 0 && hex(&node) == stored_root
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_transfer_is_proven_against_a_digest_stored_earlier() {
    let app = spawn_app().await;
    let a = app.funded_account("10.00").await;
    let b = app.funded_account("5.00").await;
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
    let encoding = proof.body["chain"][0]["encoding"]
        .as_str()
        .expect("encoding");
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
    forged["chain"][0]["encoding"] = json!(forged["chain"][0]["encoding"]
        .as_str()
        .expect("encoding")
        .replace("|2.50|", "|25.00|"));
    assert!(!check(&forged, stored["root"].as_str().expect("root")));
}

#[tokio::test]
async fn digests_and_proofs_are_refused_for_times_that_are_not_final() {
    let app = spawn_app().await;
    let a = app.funded_account("1.00").await;
    let b = app.funded_account("0").await;
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
    let app = spawn_app().await;
    let a = app.funded_account("10.00").await;
    let b = app.funded_account("0").await;
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
    assert!(!proof.body["chain"].as_array().expect("chain").is_empty());
    let root = proof.body["digest"]["root"].as_str().expect("root");
    assert!(check(&proof.body, root));
}

#[tokio::test]
async fn times_outside_rfc3339_years_are_bad_requests_on_every_time_parameter() {
    let app = spawn_app().await;
    let a = app.funded_account("1.00").await;
    let b = app.funded_account("0").await;
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
