//! Money is exact: decimal arithmetic end to end, scale per currency.

use ledger_domain::{Currency, DomainError};
use ledger_store::StoreError;

use ledger_testkit::{assert_invariants, balance, dec, open, open_in, transfer, TestDatabase};

#[tokio::test]
async fn ten_transfers_of_a_tenth_move_exactly_one() {
    let (_database, ledger, [source, destination]) =
        TestDatabase::with_accounts(["1.00", "0"]).await;

    for _ in 0..10 {
        transfer(&ledger, source, destination, "0.1").await;
    }

    assert_eq!(balance(&ledger, destination).await, dec("1.00"));
    assert_eq!(balance(&ledger, source).await, dec("0"));
    assert_invariants(&ledger).await;
}

#[tokio::test]
async fn an_amount_with_more_decimals_than_the_currency_allows_is_rejected() {
    let (database, ledger) = TestDatabase::with_ledger().await;
    let yen = Currency::parse("JPY").expect("JPY");
    let dinar = Currency::parse("KWD").expect("KWD");
    let usd_account = open(&ledger, "10.00").await;
    let yen_account = open_in(&ledger, yen, "1000").await;
    let dinar_account = open_in(&ledger, dinar, "1.000").await;
    let before = database.snapshot().await;

    let cases = [
        (usd_account, "0.001", "USD has 2 decimals"),
        (yen_account, "0.5", "JPY has no decimals"),
        (dinar_account, "0.0001", "KWD has 3 decimals"),
    ];
    for (account, amount, why) in cases {
        let result = ledger.withdraw(account, dec(amount), None, None).await;
        assert!(
            matches!(
                result,
                Err(StoreError::Domain(DomainError::BadScale { .. }))
            ),
            "{why}: {result:?}"
        );
    }
    assert_eq!(database.snapshot().await, before);

    // Trailing zeros are not extra precision.
    ledger
        .withdraw(dinar_account, dec("0.5000"), None, None)
        .await
        .expect("0.5000 KWD is 0.500 KWD");
    assert_eq!(balance(&ledger, dinar_account).await, dec("0.500"));
}

#[tokio::test]
async fn amounts_are_stored_at_the_currency_scale() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let account = open(&ledger, "12.5").await;
    let transfer = ledger
        .withdraw(account, dec("2"), None, None)
        .await
        .expect("withdrawal")
        .value;
    assert_eq!(transfer.amount.to_string(), "2.00");
    assert_eq!(transfer.source_balance_after.to_string(), "10.50");
}

#[tokio::test]
async fn every_domain_currency_is_in_the_database_with_the_same_scale() {
    let (database, _ledger) = TestDatabase::with_ledger().await;
    let client = database.connect().await.expect("connect");
    let rows = client
        .query(
            "select currency_code, numeric_code, minor_units from ledger.currencies",
            &[],
        )
        .await
        .expect("currencies");
    assert_eq!(rows.len(), ledger_domain::CURRENCIES.len());
    for row in rows {
        let code: String = row.get(0);
        let currency = Currency::parse(&code).expect("database currency known to the domain");
        assert_eq!(
            i32::from(row.get::<_, i16>(1)),
            i32::from(currency.numeric_code()),
            "{code}"
        );
        assert_eq!(
            i64::from(row.get::<_, i16>(2)),
            i64::from(currency.minor_units()),
            "{code}"
        );
    }
}
