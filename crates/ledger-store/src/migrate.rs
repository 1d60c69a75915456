use std::ops::DerefMut;

use anyhow::Context;

use crate::{Ledger, StoreError};

mod embedded {
    refinery::embed_migrations!("../../sql");
}

impl Ledger {
    /// Applies the migrations in `sql/` that this database has not seen.
    /// Several instances starting at once are serialized by an advisory lock
    /// (at start-up only; the write path takes no locks).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut object = self.client().await?;
        let client: &mut tokio_postgres::Client = object.deref_mut().deref_mut();
        client
            .execute("select pg_advisory_lock(7406114723)", &[])
            .await?;
        let result = embedded::migrations::runner()
            .set_abort_divergent(true)
            .run_async(client)
            .await
            .context("Failed to apply migrations");
        client
            .execute("select pg_advisory_unlock(7406114723)", &[])
            .await?;
        result.map(drop).map_err(StoreError::Internal)
    }
}
