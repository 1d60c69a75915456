//! The database harness: every test gets its own freshly migrated
//! PostgreSQL database, dropped when the test ends (also when it panics).
//!
//! The server to create databases on comes from `LEDGER_TEST_DATABASE_URL`,
//! else `DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`;
//! `scripts/ensure-postgres.sh` makes one available. Migrating each database
//! from scratch keeps tests honest about the real migration path; it takes
//! a few tens of milliseconds.

use anyhow::Context;
use ledger_domain::{AccountId, Scope};
use ledger_store::{Ledger, NewApiKey, StoreConfig};
use tokio_postgres::NoTls;

use crate::ledger::{open_many, snapshot, Snapshot};

/// A database that exists for the lifetime of this value.
pub struct TestDatabase {
    name: String,
    admin_url: String,
    url: String,
}

/// The server the test databases are created on.
pub fn admin_url() -> String {
    std::env::var("LEDGER_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDatabase {
    /// Creates an empty database with a unique name and migrates it.
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&admin_url()).await
    }

    /// [`TestDatabase::create`] on the server at `admin_url` (a test's own
    /// [`crate::Cluster`]).
    pub async fn create_on(admin_url: &str) -> anyhow::Result<Self> {
        let admin_url = admin_url.to_owned();
        let name = format!("ledger_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&admin_url).await?;
        admin
            .batch_execute(&format!("create database {name}"))
            .await
            .with_context(|| format!("Failed to create database {name} on {admin_url}"))?;
        let url = with_database(&admin_url, &name)?;
        let database = Self {
            name,
            admin_url,
            url,
        };
        database
            .ledger()
            .migrate()
            .await
            .context("Failed to migrate the test database")?;
        Ok(database)
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of this database on another server reached at `server_url`
    /// (any database of it): a streaming replica of the server it was
    /// created on, where it appears once replayed.
    pub fn url_on(&self, server_url: &str) -> String {
        with_database(server_url, &self.name).expect("a valid server URL")
    }

    /// A store on this database with default limits.
    pub fn ledger(&self) -> Ledger {
        self.ledger_with(|_| {})
    }

    /// A store on this database with adjusted limits.
    pub fn ledger_with(&self, adjust: impl FnOnce(&mut StoreConfig)) -> Ledger {
        let mut config = StoreConfig::new(&self.url);
        config.pool_size = 16;
        adjust(&mut config);
        Ledger::connect(config).expect("a valid test database URL")
    }

    /// A new API key with `scope` (and, when given, only `accounts`): its
    /// secret, for `Authorization: Bearer …`.
    pub async fn api_key(&self, scope: Scope, accounts: Option<Vec<AccountId>>) -> String {
        let ledger = self.ledger_with(|config| config.pool_size = 1);
        let new = NewApiKey {
            scope: Some(scope),
            accounts,
            name: Some(format!("test {scope}")),
        };
        let (_, secret) = ledger.create_api_key(new).await.expect("an API key");
        secret.expose().to_owned()
    }

    /// A new admin key (every suite talks to the service with one).
    pub async fn admin_key(&self) -> String {
        self.api_key(Scope::Admin, None).await
    }

    /// A plain connection, for assertions that must bypass the store.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// A fresh database and a store on it, for a test that only needs both.
    pub async fn with_ledger() -> (Self, Ledger) {
        let database = Self::create().await.expect("a fresh test database");
        let ledger = database.ledger();
        (database, ledger)
    }

    /// A fresh database, a store on it, and one USD account per balance
    /// (see [`crate::open_many`]):
    /// `let (database, ledger, [a, b]) = TestDatabase::with_accounts(["10.00", "0"]).await;`
    pub async fn with_accounts<const N: usize>(
        balances: [&str; N],
    ) -> (Self, Ledger, [AccountId; N]) {
        let (database, ledger) = Self::with_ledger().await;
        let accounts = open_many(&ledger, balances).await;
        (database, ledger, accounts)
    }

    /// What the ledger in this database looks like now (see [`Snapshot`]).
    pub async fn snapshot(&self) -> Snapshot {
        snapshot(&self.connect().await.expect("connect")).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any async context we could await in (and during
        // a panic), so drop the database from a thread of its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let admin = connect(&admin_url).await?;
                admin
                    .batch_execute(&format!("drop database if exists {name} with (force)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Connects with tokio-postgres and drives the connection in the background.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("Failed to connect to {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").context("database URL without a scheme")? + 3;
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |index| scheme_end + index);
    let mut result = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/t1"),
            ("postgres://u@h:5432", "postgres://u@h:5432/t1"),
            (
                "postgres://u@h/db?sslmode=disable",
                "postgres://u@h/t1?sslmode=disable",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(with_database(input, "t1").expect("valid URL"), expected);
        }
    }
}
