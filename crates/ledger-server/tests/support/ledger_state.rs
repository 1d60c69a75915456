//! What the ledger looks like, read with plain SQL past the service: the
//! invariants every suite ends with, and snapshots that show an input
//! changed nothing.

use ledger_store::{Ledger, StoreConfig};
use tokio_postgres::Client;

/// Every invariant of the log, each as a query that returns the rows that
/// break it. The queries restate the rules from scratch (sums over the whole
/// log) rather than calling the ledger's own balance functions, except to
/// compare them with the recomputation.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "each currency's balances sum to zero",
        "select currency_code || ' sums to ' || sum(balance)
           from ledger.account_balances
          group by currency_code
         having sum(balance) <> 0",
    ),
    (
        "no customer balance is negative",
        "select account_id::text || ' has ' || balance
           from ledger.account_balances
          where not is_system and balance < 0",
    ),
    (
        "each source's sequence is gap-free from 0",
        "select source_account_id::text || ': ' || count(*) || ' rows, seq '
                || min(source_seq) || '..' || max(source_seq)
           from ledger.transfers
          group by source_account_id
         having min(source_seq) <> 0 or max(source_seq) <> count(*) - 1",
    ),
    (
        "each balance equals its recomputation from the log",
        "with flows as (
             select destination_account_id as account_id, amount from ledger.transfers
             union all
             select source_account_id, -amount from ledger.transfers
         )
         select b.account_id::text || ': ledger says ' || b.balance
                || ', the log sums to ' || coalesce(sum(f.amount), 0)
           from ledger.account_balances b
           left join flows f on f.account_id = b.account_id
          group by b.account_id, b.balance
         having b.balance <> coalesce(sum(f.amount), 0)",
    ),
    (
        "each running total equals the sum of the source's amounts so far",
        "select source_account_id::text || ' seq ' || source_seq
           from (select source_account_id, source_seq, source_outgoing_total,
                        sum(amount) over (partition by source_account_id
                                          order by source_seq) as recomputed
                   from ledger.transfers) t
          where source_outgoing_total <> recomputed",
    ),
    (
        "each idempotency key points at exactly one existing transfer",
        "select k.idempotency_key
           from ledger.idempotency_keys k
           left join ledger.transfers t on t.transfer_id = k.transfer_id
          where k.transfer_id is not null
          group by k.idempotency_key
         having count(t.transfer_id) <> 1",
    ),
];

/// Checks every invariant; returns one line per broken row, empty when the
/// ledger is sound. Also runs the store's own `verify` (hash chains,
/// running totals, balances) and reports its violations.
pub async fn violations(client: &Client, database_url: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (rule, query) in INVARIANTS {
        let rows = client
            .query(*query, &[])
            .await
            .unwrap_or_else(|err| panic!("invariant query for {rule:?} failed: {err}"));
        for row in rows {
            found.push(format!("{rule}: {}", row.get::<_, String>(0)));
        }
    }
    let report = Ledger::connect(StoreConfig::new(database_url))
        .expect("a valid database URL")
        .verify()
        .await
        .expect("Ledger::verify failed to run");
    for violation in report.violations {
        found.push(format!(
            "verify: {} {:?} {:?}: {}",
            violation.rule, violation.row, violation.subject, violation.detail
        ));
    }
    found
}

/// Everything an input that is refused must leave as it was.
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

/// Reads a [`Snapshot`].
pub async fn snapshot(client: &Client) -> Snapshot {
    let count = |table: &'static str| async move {
        client
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .unwrap_or_else(|err| panic!("count of {table} failed: {err}"))
            .get::<_, i64>(0)
    };
    let transfers = count("ledger.transfers").await;
    let accounts = count("ledger.accounts").await;
    let idempotency_keys = count("ledger.idempotency_keys").await;
    let balances = client
        .query(
            "select account_id::text, balance::text from ledger.account_balances
              order by account_id",
            &[],
        )
        .await
        .expect("balances")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    Snapshot {
        transfers,
        accounts,
        idempotency_keys,
        balances,
    }
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
