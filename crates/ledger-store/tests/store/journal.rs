//! The verifiable journal: chains, digest, proofs, and `verify`.

use std::time::Duration;

use ledger_store::Ledger;

use ledger_testkit::{dec, open, transfer, TestDatabase};

async fn final_now(ledger: &Ledger) -> chrono::DateTime<chrono::Utc> {
    let now = ledger
        .balance(ledger_domain::AccountId::system(ledger_testkit::usd()))
        .await;
    let now = now.map(|b| b.at).unwrap_or_else(|_| chrono::Utc::now());
    for _ in 0..200 {
        if let Some(horizon) = ledger.advance_horizon().await.expect("horizon") {
            if horizon > now {
                return horizon;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the horizon did not advance");
}

#[tokio::test]
async fn verify_finds_nothing_wrong_with_an_untouched_ledger() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let a = open(&ledger, "10.00").await;
    let b = open(&ledger, "0").await;
    for _ in 0..5 {
        transfer(&ledger, a, b, "1.00").await;
    }

    let report = ledger.verify().await.expect("verify");

    assert_eq!(report.violations, vec![]);
    assert_eq!(report.rows_checked, 6);
    assert_eq!(report.chains_checked, 2, "the system account's and a's");
}

#[tokio::test]
async fn verify_names_the_row_a_superuser_tampered_with() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let a = open(&ledger, "10.00").await;
    let b = open(&ledger, "0").await;
    let mut transfers = Vec::new();
    for _ in 0..4 {
        transfers.push(transfer(&ledger, a, b, "1.00").await);
    }
    let target = &transfers[2];

    // Bypass the append-only triggers, as only a superuser can.
    let client = database.connect().await.expect("connect");
    client
        .batch_execute(&format!(
            "set session_replication_role = replica;
             update ledger.transfers set metadata = '{{\"note\": \"edited\"}}'
              where transfer_id = '{}';",
            target.id
        ))
        .await
        .expect("tamper");

    let report = ledger.verify().await.expect("verify");

    let first = report.violations.first().expect("a violation");
    assert_eq!(first.rule, "hash_mismatch");
    assert_eq!(
        first.row,
        Some((a.as_uuid(), target.source_seq, target.id.as_uuid()))
    );
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
}

#[tokio::test]
async fn verify_reports_a_changed_amount_as_a_broken_total_hash_and_balance() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let a = open(&ledger, "10.00").await;
    let b = open(&ledger, "0").await;
    let transfer = transfer(&ledger, a, b, "4.00").await;
    let client = database.connect().await.expect("connect");
    client
        .batch_execute(&format!(
            "set session_replication_role = replica;
             update ledger.transfers set amount = 3.00 where transfer_id = '{}';",
            transfer.id
        ))
        .await
        .expect("tamper");

    let report = ledger.verify().await.expect("verify");

    let rules: Vec<_> = report.violations.iter().map(|v| v.rule).collect();
    assert_eq!(
        report.violations[0].row.map(|row| row.2),
        Some(transfer.id.as_uuid())
    );
    assert!(rules.contains(&"running_total"), "{rules:?}");
    assert!(rules.contains(&"hash_mismatch"), "{rules:?}");
    assert!(rules.contains(&"derived_balance_mismatch"), "{rules:?}");
}

#[tokio::test]
async fn a_proof_checks_a_transfer_against_a_stored_digest_that_never_changes() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let a = open(&ledger, "10.00").await;
    let b = open(&ledger, "0").await;
    let c = open(&ledger, "3.00").await;
    let proven = transfer(&ledger, a, b, "2.00").await;
    transfer(&ledger, a, c, "1.00").await;
    transfer(&ledger, c, b, "1.00").await;

    let at = final_now(&ledger).await;
    let stored = ledger.digest(Some(at)).await.expect("digest");
    let proof = ledger.proof(proven.id, Some(at)).await.expect("proof");
    assert_eq!(proof.digest, stored);
    assert!(proof.verify(), "the proof leads to the stored root");
    assert_eq!(
        proof.chain.len(),
        2,
        "the transfer and the later one from a"
    );

    // More activity later does not change the digest as of `at`.
    transfer(&ledger, b, a, "1.00").await;
    final_now(&ledger).await;
    assert_eq!(ledger.digest(Some(at)).await.expect("digest"), stored);
    assert_ne!(ledger.digest(None).await.expect("digest").root, stored.root);

    // A forged link does not verify.
    let mut forged = proof.clone();
    forged.chain[0].1 = forged.chain[0].1.replace("|2.00|", "|20.00|");
    assert!(!forged.verify());
}

#[tokio::test]
async fn the_rust_encoding_matches_the_database_encoding() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let a = open(&ledger, "10.00").await;
    let b = open(&ledger, "0").await;
    let metadata = ledger_domain::Metadata::parse(serde_json::json!({"b": [1, 2.50], "a": "x|y"}))
        .expect("metadata");
    let transfer = ledger
        .transfer(a, b, dec("1.5"), Some(metadata), None)
        .await
        .expect("transfer")
        .value;
    let client = database.connect().await.expect("connect");
    let in_sql: String = client
        .query_one(
            "select ledger.transfer_encoding(t) from ledger.transfers t where transfer_id = $1",
            &[&transfer.id.as_uuid()],
        )
        .await
        .expect("encoding")
        .get(0);
    let proof = {
        final_now(&ledger).await;
        ledger.proof(transfer.id, None).await.expect("proof")
    };
    assert_eq!(proof.chain[0].1, in_sql);
    assert!(
        in_sql.ends_with(r#"|{"a": "x|y", "b": [1, 2.5]}"#),
        "{in_sql}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_proofs_never_exhausts_the_pool_for_other_requests() {
    let (database, _) = TestDatabase::with_ledger().await;
    // A small pool and a short wait for a connection: a proof that held two
    // connections at once (hold and wait) left four concurrent ones each
    // waiting for a second connection nobody would free.
    let ledger = database.ledger_with(|config| {
        config.pool_size = 4;
        config.acquire_timeout = Duration::from_millis(500);
    });
    let a = open(&ledger, "10.00").await;
    let b = open(&ledger, "0").await;
    let proven = transfer(&ledger, a, b, "1.00").await;
    let at = final_now(&ledger).await;

    let proofs = (0..32).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.proof(proven.id, Some(at)).await })
    });
    let reads = (0..32).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.get_account(a).await })
    });
    let (proofs, reads) = tokio::join!(
        futures::future::join_all(proofs),
        futures::future::join_all(reads)
    );
    for proof in proofs {
        let proof = proof.expect("task").expect("every proof is served");
        assert!(proof.verify());
    }
    for read in reads {
        read.expect("task")
            .expect("reads are served beside the proofs");
    }
}
