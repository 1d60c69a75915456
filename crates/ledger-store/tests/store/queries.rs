//! Finding transfers (`list_transfers`) and statements (`open_statement`):
//! only final rows unless asked otherwise, every filter, running balances
//! that end where the as-of balance does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger_domain::{DomainError, Metadata};
use ledger_store::{Direction, Ledger, StoreError, Transfer, TransferQuery};
use ledger_testkit::{dec, eur, open_in, open_many, transfer, TestDatabase};
use serde_json::json;

/// Advances the horizon until `at` is behind it (no ticker runs in store
/// tests: the horizon moves only when a test moves it).
async fn wait_until_final(ledger: &Ledger, at: DateTime<Utc>) {
    for _ in 0..200 {
        if ledger
            .advance_horizon()
            .await
            .expect("horizon")
            .is_some_and(|h| h > at)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the horizon never passed {at}");
}

fn query() -> TransferQuery {
    TransferQuery {
        limit: 100,
        ..TransferQuery::default()
    }
}

async fn listed(ledger: &Ledger, query: &TransferQuery) -> Vec<Transfer> {
    ledger.list_transfers(query).await.expect("a page").items
}

#[tokio::test]
async fn only_final_transfers_are_listed_unless_the_latest_are_asked_for() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let [a, b] = open_many(&ledger, ["100.00", "0"]).await;
    let moved = transfer(&ledger, a, b, "10.00").await;

    // No horizon has been taken since: nothing is final yet.
    assert!(listed(&ledger, &query()).await.is_empty());
    let latest = listed(
        &ledger,
        &TransferQuery {
            latest: true,
            ..query()
        },
    )
    .await;
    assert_eq!(latest.first().map(|t| t.id), Some(moved.id));

    wait_until_final(&ledger, moved.created_at).await;
    let listed_final = listed(&ledger, &query()).await;
    assert_eq!(listed_final.first().map(|t| t.id), Some(moved.id));
    assert_eq!(
        listed_final.len(),
        2,
        "the transfer and a's opening deposit"
    );
}

#[tokio::test]
async fn every_filter_keeps_only_the_transfers_it_names() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let [a, b, c] = open_many(&ledger, ["100.00", "100.00", "0"]).await;
    let euro = open_in(&ledger, eur(), "5.00").await;
    let tagged = |value: serde_json::Value| Some(Metadata::parse(value).expect("metadata"));
    let a_to_b = ledger
        .transfer(
            a,
            b,
            dec("1.00"),
            tagged(json!({"order": "A-1", "shop": "x"})),
            None,
        )
        .await
        .expect("transfer")
        .value;
    let b_to_c = ledger
        .transfer(
            b,
            c,
            dec("2.00"),
            tagged(json!({"order": "A-1", "n": 1})),
            None,
        )
        .await
        .expect("transfer")
        .value;
    let c_to_a = transfer(&ledger, c, a, "0.50").await;
    wait_until_final(&ledger, c_to_a.created_at).await;

    let ids = |transfers: Vec<Transfer>| transfers.iter().map(|t| t.id).collect::<Vec<_>>();
    let cases = [
        (
            TransferQuery {
                account: Some(c),
                ..query()
            },
            vec![c_to_a.id, b_to_c.id],
            "either side of c",
        ),
        (
            TransferQuery {
                metadata: Some(json!({"order": "A-1"})),
                ..query()
            },
            vec![b_to_c.id, a_to_b.id],
            "one key",
        ),
        (
            TransferQuery {
                metadata: Some(json!({"order": "A-1", "shop": "x"})),
                ..query()
            },
            vec![a_to_b.id],
            "every key must match",
        ),
        (
            TransferQuery {
                metadata: Some(json!({"n": "1"})),
                ..query()
            },
            vec![],
            "a string never equals a number",
        ),
        (
            TransferQuery {
                from: Some(b_to_c.created_at),
                to: Some(b_to_c.created_at),
                ..query()
            },
            vec![b_to_c.id],
            "a window of one instant",
        ),
        (
            TransferQuery {
                currency: Some(eur()),
                ..query()
            },
            vec![
                listed(
                    &ledger,
                    &TransferQuery {
                        account: Some(euro),
                        ..query()
                    },
                )
                .await[0]
                    .id,
            ],
            "one currency: the euro account's opening deposit",
        ),
    ];
    for (query, expected, why) in cases {
        assert_eq!(ids(listed(&ledger, &query).await), expected, "{why}");
    }
}

#[tokio::test]
async fn pages_follow_each_other_without_gaps_or_repeats_and_foreign_cursors_are_refused() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let [a, b] = open_many(&ledger, ["100.00", "0"]).await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(transfer(&ledger, a, b, "1.00").await.id);
    }
    wait_until_final(&ledger, Utc::now()).await;

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = ledger
            .list_transfers(&TransferQuery {
                account: Some(b),
                limit: 2,
                cursor,
                ..query()
            })
            .await
            .expect("a page");
        seen.extend(page.items.iter().map(|t| t.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(seen, made);

    let accounts_cursor = ledger
        .list_accounts(None, 1)
        .await
        .expect("a page")
        .next_cursor
        .expect("more than one account");
    let refused = ledger
        .list_transfers(&TransferQuery {
            cursor: Some(accounts_cursor),
            ..query()
        })
        .await;
    assert!(matches!(refused, Err(StoreError::InvalidCursor)));
}

#[tokio::test]
async fn a_statement_runs_from_the_opening_to_the_closing_balance_and_must_be_final() {
    let (_database, ledger) = TestDatabase::with_ledger().await;
    let [a, b] = open_many(&ledger, ["100.00", "0"]).await;
    let from = transfer(&ledger, a, b, "30.00").await.created_at;
    transfer(&ledger, b, a, "10.00").await;
    let last = transfer(&ledger, a, b, "5.00").await;
    let to = last.created_at + chrono::Duration::microseconds(1);

    let early = ledger.open_statement(a, from, to).await;
    assert!(matches!(
        early,
        Err(StoreError::Domain(DomainError::NotYetFinal { .. }))
    ));

    wait_until_final(&ledger, to).await;
    let mut reader = ledger.open_statement(a, from, to).await.expect("final");
    assert_eq!(reader.opening, dec("100.00"));
    let mut lines = Vec::new();
    loop {
        let batch = reader.next_batch().await.expect("a batch");
        if batch.is_empty() {
            break;
        }
        lines.extend(batch);
    }
    let summary: Vec<(Direction, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l.direction,
                l.amount.to_string(),
                l.balance_after.to_string(),
            )
        })
        .collect();
    let row = |d, amount: &str, after: &str| (d, amount.to_owned(), after.to_owned());
    assert_eq!(
        summary,
        [
            row(Direction::Out, "30.00", "70.00"),
            row(Direction::In, "10.00", "80.00"),
            row(Direction::Out, "5.00", "75.00"),
        ]
    );
    assert_eq!(lines[1].counterparty, b);
    assert_eq!(reader.balance(), dec("75.00"));
    assert_eq!(reader.lines(), 3);
}
