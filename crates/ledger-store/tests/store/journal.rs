//! The verifiable journal: chains, the journal tree, digests, inclusion and
//! consistency proofs, and `verify`.

use std::time::Duration;

use ledger_domain::journal::{leaf_hash, merkle_root, Hash, TreeSizes};
use ledger_domain::AccountId;
use ledger_store::{BatchLeg, ConsistencyProof, Digest, Ledger};
use ledger_testkit::{dec, open_many, transfer, transfer_times, TestDatabase};

/// The tamperer's edit: a note in the metadata.
const EDITED: &str = r#"metadata = '{"note": "edited"}'"#;

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
    let (_database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    for _ in 0..5 {
        transfer(&ledger, a, b, "1.00").await;
    }

    final_now(&ledger).await;
    ledger.sequence_journal().await.expect("sequence");

    let report = ledger.verify().await.expect("verify");

    assert_eq!(report.violations, vec![]);
    assert_eq!(report.rows_checked, 6);
    assert_eq!(report.chains_checked, 2, "the system account's and a's");
    assert_eq!(
        report.leaves_checked, 6,
        "every row is final, so in the tree"
    );
}

#[tokio::test]
async fn verify_names_the_row_a_superuser_tampered_with() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    let transfers = transfer_times(&ledger, 4, a, b, "1.00").await;
    let target = &transfers[2];

    // Bypass the append-only triggers, as only a superuser can.
    database.edit_transfer(target.id, EDITED).await;

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
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    let transfer = transfer(&ledger, a, b, "4.00").await;
    database.edit_transfer(transfer.id, "amount = 3.00").await;

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
    let (_database, ledger, [a, b, c]) = TestDatabase::with_accounts(["10.00", "0", "3.00"]).await;
    let proven = transfer(&ledger, a, b, "2.00").await;
    transfer(&ledger, a, c, "1.00").await;
    transfer(&ledger, c, b, "1.00").await;

    let at = final_now(&ledger).await;
    let stored = ledger.digest(Some(at)).await.expect("digest");
    let proof = ledger.proof(proven.id, Some(at)).await.expect("proof");
    assert_eq!(proof.digest, stored);
    assert_eq!(
        stored.tree_size, 5,
        "two opening deposits and three transfers"
    );
    assert!(
        proof.verify(&stored.root),
        "the proof leads to the stored root"
    );

    // More activity later does not change the digest as of `at`, and the
    // proof against the stored digest stays the same size.
    transfer(&ledger, b, a, "1.00").await;
    final_now(&ledger).await;
    assert_eq!(ledger.digest(Some(at)).await.expect("digest"), stored);
    assert_ne!(ledger.digest(None).await.expect("digest").root, stored.root);
    assert_eq!(
        ledger.proof(proven.id, Some(at)).await.expect("proof"),
        proof
    );

    // A forged row does not verify.
    let mut forged = proof.clone();
    forged.encoding = forged.encoding.replace("|2.00|", "|20.00|");
    assert!(!forged.verify(&stored.root));
}

#[tokio::test]
async fn the_rust_encoding_matches_the_database_encoding() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
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
    assert_eq!(proof.encoding, in_sql);
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
    let [a, b] = open_many(&ledger, ["10.00", "0"]).await;
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
        assert!(proof.verify(&proof.digest.root));
    }
    for read in reads {
        read.expect("task")
            .expect("reads are served beside the proofs");
    }
}

/// The digest once every row so far is final, and the consistency proof
/// that it extends `stored`.
async fn extension_of(ledger: &Ledger, stored: &Digest) -> (Digest, ConsistencyProof) {
    final_now(ledger).await;
    let later = ledger.digest(None).await.expect("digest");
    let proof = ledger
        .consistency(TreeSizes::new(stored.tree_size, later.tree_size).expect("sizes"))
        .await
        .expect("consistency");
    (later, proof)
}

/// `count` transfers of 0.01 from `a` to `b`, in batches of at most 1,000.
async fn many_transfers(ledger: &Ledger, a: AccountId, b: AccountId, count: usize) {
    let mut left = count;
    while left > 0 {
        let legs = (0..left.min(1_000))
            .map(|_| BatchLeg {
                source: a,
                destination: b,
                amount: dec("0.01"),
                metadata: None,
            })
            .collect::<Vec<_>>();
        left -= legs.len();
        ledger.batch(legs, None).await.expect("batch");
    }
}

/// Every leaf, recomputed from the rows alone in the tree's order.
async fn leaves_from_rows(database: &TestDatabase) -> Vec<Hash> {
    let client = database.connect().await.expect("connect");
    client
        .query(
            "select row_hash from ledger.transfers
              where created_at < (select max(created_at) from ledger.journal_leaves)
                 or (source_account_id, source_seq) in
                    (select source_account_id, source_seq from ledger.journal_leaves)
              order by created_at, source_account_id, source_seq",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| {
            let hash: Vec<u8> = row.get(0);
            leaf_hash(&hash.try_into().expect("32 bytes"))
        })
        .collect()
}

#[tokio::test]
async fn the_tree_built_from_stored_nodes_is_the_tree_of_the_rows_in_order() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["100.00", "0"]).await;
    // Enough rows for stored nodes at levels 6 to 8, in batches whose rows
    // share a created_at (ordered by seq) and single transfers between.
    many_transfers(&ledger, a, b, 300).await;
    for _ in 0..3 {
        ledger
            .transfer(b, a, dec("0.01"), None, None)
            .await
            .expect("transfer");
    }
    final_now(&ledger).await;

    let digest = ledger.digest(None).await.expect("digest");
    let leaves = leaves_from_rows(&database).await;

    assert_eq!(
        digest.tree_size, 304,
        "an opening deposit and 303 transfers"
    );
    assert_eq!(leaves.len(), 304);
    assert_eq!(
        digest.root,
        ledger_domain::journal::to_hex(&merkle_root(&leaves))
    );
    for first in [1, 63, 64, 65, 128, 200, 303, 304] {
        let proof = ledger
            .consistency(TreeSizes::new(first, 304).expect("sizes"))
            .await
            .expect("consistency");
        assert_eq!(
            proof.first.root,
            ledger_domain::journal::to_hex(&merkle_root(&leaves[..first as usize]))
        );
        assert!(proof.verify(&proof.first.root), "{first} → 304");
    }
    assert_eq!(
        ledger.verify().await.expect("verify").violations,
        vec![],
        "stored nodes agree with the leaves"
    );
}

#[tokio::test]
async fn a_later_digest_extends_an_earlier_one_and_the_proof_stays_small() {
    let (_database, ledger, [a, b]) = TestDatabase::with_accounts(["1000.00", "0"]).await;
    let first = transfer(&ledger, a, b, "1.00").await;
    let at = final_now(&ledger).await;
    let stored = ledger.digest(Some(at)).await.expect("digest");
    let early = ledger.proof(first.id, None).await.expect("proof");

    many_transfers(&ledger, a, b, 2_000).await;
    let (later, proof) = extension_of(&ledger, &stored).await;

    assert_eq!(later.tree_size, stored.tree_size + 2_000);
    assert!(proof.verify(&stored.root));
    assert_eq!(proof.second.root, later.root);
    // The first row of a chain with 2,000 later rows: a proof of a dozen
    // hashes, not of 2,000 links.
    let late = ledger.proof(first.id, None).await.expect("proof");
    assert!(late.verify(&later.root));
    assert!(late.audit_path.len() <= 12, "{}", late.audit_path.len());
    assert!(early.audit_path.len() <= 2);

    // A digest that is not final yet is refused.
    let beyond = ledger
        .consistency(TreeSizes::new(1, later.tree_size + 1_000).expect("sizes"))
        .await;
    assert!(
        matches!(
            beyond,
            Err(ledger_store::StoreError::Domain(
                ledger_domain::DomainError::NotYetFinal { .. }
            ))
        ),
        "{beyond:?}"
    );
}

#[tokio::test]
async fn a_row_edited_with_its_chain_rebuilt_is_named_by_verify_and_fails_its_proof() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    let transfers = transfer_times(&ledger, 4, a, b, "1.00").await;
    let at = final_now(&ledger).await;
    let stored = ledger.digest(Some(at)).await.expect("digest");
    let victim = &transfers[1];

    database.edit_transfer_and_rechain(victim.id, EDITED).await;

    let report = ledger.verify().await.expect("verify");
    let first = report.violations.first().expect("a violation");
    assert_eq!(
        first.rule, "journal_leaf_mismatch",
        "{:?}",
        report.violations
    );
    assert_eq!(
        first.row,
        Some((a.as_uuid(), victim.source_seq, victim.id.as_uuid()))
    );
    assert!(
        report.violations.iter().all(|v| v.rule != "hash_mismatch"),
        "the chains were rebuilt: {:?}",
        report.violations
    );
    // The auditor's stored digest: the edited row's proof no longer leads
    // to it.
    let proof = ledger.proof(victim.id, Some(at)).await.expect("proof");
    assert!(proof.encoding.contains("edited"));
    assert!(!proof.verify(&stored.root));
}

#[tokio::test]
async fn a_rebuilt_tree_fails_the_consistency_proof_from_a_digest_stored_before() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["100.00", "0"]).await;
    many_transfers(&ledger, a, b, 100).await;
    let victim = transfer(&ledger, a, b, "1.00").await;
    final_now(&ledger).await;
    let stored = ledger.digest(None).await.expect("digest");
    many_transfers(&ledger, a, b, 100).await;

    // The tamperer edits a row, rebuilds its chain and the whole tree.
    database.edit_transfer_and_rechain(victim.id, EDITED).await;
    database
        .as_superuser("delete from ledger.journal_leaves; delete from ledger.journal_nodes;")
        .await;
    let (_later, proof) = extension_of(&ledger, &stored).await;

    assert_ne!(proof.first.root, stored.root, "the old tree was rewritten");
    assert!(!proof.verify(&stored.root));
    // Inside the database everything agrees again: only a digest kept
    // outside it shows the rewrite.
    assert_eq!(ledger.verify().await.expect("verify").violations, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequencers_racing_each_other_and_the_writers_build_one_tree() {
    let (_database, ledger, [a, b]) = TestDatabase::with_accounts(["100.00", "100.00"]).await;
    let writers = [(a, b), (b, a)].map(|(from, to)| {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                ledger
                    .transfer(from, to, dec("0.01"), None, None)
                    .await
                    .expect("transfer");
            }
        })
    });
    let sequencers = (0..3).map(|_| {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                ledger.advance_horizon().await.expect("horizon");
                ledger.sequence_journal().await.expect("sequence");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    });
    for task in writers.into_iter().chain(sequencers) {
        task.await.expect("task");
    }
    final_now(&ledger).await;
    ledger.sequence_journal().await.expect("sequence");

    let report = ledger.verify().await.expect("verify");
    assert_eq!(report.violations, vec![]);
    assert_eq!(report.leaves_checked, 202, "two openings, 200 transfers");
}

#[tokio::test]
async fn plain_sql_leaves_that_break_the_tree_are_refused_by_name() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    final_now(&ledger).await;
    ledger.sequence_journal().await.expect("sequence");
    let late = ledger
        .transfer(a, b, dec("1.00"), None, None)
        .await
        .expect("a row that is not final yet")
        .value;
    let client = database.connect().await.expect("connect");
    let leaf = |index: i64, hash: &str| {
        format!(
            "insert into ledger.journal_leaves
                 (leaf_index, source_account_id, source_seq, created_at, leaf_hash)
             select {index}, source_account_id, source_seq, created_at, {hash}
               from ledger.transfers where transfer_id = '{}'",
            late.id
        )
    };
    let right_hash = "sha256('\\x00'::bytea || row_hash)";
    let cases = [
        (
            leaf(5, right_hash),
            "journal_leaves_contiguous",
            "a gap after leaf 0",
        ),
        (
            leaf(1, "sha256('forged')"),
            "journal_leaves_row_hash",
            "not the hash of its row",
        ),
        (
            leaf(1, right_hash),
            "journal_leaves_final",
            "the row is not final",
        ),
    ];
    for (sql, constraint, why) in cases {
        let err = client.batch_execute(&sql).await.expect_err(why);
        assert_eq!(
            err.as_db_error().and_then(|db| db.constraint()),
            Some(constraint),
            "{why}: {err}"
        );
    }
}
