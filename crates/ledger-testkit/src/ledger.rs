//! Arranging and judging a ledger through the store: the helpers of the
//! database harness.

use std::str::FromStr;

use ledger_domain::{AccountId, Currency, Decimal, IdempotencyKey};
use ledger_store::{Ledger, NewAccount, Outcome, StoreError, Transfer, VerifyReport};
use tokio::task::JoinHandle;
use tokio_postgres::types::FromSqlOwned;
use tokio_postgres::Client;

use crate::TestDatabase;

/// A decimal literal.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("a valid decimal literal")
}

/// US dollars.
pub fn usd() -> Currency {
    Currency::parse("USD").expect("USD")
}

/// Euros.
pub fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR")
}

/// Opens a USD account holding `balance`.
pub async fn open(ledger: &Ledger, balance: &str) -> AccountId {
    open_in(ledger, usd(), balance).await
}

/// Opens one USD account per balance, in order:
/// `let [source, destination] = open_many(&ledger, ["10.00", "0"]).await;`
pub async fn open_many<const N: usize>(ledger: &Ledger, balances: [&str; N]) -> [AccountId; N] {
    let mut ids = Vec::with_capacity(N);
    for balance in balances {
        ids.push(open(ledger, balance).await);
    }
    ids.try_into().expect("one account per balance")
}

/// Opens an account in `currency` holding `balance`.
pub async fn open_in(ledger: &Ledger, currency: Currency, balance: &str) -> AccountId {
    let request = NewAccount {
        overdraft_limit: None,
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

/// Moves `amount` from `source` to `destination` (no metadata, no key),
/// which must succeed.
pub async fn transfer(
    ledger: &Ledger,
    source: AccountId,
    destination: AccountId,
    amount: &str,
) -> Transfer {
    ledger
        .transfer(source, destination, dec(amount), None, None)
        .await
        .expect("the transfer succeeds")
        .value
}

/// Moves `amount` from `source` to `destination` `count` times, one
/// transfer after the other (each must succeed); returns them in order.
pub async fn transfer_times(
    ledger: &Ledger,
    count: usize,
    source: AccountId,
    destination: AccountId,
    amount: &str,
) -> Vec<Transfer> {
    let mut transfers = Vec::with_capacity(count);
    for _ in 0..count {
        transfers.push(transfer(ledger, source, destination, amount).await);
    }
    transfers
}

/// Moves `amount` from `source` to `destination` under an idempotency
/// `key`, and returns what the store answered (a first use, a replay or a
/// refusal).
pub async fn keyed_transfer(
    ledger: &Ledger,
    source: AccountId,
    destination: AccountId,
    amount: &str,
    key: &IdempotencyKey,
) -> Result<Outcome<Transfer>, StoreError> {
    ledger
        .transfer(source, destination, dec(amount), None, Some(key))
        .await
}

/// Starts every task (the iterator may spawn them lazily), then awaits them
/// all and adds up what each one counted.
pub async fn total_of(tasks: impl IntoIterator<Item = JoinHandle<u32>>) -> u32 {
    // Collect first, so that all the tasks run at once.
    let tasks: Vec<_> = tasks.into_iter().collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("the task runs to its end");
    }
    total
}

/// Starts a transfer of `amount` on a task of its own, as one of many
/// concurrent writers; the handle gives its outcome.
pub fn spawn_transfer(
    ledger: &Ledger,
    source: AccountId,
    destination: AccountId,
    amount: &str,
    key: Option<&IdempotencyKey>,
) -> JoinHandle<Result<Outcome<Transfer>, StoreError>> {
    let ledger = ledger.clone();
    let amount = dec(amount);
    let key = key.cloned();
    tokio::spawn(async move {
        ledger
            .transfer(source, destination, amount, None, key.as_ref())
            .await
    })
}

/// An idempotency key from a literal.
pub fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).expect("a valid idempotency key")
}

/// Whether the account is closed, read through the store.
pub async fn is_closed(ledger: &Ledger, account: AccountId) -> bool {
    ledger
        .get_account(account)
        .await
        .expect("the account reads")
        .closed_at
        .is_some()
}

/// The account's current balance.
pub async fn balance(ledger: &Ledger, account: AccountId) -> Decimal {
    ledger.balance(account).await.expect("balance").balance
}

/// Runs the ledger's one invariant check (`Ledger::verify`, the same as
/// `ledger verify` and the load run's check) and panics, naming every
/// violation, unless the ledger is sound. Returns the report.
pub async fn assert_invariants(ledger: &Ledger) -> VerifyReport {
    let report = ledger.verify().await.expect("Ledger::verify runs");
    assert!(
        report.is_sound(),
        "the ledger breaks its invariants {:?}: {:#?}",
        report.counts,
        report.violations
    );
    report
}

/// Everything observable about the ledger that a refused operation must
/// leave as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `count(*)` of `ledger.transfers`.
    pub transfers: i64,
    /// `count(*)` of `ledger.accounts`.
    pub accounts: i64,
    /// `count(*)` of `ledger.idempotency_keys`.
    pub idempotency_keys: i64,
    /// Every account's balance, as text, in account order.
    pub balances: Vec<(String, String)>,
}

/// Reads a [`Snapshot`] with plain SQL, past the store.
pub async fn snapshot(client: &Client) -> Snapshot {
    let counts = client
        .query_one(
            "select (select count(*) from ledger.transfers),
                    (select count(*) from ledger.accounts),
                    (select count(*) from ledger.idempotency_keys)",
            &[],
        )
        .await
        .expect("counts");
    let balances = query_pairs(
        client,
        "select account_id::text, balance::text from ledger.account_balances
          order by account_id",
        &[],
    )
    .await;
    Snapshot {
        transfers: counts.get(0),
        accounts: counts.get(1),
        idempotency_keys: counts.get(2),
        balances,
    }
}

/// Runs a query of two columns with plain SQL and collects its rows as
/// pairs (into a `Vec`, a `HashMap`, …).
pub async fn query_pairs<A, B, C>(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> C
where
    A: FromSqlOwned,
    B: FromSqlOwned,
    C: FromIterator<(A, B)>,
{
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// A close of `account` in progress, made by hand: a transaction that has
/// taken its xid and is left open, and a committed mark naming that xid.
/// The returned client holds the transaction; send it `commit` (the close
/// takes effect) or `rollback` (the account is open again).
pub async fn close_in_progress(database: &TestDatabase, account: AccountId) -> Client {
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

/// The shape of the `ledger` schema: every relation, function and trigger by
/// name, so that a test can show an injection attempt altered none of them.
pub async fn schema_shape(client: &Client) -> Vec<String> {
    client
        .query(
            "select 'relation ' || relname || ' ' || relkind::text
               from pg_class where relnamespace = 'ledger'::regnamespace
             union all
             select 'function ' || proname
               from pg_proc where pronamespace = 'ledger'::regnamespace
             union all
             select 'trigger ' || tgname || ' on ' || tgrelid::regclass::text
               from pg_trigger t join pg_class c on c.oid = t.tgrelid
              where c.relnamespace = 'ledger'::regnamespace and not t.tgisinternal
             order by 1",
            &[],
        )
        .await
        .expect("schema shape")
        .iter()
        .map(|row| row.get(0))
        .collect()
}
