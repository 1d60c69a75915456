//! The ledger core's specification, run against a real PostgreSQL: one fresh
//! database per test, arranged and judged with the database harness of
//! ledger-testkit.

mod store {
    mod accounts;
    mod append_only;
    mod as_of;
    mod closing;
    mod concurrency;
    mod errors;
    mod group_commit;
    mod history;
    mod holds;
    mod holds_model;
    mod idempotency;
    mod journal;
    mod model_check;
    mod money;
    mod queries;
}
