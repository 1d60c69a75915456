//! API keys: making, listing and revoking them.

use chrono::{DateTime, Utc};
use ledger_store::ApiKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A key to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// `read`, `write`, `treasury`, `admin` or `metrics` (default `read`).
    #[schema(example = "write")]
    pub scope: Option<String>,
    /// Restrict the key to these accounts (1 to 1,000): it may read only
    /// them and move money only out of them.
    pub accounts: Option<Vec<Uuid>>,
    /// A name for people, at most 200 characters.
    pub name: Option<String>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyDto {
    /// Its id: the `created_by` of the writes it makes.
    pub id: Uuid,
    /// The first 12 characters of the secret, to tell keys apart.
    #[schema(example = "lk_3f9a0c1b2")]
    pub prefix: String,
    /// What it may do.
    #[schema(example = "write")]
    pub scope: String,
    /// The only accounts it may use; null: all.
    #[schema(required = true)]
    pub accounts: Option<Vec<Uuid>>,
    /// Its name, or null.
    #[schema(required = true)]
    pub name: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; null while valid.
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for KeyDto {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            prefix: key.prefix,
            scope: key.scope.as_str().to_owned(),
            accounts: key
                .accounts
                .map(|ids| ids.iter().map(|id| id.as_uuid()).collect()),
            name: key.name,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A key just made: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedApiKey)]
pub struct CreatedKeyDto {
    /// The secret, to send as `Authorization: Bearer <key>`. Store it now:
    /// the ledger keeps only its hash.
    #[schema(example = "lk_3f9a0c1b2d4e5f60718293a4b5c6d7e8f9012345678901234567890abcdef0123")]
    pub key: String,
    /// The key as it will be listed.
    #[serde(flatten)]
    pub details: KeyDto,
}

/// Every key, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The keys, revoked ones included.
    pub items: Vec<KeyDto>,
}

/// The key a request was made with, as that key sees itself: what a client
/// (the console) needs to know to offer only what the key may do.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OwnApiKey)]
pub struct OwnKeyDto {
    /// Its id; null when the service runs without authentication
    /// (`LEDGER_AUTH=off`), where every caller may do everything.
    #[schema(required = true)]
    pub id: Option<Uuid>,
    /// Its name, or null.
    #[schema(required = true)]
    pub name: Option<String>,
    /// What it may do (`admin` when authentication is off).
    #[schema(example = "write")]
    pub scope: String,
    /// The only accounts it may use; null: all.
    #[schema(required = true)]
    pub accounts: Option<Vec<Uuid>>,
}

impl OwnKeyDto {
    /// The caller's key; `None`: authentication is off.
    pub fn of(key: Option<&ApiKey>) -> Self {
        match key {
            Some(key) => Self {
                id: Some(key.id),
                name: key.name.clone(),
                scope: key.scope.as_str().to_owned(),
                accounts: key
                    .accounts
                    .as_ref()
                    .map(|ids| ids.iter().map(|id| id.as_uuid()).collect()),
            },
            None => Self {
                id: None,
                name: None,
                scope: ledger_domain::Scope::Admin.as_str().to_owned(),
                accounts: None,
            },
        }
    }
}
