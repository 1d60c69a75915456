//! `ledger verify`: recomputes the journal and names the first row that
//! disagrees, with its exit status.

use std::fmt::Display;
use std::process::Command;

use ledger_testkit::{transfer_times, TestDatabase};

fn run_verify(database: &TestDatabase) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .arg("verify")
        .env("DATABASE_URL", database.url())
        .env("RUST_LOG", "error")
        .output()
        .expect("ledger verify runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), text)
}

/// Runs `ledger verify`, which must fail and name `rule` and the transfer
/// `id` first; returns the report.
fn assert_first_violation(database: &TestDatabase, rule: &str, id: impl Display) -> String {
    let (ok, report) = run_verify(database);
    assert!(!ok, "verify must fail: {report}");
    let first = report.lines().nth(1).unwrap_or_default();
    assert!(first.contains(rule), "{report}");
    assert!(first.contains(&id.to_string()), "{report}");
    report
}

#[tokio::test]
async fn verify_passes_on_an_intact_ledger_and_names_a_tampered_row() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    let transfers = transfer_times(&ledger, 3, a, b, "1.00").await;

    let (ok, report) = run_verify(&database);
    assert!(ok, "{report}");
    assert!(report.contains("violations: 0"), "{report}");

    let tampered = &transfers[1];
    database
        .edit_transfer(tampered.id, "source_balance_after = 1000")
        .await;

    let report = assert_first_violation(&database, "hash_mismatch", tampered.id);
    let first = report.lines().nth(1).unwrap_or_default();
    assert!(first.contains("seq 1"), "{report}");
}

#[tokio::test]
async fn verify_reports_a_closed_account_that_holds_money_or_moved_after_its_close() {
    let (database, ledger, [payer, emptied]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    ledger.close_account(emptied, None).await.expect("close");
    let (ok, report) = run_verify(&database);
    assert!(ok, "{report}");

    // What the close protocol prevents, written past every guard: a
    // transfer into the closed account, dated after its close.
    database
        .as_superuser(&format!(
            "insert into ledger.transfers (source_account_id, source_seq, transfer_id,
                 destination_account_id, currency_code, amount, source_outgoing_total,
                 source_balance_after, source_is_system, created_at, row_hash)
             values ('{payer}', 0, gen_random_uuid(), '{emptied}', 'USD', 1.00,
                     1.00, 9.00, false, clock_timestamp(), sha256('forged'));"
        ))
        .await;

    let (ok, report) = run_verify(&database);
    assert!(!ok, "verify must fail: {report}");
    assert!(report.contains("closed_with_balance"), "{report}");
    assert!(report.contains("transfer_after_close"), "{report}");
    assert!(report.contains(&emptied.to_string()), "{report}");
}

#[tokio::test]
async fn verify_names_a_row_edited_with_its_chain_rebuilt_by_its_journal_leaf() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    // The victim and a later row of its chain.
    let victim = &transfer_times(&ledger, 2, a, b, "1.00").await[0];
    // Make every row final and put it in the journal tree.
    let written = chrono::Utc::now();
    while ledger.advance_horizon().await.expect("horizon") <= Some(written) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(ledger.sequence_journal().await.expect("sequence"), 3);
    let (ok, report) = run_verify(&database);
    assert!(ok, "{report}");
    assert!(report.contains("3 journal leaves"), "{report}");

    // Edited, and every hash of its chain recomputed: the chains agree
    // again, the journal tree does not.
    database
        .edit_transfer_and_rechain(victim.id, "source_balance_after = 1000")
        .await;

    let report = assert_first_violation(&database, "journal_leaf_mismatch", victim.id);
    assert!(!report.contains("hash_mismatch"), "{report}");
}
