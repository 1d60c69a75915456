//! The test harnesses every suite shares; there are two.
//!
//! 1. **A fresh database** ([`TestDatabase`]): every test gets its own
//!    migrated PostgreSQL database, dropped when the test ends (also when it
//!    panics), with the helpers that arrange and judge a ledger through the
//!    store ([`open`], [`balance`], [`assert_invariants`], [`Snapshot`], …).
//!    It also plays the superuser who tampers with the log past its
//!    triggers ([`TestDatabase::edit_transfer`]), whom `verify` must catch.
//!    A test that must stop PostgreSQL itself starts a [`Cluster`] of its
//!    own and creates its database there ([`TestDatabase::create_on`]).
//! 2. **A running service** ([`service`], feature `service`): the real
//!    server on a free loopback port, either in-process
//!    ([`service::spawn_app`], what `ledger serve` runs, in the test's
//!    runtime) or as the `ledger` binary in a child process
//!    ([`service::spawn_process`], for faults a process can suffer:
//!    `kill -9`, environment configuration). Either way every response
//!    sent through [`service::TestApp::send`] is checked against the
//!    OpenAPI document the server serves.
//!
//! Who uses what: the store's suite (`crates/ledger-store/tests`) the
//! database harness; the API suite (`tests/api`), the fault and
//! hostile-input suites and `ledger verify`'s tests
//! (`crates/ledger-server/tests`) both.
//!
//! ## The dependency structure
//! The service harness depends on `ledger-server` (to run it in-process),
//! and `ledger-server` dev-depends on this crate (its suites use the
//! harness): a cycle through a dev-dependency, which cargo allows. An
//! integration test of `ledger-server` links one `ledger-server` library,
//! the same one this crate links, so their types agree. Its unit tests
//! (`src/**` `#[cfg(test)]`) must not use this crate: they are a second
//! build of the library, whose types would not be this crate's. The same
//! holds for `ledger-store`, which this crate uses always. The service
//! harness sits behind the `service` feature, so that the store's suite
//! builds neither the HTTP server nor the contract checker.

mod cluster;
mod database;
mod ledger;
#[cfg(feature = "service")]
pub mod service;
mod tamper;

pub use cluster::Cluster;
pub use database::{admin_url, connect, TestDatabase};
pub use ledger::{
    assert_invariants, balance, close_in_progress, dec, eur, is_closed, key, keyed_transfer, open,
    open_in, open_many, query_pairs, schema_shape, snapshot, spawn_transfer, total_of, transfer,
    transfer_times, usd, Snapshot,
};
