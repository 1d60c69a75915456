//! The database itself enforces the invariants, whoever writes to it.

use ledger_testkit::{open, open_in, TestDatabase};

#[tokio::test]
async fn update_delete_and_truncate_of_the_log_fail_even_in_plain_sql() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let account = open(&ledger, "10.00").await;
    let client = database.connect().await.expect("connect");

    for statement in [
        "update ledger.transfers set amount = 1000000",
        "delete from ledger.transfers",
        "truncate ledger.transfers",
        "truncate ledger.transfers cascade",
        "delete from ledger.accounts",
        "update ledger.accounts set currency_code = 'EUR'",
    ] {
        let error = client
            .batch_execute(statement)
            .await
            .expect_err(&format!("{statement} must fail"));
        let constraint = error
            .as_db_error()
            .and_then(|db| db.constraint().map(str::to_owned));
        assert!(
            constraint
                .as_deref()
                .is_some_and(|c| c.ends_with("_append_only")),
            "{statement}: {error:?}"
        );
    }
    let balance: ledger_domain::Decimal = client
        .query_one("select ledger.balance($1)", &[&account.as_uuid()])
        .await
        .expect("balance")
        .get(0);
    assert_eq!(balance, ledger_testkit::dec("10.00"));
}

#[tokio::test]
async fn plain_sql_inserts_that_break_a_rule_are_rejected_by_name() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let a = open(&ledger, "10.00").await;
    let b = open(&ledger, "0").await;
    let euro = open_in(
        &ledger,
        ledger_domain::Currency::parse("EUR").expect("EUR"),
        "1.00",
    )
    .await;
    let closed = open(&ledger, "0").await;
    ledger.close_account(closed, None).await.expect("close");
    let closing = open(&ledger, "0").await;
    let unknown = ledger_domain::AccountId::generate();
    let client = database.connect().await.expect("connect");
    let closer = ledger_testkit::close_in_progress(&database, closing).await;

    // (source, seq, destination, currency, amount, the constraint that must fire)
    let cases = [
        (
            unknown,
            0,
            b,
            "USD",
            "1.00",
            "transfers_source_account_id_fkey",
        ),
        (
            a,
            0,
            unknown,
            "USD",
            "1.00",
            "transfers_destination_account_id_fkey",
        ),
        (closed, 0, b, "USD", "1.00", "transfers_source_open"),
        (a, 0, closed, "USD", "1.00", "transfers_destination_open"),
        (closing, 0, b, "USD", "1.00", "transfers_source_not_closing"),
        (
            a,
            0,
            closing,
            "USD",
            "1.00",
            "transfers_destination_not_closing",
        ),
        (
            a,
            0,
            b,
            "USD",
            "1000000000000000.01",
            "transfers_amount_ceiling",
        ),
        (a, 0, b, "USD", "11.00", "transfers_no_overdraft"),
        (a, 1, b, "USD", "1.00", "transfers_sequence_contiguous"),
        (a, 0, b, "USD", "0.001", "transfers_amount_scale"),
        (a, 0, b, "USD", "0", "transfers_amount_positive"),
        (a, 0, b, "USD", "-5", "transfers_amount_positive"),
        (a, 0, a, "USD", "1.00", "transfers_distinct_accounts"),
        (a, 0, euro, "USD", "1.00", "transfers_currency_match"),
    ];
    for (source, seq, destination, currency, amount, constraint) in cases {
        let error = client
            .execute(
                "insert into ledger.transfers (source_account_id, source_seq, transfer_id,
                     destination_account_id, currency_code, amount)
                 values ($1, $2, gen_random_uuid(), $3, $4, $5::text::numeric)",
                &[
                    &source.as_uuid(),
                    &(seq as i64),
                    &destination.as_uuid(),
                    &currency,
                    &amount,
                ],
            )
            .await
            .expect_err(constraint);
        let violated = error.as_db_error().and_then(|db| db.constraint());
        assert_eq!(violated, Some(constraint), "{error:?}");
    }
    let count: i64 = client
        .query_one("select count(*) from ledger.transfers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2, "only the two opening deposits exist");
    closer.batch_execute("rollback").await.expect("rollback");
}
