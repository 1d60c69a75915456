//! The ledger core's specification, run against a real PostgreSQL: one fresh
//! database per test (see ledger-testkit).

mod store {
    pub mod support;

    mod accounts;
    mod append_only;
    mod as_of;
    mod closing;
    mod concurrency;
    mod errors;
    mod group_commit;
    mod history;
    mod idempotency;
    mod journal;
    mod model_check;
    mod money;
}
