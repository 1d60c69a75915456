//! Shared arrangements and whole-ledger checks.

use std::collections::BTreeMap;
use std::str::FromStr;

use ledger_domain::{AccountId, Currency, Decimal};
use ledger_store::{Ledger, NewAccount};
use ledger_testkit::TestDatabase;

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("a valid decimal literal")
}

pub fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

pub async fn database() -> (TestDatabase, Ledger) {
    let database = TestDatabase::create().await.expect("a fresh test database");
    let ledger = database.ledger();
    (database, ledger)
}

/// Opens a USD account holding `balance`.
pub async fn open(ledger: &Ledger, balance: &str) -> AccountId {
    open_in(ledger, usd(), balance).await
}

pub async fn open_in(ledger: &Ledger, currency: Currency, balance: &str) -> AccountId {
    let request = NewAccount {
        id: None,
        currency,
        initial_balance: Some(dec(balance)),
        metadata: None,
    };
    ledger
        .open_account(request, None)
        .await
        .expect("account opens")
        .value
        .id
}

pub async fn balance(ledger: &Ledger, account: AccountId) -> Decimal {
    ledger.balance(account).await.expect("balance").balance
}

/// Everything observable about the ledger, to show that a refused operation
/// changed nothing.
#[derive(Debug, PartialEq)]
pub struct LedgerState {
    pub transfers: i64,
    pub accounts: i64,
    pub balances: BTreeMap<String, Decimal>,
}

pub async fn state(database: &TestDatabase) -> LedgerState {
    let client = database.connect().await.expect("connect");
    let counts = client
        .query_one(
            "select (select count(*) from ledger.transfers), (select count(*) from ledger.accounts)",
            &[],
        )
        .await
        .expect("counts");
    let balances = client
        .query(
            "select account_id::text, balance from ledger.account_balances",
            &[],
        )
        .await
        .expect("balances")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    LedgerState {
        transfers: counts.get(0),
        accounts: counts.get(1),
        balances,
    }
}

/// A close of `account` in progress, made by hand: a transaction that has
/// taken its xid and is left open, and a committed mark naming that xid.
/// The returned client holds the transaction; send it `commit` (the close
/// takes effect) or `rollback` (the account is open again).
pub async fn close_in_progress(
    database: &TestDatabase,
    account: AccountId,
) -> tokio_postgres::Client {
    let closer = database.connect().await.expect("connect");
    closer.batch_execute("begin").await.expect("begin");
    let xid: i64 = closer
        .query_one("select pg_current_xact_id()::text::bigint", &[])
        .await
        .expect("xid")
        .get(0);
    let marker = database.connect().await.expect("connect");
    marker
        .execute(
            "update ledger.accounts set closing_at = clock_timestamp(),
                    closing_xid = $2::bigint::text::xid8 where account_id = $1",
            &[&account.as_uuid(), &xid],
        )
        .await
        .expect("mark");
    closer
}

/// Checks every invariant of the whole ledger with plain queries that do
/// not use the ledger's own functions (except to compare against them).
pub async fn assert_invariants(database: &TestDatabase) {
    let client = database.connect().await.expect("connect");

    let sums = client
        .query(
            "select currency_code, sum(balance) from ledger.account_balances group by 1",
            &[],
        )
        .await
        .expect("sums");
    for row in &sums {
        let currency: String = row.get(0);
        let sum: Decimal = row.get(1);
        assert!(sum.is_zero(), "{currency} balances sum to {sum}, not zero");
    }

    let negative: i64 = client
        .query_one(
            "select count(*) from ledger.account_balances where not is_system and balance < 0",
            &[],
        )
        .await
        .expect("negatives")
        .get(0);
    assert_eq!(negative, 0, "a customer balance is negative");

    let disagreeing: i64 = client
        .query_one(
            "with recomputed as (
                 select a.account_id,
                        coalesce((select sum(amount) from ledger.transfers t
                                   where t.destination_account_id = a.account_id), 0)
                      - coalesce((select sum(amount) from ledger.transfers t
                                   where t.source_account_id = a.account_id), 0) as balance
                   from ledger.accounts a)
             select count(*)
               from recomputed r join ledger.account_balances b using (account_id)
              where r.balance <> b.balance",
            &[],
        )
        .await
        .expect("recomputation")
        .get(0);
    assert_eq!(
        disagreeing, 0,
        "derived balances disagree with a plain sum of the log"
    );

    let gaps: i64 = client
        .query_one(
            "select count(*) from (
                 select source_account_id
                   from ledger.transfers
                  group by source_account_id
                 having min(source_seq) <> 0 or max(source_seq) <> count(*) - 1) g",
            &[],
        )
        .await
        .expect("sequence gaps")
        .get(0);
    assert_eq!(gaps, 0, "a source's sequence numbers have a gap");

    let broken_totals: i64 = client
        .query_one(
            "select count(*) from (
                 select source_outgoing_total,
                        sum(amount) over (partition by source_account_id order by source_seq) as running
                   from ledger.transfers) t
              where source_outgoing_total <> running",
            &[],
        )
        .await
        .expect("running totals")
        .get(0);
    assert_eq!(
        broken_totals, 0,
        "a running total disagrees with the amounts"
    );
}
