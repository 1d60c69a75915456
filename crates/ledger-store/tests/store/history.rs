//! An account's history: both directions, newest first, paged, windowed.

use chrono::{DateTime, Utc};
use ledger_store::{Direction, HistoryQuery};

use ledger_testkit::{dec, transfer, TestDatabase};

#[tokio::test]
async fn history_lists_both_directions_newest_first_page_by_page() {
    let (_database, ledger, [account, other]) =
        TestDatabase::with_accounts(["10.00", "10.00"]).await;
    for i in 0..5 {
        let amount = dec(&format!("{}.00", i + 1));
        if i % 2 == 0 {
            ledger
                .transfer(account, other, amount, None, None)
                .await
                .expect("out");
        } else {
            ledger
                .transfer(other, account, amount, None, None)
                .await
                .expect("in");
        }
    }

    let mut entries = Vec::new();
    let mut cursor = None;
    loop {
        let query = HistoryQuery {
            cursor: cursor.clone(),
            limit: 2,
            ..HistoryQuery::default()
        };
        let page = ledger.history(account, &query).await.expect("page");
        assert!(page.items.len() <= 2);
        entries.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    // Five transfers plus the opening deposit, newest first.
    let amounts: Vec<String> = entries
        .iter()
        .map(|e| e.transfer.amount.to_string())
        .collect();
    assert_eq!(amounts, ["5.00", "4.00", "3.00", "2.00", "1.00", "10.00"]);
    let directions: Vec<Direction> = entries.iter().map(|e| e.direction).collect();
    use Direction::{In, Out};
    assert_eq!(directions, [Out, In, Out, In, Out, In]);
    // Running balance after each entry, as the ledger computed it.
    let after: Vec<String> = entries
        .iter()
        .map(|e| e.balance_after.to_string())
        .collect();
    assert_eq!(after, ["7.00", "12.00", "8.00", "11.00", "9.00", "10.00"]);
    let times: Vec<DateTime<Utc>> = entries.iter().map(|e| e.transfer.created_at).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]));
}

#[tokio::test]
async fn history_can_be_limited_to_a_time_window() {
    let (_database, ledger, [account, other]) = TestDatabase::with_accounts(["10.00", "0"]).await;
    let first = transfer(&ledger, account, other, "1.00").await;
    let second = transfer(&ledger, account, other, "2.00").await;
    transfer(&ledger, account, other, "3.00").await;

    let window = HistoryQuery {
        from: Some(first.created_at),
        to: Some(second.created_at),
        limit: 10,
        ..HistoryQuery::default()
    };
    let page = ledger.history(account, &window).await.expect("page");
    let ids: Vec<_> = page.items.iter().map(|e| e.transfer.id).collect();
    assert_eq!(ids, [second.id, first.id]);

    let extreme = HistoryQuery {
        from: Some(DateTime::<Utc>::MIN_UTC),
        to: Some(DateTime::<Utc>::MAX_UTC),
        limit: 10,
        ..HistoryQuery::default()
    };
    assert_eq!(
        ledger
            .history(account, &extreme)
            .await
            .expect("page")
            .items
            .len(),
        4
    );
    assert_eq!(
        ledger
            .balance_at(account, DateTime::<Utc>::MIN_UTC)
            .await
            .expect("as-of")
            .balance,
        dec("0")
    );
}
