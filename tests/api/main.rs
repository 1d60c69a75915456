//! Black-box tests of the HTTP API: each test starts the real server on a
//! free port against its own fresh database and talks HTTP to it. Every
//! response is checked against the served OpenAPI document (see
//! `ledger_testkit::service::TestApp::send`).

mod accounts;
mod auth;
mod balances;
mod batches;
mod concurrency;
mod console;
mod holds;
mod idempotency;
mod journal;
mod metrics;
mod openapi;
mod operations;
mod protocol;
mod queries;
mod transfers;
