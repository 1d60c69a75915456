//! API keys (see `sql/V5__api_keys.sql`): made, found, listed and revoked.
//! Every check reads the primary, on every request: a revocation takes
//! effect on the next request, on every instance.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{constant_time_eq, AccountId, ApiKeySecret, DomainError, Scope};
use rand::RngCore;
use uuid::Uuid;

use crate::error::Context;
use crate::{Ledger, StoreError};

/// A key as the ledger knows it: never its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    /// Its id (`created_by` of the writes it makes).
    pub id: Uuid,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// What it may do.
    pub scope: Scope,
    /// The only accounts it may read and move money out of; `None`: all.
    pub accounts: Option<Vec<AccountId>>,
    /// A name for people.
    pub name: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; `None` while valid.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a new key may do.
#[derive(Clone, Debug, Default)]
pub struct NewApiKey {
    /// Its scope (`None`: `read`).
    pub scope: Option<Scope>,
    /// Restrict it to these accounts.
    pub accounts: Option<Vec<AccountId>>,
    /// A name for people.
    pub name: Option<String>,
}

const KEY_COLUMNS: &str = "k.key_id, k.prefix, k.scope, k.accounts, k.name, k.created_at, \
     r.revoked_at, k.secret_sha256";

fn key_from_row(row: &tokio_postgres::Row) -> Result<ApiKey, StoreError> {
    let scope: &str = row.try_get("scope")?;
    let accounts: Option<Vec<Uuid>> = row.try_get("accounts")?;
    Ok(ApiKey {
        id: row.try_get("key_id")?,
        prefix: row.try_get("prefix")?,
        scope: Scope::parse(scope)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("unknown scope {scope:?}")))?,
        accounts: accounts.map(|ids| ids.into_iter().map(AccountId::from).collect()),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Ledger {
    /// Makes a key; the secret is returned here and nowhere else. The
    /// handle's author (an admin key, or none from the command line) is
    /// recorded as its maker.
    pub async fn create_api_key(
        &self,
        new: NewApiKey,
    ) -> Result<(ApiKey, ApiKeySecret), StoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = ApiKeySecret::from_random(bytes);
        let accounts: Option<Vec<Uuid>> = new
            .accounts
            .map(|ids| ids.iter().map(AccountId::as_uuid).collect());
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "with k as (
                     insert into ledger.api_keys
                         (key_id, prefix, secret_sha256, scope, accounts, name, created_by)
                     values ($1, $2, $3, $4, $5, $6, $7)
                     returning *)
                 select {KEY_COLUMNS} from k
                   left join ledger.api_key_revocations r on r.key_id = k.key_id"
            ))
            .await
            .context("prepare the key insert")?;
        let row = client
            .query_one(
                &statement,
                &[
                    &Uuid::now_v7(),
                    &secret.prefix(),
                    &secret.sha256().as_slice(),
                    &new.scope.unwrap_or(Scope::Read).as_str(),
                    &accounts,
                    &new.name,
                    &self.author,
                ],
            )
            .await
            .context("insert a key")?;
        Ok((key_from_row(&row)?, secret))
    }

    /// The valid key `secret` is, or `None` (unknown or revoked). Found by
    /// its prefix, then its hash compared in constant time.
    pub async fn authenticate(&self, secret: &ApiKeySecret) -> Result<Option<ApiKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "select {KEY_COLUMNS} from ledger.api_keys k
                   left join ledger.api_key_revocations r on r.key_id = k.key_id
                  where k.prefix = $1"
            ))
            .await
            .context("prepare the key lookup")?;
        let rows = client
            .query(&statement, &[&secret.prefix()])
            .await
            .context("look a key up")?;
        let presented = secret.sha256();
        for row in &rows {
            let stored: &[u8] = row.try_get("secret_sha256")?;
            let Ok(stored) = <&[u8; 32]>::try_from(stored) else {
                continue;
            };
            if constant_time_eq(stored, &presented) {
                let key = key_from_row(row)?;
                return Ok(key.revoked_at.is_none().then_some(key));
            }
        }
        Ok(None)
    }

    /// Every key, oldest first, revoked ones included.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "select {KEY_COLUMNS} from ledger.api_keys k
                       left join ledger.api_key_revocations r on r.key_id = k.key_id
                      order by k.created_at, k.key_id"
                ),
                &[],
            )
            .await
            .context("list the keys")?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key, for good; revoking it again changes nothing.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "insert into ledger.api_key_revocations (key_id, revoked_by)
                 select key_id, $2 from ledger.api_keys where key_id = $1
                 on conflict (key_id) do nothing",
                &[&id, &self.author],
            )
            .await
            .context("revoke a key")?;
        fetch_key(&client, id).await
    }

    /// Whether any valid admin key exists (`scripts/serve.sh` makes one
    /// when none does).
    pub async fn has_admin_key(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "select exists (select 1 from ledger.api_keys k
                                 where k.scope = 'admin' and k.accounts is null
                                   and not exists (select 1 from ledger.api_key_revocations r
                                                    where r.key_id = k.key_id))",
                &[],
            )
            .await
            .context("look for an admin key")?;
        Ok(row.try_get(0)?)
    }
}

async fn fetch_key(client: &impl GenericClient, id: Uuid) -> Result<ApiKey, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "select {KEY_COLUMNS} from ledger.api_keys k
                   left join ledger.api_key_revocations r on r.key_id = k.key_id
                  where k.key_id = $1"
            ),
            &[&id],
        )
        .await
        .context("read a key")?
        .ok_or(DomainError::ApiKeyNotFound(id))?;
    key_from_row(&row)
}
