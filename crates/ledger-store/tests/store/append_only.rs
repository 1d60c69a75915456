//! The database itself enforces the invariants, whoever writes to it.

use std::time::Duration;

use ledger_domain::AccountId;
use ledger_store::{Constraint, HoldExpiry, NewHold};
use ledger_testkit::{close_in_progress, dec, eur, open, open_in, transfer, usd, TestDatabase};

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
    assert_eq!(balance, dec("10.00"));
}

/// A plain-SQL write that must be refused by the named constraint, and why.
struct Refusal {
    constraint: &'static str,
    why: &'static str,
    /// Run in a transaction of its own, rolled back afterwards.
    sql: String,
}

/// A transfer row as a client past the store would insert it.
fn insert_transfer(
    source: impl std::fmt::Display,
    seq: &str,
    destination: impl std::fmt::Display,
    currency: &str,
    amount: &str,
) -> String {
    format!(
        "insert into ledger.transfers (source_account_id, source_seq, transfer_id,
             destination_account_id, currency_code, amount)
         values ('{source}', {seq}, gen_random_uuid(), '{destination}', '{currency}', {amount})"
    )
}

/// A row of another kind (sql/V6), with its extra `columns` and `values`.
fn insert_row(
    source: impl std::fmt::Display,
    seq: i64,
    destination: impl std::fmt::Display,
    amount: &str,
    columns: &str,
    values: &str,
) -> String {
    format!(
        "insert into ledger.transfers (source_account_id, source_seq, transfer_id,
             destination_account_id, currency_code, amount, {columns})
         values ('{source}', {seq}, gen_random_uuid(), '{destination}', 'USD', {amount}, {values})"
    )
}

#[tokio::test]
async fn plain_sql_inserts_that_break_a_rule_are_rejected_by_name() {
    let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    let euro = open_in(&ledger, eur(), "1.00").await;
    let closed = open(&ledger, "0").await;
    ledger.close_account(closed, None).await.expect("close");
    let closing = open(&ledger, "0").await;
    let unknown = AccountId::generate();
    // Its first row (seq 0) is a's opening deposit.
    let system = AccountId::system(usd());
    // Holds and a transfer to reverse (sql/V6): out of `holder`, seq 0-2.
    let holder = open(&ledger, "10.00").await;
    let pending = place_hold(&ledger, holder, b, "5", HoldExpiry::Default).await;
    let lapsed = place_hold(
        &ledger,
        holder,
        b,
        "1",
        HoldExpiry::After(Duration::from_secs(1)),
    )
    .await;
    let paid = transfer(&ledger, holder, b, "1").await.id;
    let next = 3; // holder's next sequence number
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let client = database.connect().await.expect("connect");
    let closer = close_in_progress(&database, closing).await;
    let before = database.snapshot().await;

    let refusal = |constraint, why, sql| Refusal {
        constraint,
        why,
        sql,
    };
    let cases = [
        refusal(
            "transfers_source_account_id_fkey",
            "no such source",
            insert_transfer(unknown, "0", b, "USD", "1.00"),
        ),
        refusal(
            "transfers_destination_account_id_fkey",
            "no such destination",
            insert_transfer(a, "0", unknown, "USD", "1.00"),
        ),
        refusal(
            "transfers_source_open",
            "the source is closed",
            insert_transfer(closed, "0", b, "USD", "1.00"),
        ),
        refusal(
            "transfers_destination_open",
            "the destination is closed",
            insert_transfer(a, "0", closed, "USD", "1.00"),
        ),
        refusal(
            "transfers_source_not_closing",
            "a close of the source is in progress",
            insert_transfer(closing, "0", b, "USD", "1.00"),
        ),
        refusal(
            "transfers_destination_not_closing",
            "a close of the destination is in progress",
            insert_transfer(a, "0", closing, "USD", "1.00"),
        ),
        refusal(
            "transfers_amount_ceiling",
            "above 10^15",
            insert_transfer(a, "0", b, "USD", "1000000000000000.01"),
        ),
        refusal(
            "transfers_no_overdraft",
            "more than a holds",
            insert_transfer(a, "0", b, "USD", "11.00"),
        ),
        refusal(
            "transfers_sequence_contiguous",
            "seq 1 without a seq 0",
            insert_transfer(a, "1", b, "USD", "1.00"),
        ),
        refusal(
            "transfers_amount_scale",
            "a tenth of a cent",
            insert_transfer(a, "0", b, "USD", "0.001"),
        ),
        refusal(
            "transfers_amount_positive",
            "zero moves nothing",
            insert_transfer(a, "0", b, "USD", "0"),
        ),
        refusal(
            "transfers_amount_positive",
            "negative",
            insert_transfer(a, "0", b, "USD", "-5"),
        ),
        refusal(
            "transfers_distinct_accounts",
            "to itself",
            insert_transfer(a, "0", a, "USD", "1.00"),
        ),
        refusal(
            "transfers_currency_match",
            "USD into a EUR account",
            insert_transfer(a, "0", euro, "USD", "1.00"),
        ),
        refusal(
            "transfers_pkey",
            "the source's seq 0 is taken: a lost race",
            insert_transfer(system, "0", b, "USD", "1.00"),
        ),
        refusal(
            "transfers_batch_time_order",
            "a batch time before the source's previous row",
            format!(
                "select set_config('ledger.batch_at', '2000-01-01T00:00:00Z', true);
                 {}",
                insert_transfer(system, "1", b, "USD", "1.00")
            ),
        ),
        refusal(
            "transfers_overdraft_limit_non_negative",
            "a negative line",
            insert_row(holder, next, system, "0", "kind, source_overdraft_limit", "'overdraft_change', -1"),
        ),
        refusal(
            "accounts_overdraft_limit_non_negative",
            "an account opened with a negative line",
            "insert into ledger.accounts (account_id, currency_code, overdraft_limit)
             values (gen_random_uuid(), 'USD', -1)"
                .to_owned(),
        ),
        refusal(
            "transfers_hold_expires_after_placement",
            "a hold that expired before it was placed",
            insert_row(holder, next, b, "0", "kind, held_amount, hold_expires_at", "'hold', 1, '2000-01-01Z'"),
        ),
        refusal(
            "transfers_hold_id_fkey",
            "a capture of no hold",
            insert_row(holder, next, b, "1", "kind, hold_id", "'capture', gen_random_uuid()"),
        ),
        refusal(
            "transfers_hold_pending",
            "a capture after the hold's expiry",
            insert_row(holder, next, b, "1", "kind, hold_id", &format!("'capture', '{lapsed}'")),
        ),
        refusal(
            "transfers_capture_within_hold",
            "a capture of more than the hold",
            insert_row(holder, next, b, "5.01", "kind, hold_id", &format!("'capture', '{pending}'")),
        ),
        refusal(
            "transfers_reverses_transfer_id_fkey",
            "a reversal of no transfer",
            insert_row(b, 0, holder, "1", "kind, reverses_transfer_id", "'reversal', gen_random_uuid()"),
        ),
        refusal(
            "transfers_reversal_within_original",
            "a reversal of more than the original",
            insert_row(b, 0, holder, "1.01", "kind, reverses_transfer_id", &format!("'reversal', '{paid}'")),
        ),
        refusal(
            "hold_resolutions_pkey",
            "a hold resolved twice",
            format!(
                "insert into ledger.hold_resolutions (hold_id, outcome) values ('{pending}', 'voided');
                 insert into ledger.hold_resolutions (hold_id, outcome) values ('{pending}', 'voided')"
            ),
        ),
        refusal(
            "hold_resolutions_hold_id_fkey",
            "a resolution of no hold",
            "insert into ledger.hold_resolutions (hold_id, outcome)
             values (gen_random_uuid(), 'voided')"
                .to_owned(),
        ),
        refusal(
            "hold_resolutions_hold_pending",
            "a void after the expiry",
            format!("insert into ledger.hold_resolutions (hold_id, outcome) values ('{lapsed}', 'voided')"),
        ),
        refusal(
            "accounts_pkey",
            "the id is taken",
            format!(
                "insert into ledger.accounts (account_id, currency_code) values ('{a}', 'USD')"
            ),
        ),
        refusal(
            "accounts_currency_code_fkey",
            "not a currency of ledger.currencies",
            "insert into ledger.accounts (account_id, currency_code)
             values (gen_random_uuid(), 'ZZZ')"
                .to_owned(),
        ),
    ];
    for case in &cases {
        client.batch_execute("begin").await.expect("begin");
        let error = client
            .batch_execute(&case.sql)
            .await
            .expect_err(case.constraint);
        client.batch_execute("rollback").await.expect("rollback");
        let violated = error.as_db_error().and_then(|db| db.constraint());
        assert_eq!(violated, Some(case.constraint), "{}: {error:?}", case.why);
    }

    // Every name the store maps is fired by some case above.
    for constraint in Constraint::ALL {
        assert!(
            cases
                .iter()
                .any(|case| case.constraint == constraint.name()),
            "no plain-SQL write fires {}, which the store maps",
            constraint.name()
        );
    }
    assert_eq!(database.snapshot().await, before, "nothing was written");
    closer.batch_execute("rollback").await.expect("rollback");
}

/// A hold placed through the store.
async fn place_hold(
    ledger: &ledger_store::Ledger,
    source: AccountId,
    destination: AccountId,
    amount: &str,
    expiry: HoldExpiry,
) -> uuid::Uuid {
    let request = NewHold {
        source,
        destination,
        amount: dec(amount),
        expiry,
        metadata: None,
    };
    let hold = ledger.place_hold(request, None).await.expect("hold placed");
    hold.value.id.as_uuid()
}
