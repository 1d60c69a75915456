//! The ledger's HTTP/JSON API: actix-web handlers over `ledger-store`, an
//! OpenAPI 3.1 document generated with utoipa, RFC 9457 problem responses,
//! request ids and structured logs. The `ledger` binary (`main.rs`) only
//! wires configuration, telemetry, the pool, migrations and the server
//! together; the black-box tests build the same server through [`app`].

pub mod admission;
pub mod app;
pub mod auth;
pub mod body;
pub mod config;
pub mod console;
pub mod dto;
pub mod error;
pub mod handlers;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod replication;
pub mod routes;
pub mod telemetry;
pub mod timestamp;

pub use app::{build_app, metrics_server, serve, server};
pub use config::{ApiConfig, Config};
pub use handlers::AppState;
