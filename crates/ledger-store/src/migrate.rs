use std::ops::DerefMut;

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
            .await;
        client
            .execute("select pg_advisory_unlock(7406114723)", &[])
            .await?;
        match result {
            Ok(_) => Ok(()),
            // Before the first release the schema was reshaped in place; a
            // development database made by an earlier build cannot be
            // migrated forward and must be recreated. Say so plainly.
            Err(err)
                if matches!(
                    err.kind(),
                    refinery::error::Kind::DivergentVersion(..)
                        | refinery::error::Kind::MissingVersion(..)
                ) =>
            {
                Err(StoreError::Config(format!(
                    "this database was created by an older development schema ({}); \
                     it cannot be migrated forward: recreate it (scripts/serve.sh --reset \
                     drops and recreates the development database)",
                    err.kind()
                )))
            }
            Err(err) => Err(StoreError::Internal(
                anyhow::Error::new(err).context("Failed to apply migrations"),
            )),
        }
    }
}
