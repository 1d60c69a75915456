//! Accounts: opening (an opening with an initial balance is a deposit that
//! goes through the group commit), reading and listing. Closing is in
//! `closing.rs`.

use deadpool_postgres::GenericClient;
use ledger_domain::{
    AccountId, AccountKind, Amount, Decimal, DomainError, IdempotencyKey, Metadata,
    RequestFingerprint, TransferId,
};
use tracing::instrument;

use crate::balances::PAGE_BYTE_BUDGET;
use crate::error::{is_unique_violation, violates, Constraint, Context};
use crate::group_commit::{Leg, LegAnswer, LegClaim, Opening};
use crate::idempotency::{claim, Claim, Idempotency};
use crate::records::{
    account_from_row, find_one, Account, NewAccount, Outcome, Page, Posting, ACCOUNT_COLUMNS,
};
use crate::{Ledger, StoreError};

/// The largest page a list may return.
pub const MAX_PAGE_SIZE: u32 = 1_000;

/// The scope of account-list cursors (see `cursor`).
const ACCOUNTS_SCOPE: &str = "accounts";

/// An account's estimated size in the response: its metadata as PostgreSQL
/// writes it out plus 256 bytes for the other fields (about 230 in practice).
const ACCOUNT_ROW_BYTES: &str = "(256 + coalesce(octet_length(metadata::text), 0))";

impl Ledger {
    /// Opens an account, funding it with `initial_balance` (a deposit from the
    /// system account) in the same transaction: if funding fails, the account
    /// does not exist.
    #[instrument(skip(self, request, key), fields(account.currency = %request.currency))]
    pub async fn open_account(
        &self,
        request: NewAccount,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Account>, StoreError> {
        if let Some(id) = request.id {
            if id.is_reserved_for_system() {
                return Err(DomainError::SystemAccount(id).into());
            }
        }
        let initial = match request.initial_balance {
            Some(value) if value < Decimal::ZERO => {
                return Err(DomainError::NegativeInitialBalance.into())
            }
            Some(value) if value > Decimal::ZERO => Some(Amount::new(value, request.currency)?),
            _ => None,
        };
        let overdraft_limit = match request.overdraft_limit {
            Some(line) => {
                ledger_domain::check_overdraft_limit(line)?;
                Amount::scale_non_negative(line, request.currency)?
            }
            None => Decimal::ZERO,
        };
        let id = request.id.unwrap_or_else(AccountId::generate);
        let idempotency = key.map(|key| Idempotency {
            key: key.clone(),
            fingerprint: open_fingerprint(&request, initial.as_ref(), overdraft_limit),
        });
        let metadata = request.metadata.as_ref().map(Metadata::to_value);
        let Some(amount) = initial else {
            return self
                .open_empty(
                    id,
                    &request,
                    metadata,
                    overdraft_limit,
                    idempotency.as_ref(),
                )
                .await;
        };

        // Funded: the account row and its opening deposit are one leg of the
        // system account's group commit, so that openings, like deposits,
        // do not race each other for the system account's sequence numbers.
        // Creating the system account needs a connection of its own (see
        // ensure_system_account).
        let system = self.ensure_system_account(request.currency).await?;
        let transfer_id = TransferId::generate();
        let leg = Leg {
            posting: Posting::Deposit { account: id },
            source: system,
            destination: id,
            amount: amount.value(),
            metadata: None,
            transfer_id,
            claim: idempotency.map(|idempotency| LegClaim {
                idempotency,
                operation: "open_account",
                account_id: Some(id.as_uuid()),
            }),
            opening: Some(Opening {
                currency: request.currency,
                metadata: metadata.clone(),
                overdraft_limit,
            }),
            author: self.author,
        };
        match self.submit(leg).await? {
            LegAnswer::Applied {
                transfer,
                opened_at,
            } => {
                let created_at = opened_at.ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("an opening without its account"))
                })?;
                // What the opening's own transaction saw: nothing else can
                // have moved money in or out before it committed.
                Ok(Outcome {
                    value: Account {
                        id,
                        currency: request.currency,
                        kind: AccountKind::Customer,
                        balance: transfer.amount,
                        created_at,
                        closed_at: None,
                        metadata,
                        overdraft_limit,
                    },
                    replayed: false,
                })
            }
            LegAnswer::Replayed {
                account_id,
                transfer_id,
            } => {
                let client = self.client().await?;
                replayed_opening(&client, account_id, transfer_id).await
            }
        }
    }

    /// Opens an account with nothing in it: no transfer, so no queue.
    async fn open_empty(
        &self,
        id: AccountId,
        request: &NewAccount,
        metadata: Option<serde_json::Value>,
        overdraft_limit: Decimal,
        idempotency: Option<&Idempotency>,
    ) -> Result<Outcome<Account>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(idempotency) = idempotency {
            let claimed = claim(&tx, idempotency, "open_account", Some(id.as_uuid()), None).await?;
            if let Claim::Replay {
                account_id,
                transfer_id,
            } = claimed
            {
                return replayed_opening(&tx, account_id, transfer_id).await;
            }
        }

        let insert = tx
            .prepare_cached(
                "insert into ledger.accounts \
                     (account_id, currency_code, metadata, opened_by, overdraft_limit) \
                 values ($1, $2, $3, $4, $5)",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &id.as_uuid(),
                &request.currency.code(),
                &metadata,
                &self.author,
                &overdraft_limit,
            ],
        )
        .await
        .map_err(|err| {
            if is_unique_violation(&err, Constraint::AccountsPkey) {
                DomainError::AccountExists(id).into()
            } else if violates(&err, Constraint::AccountsCurrencyCodeFkey) {
                DomainError::UnknownCurrency(request.currency.code().to_owned()).into()
            } else {
                StoreError::from(err)
            }
        })?;
        let account = fetch_account(&tx, id).await?;
        tx.commit().await.context("commit an opening")?;
        Ok(Outcome {
            value: account,
            replayed: false,
        })
    }

    /// Reads one account with its current balance.
    pub async fn get_account(&self, id: AccountId) -> Result<Account, StoreError> {
        let client = self.client().await?;
        fetch_account(&client, id).await
    }

    /// Lists accounts in id order (UUIDv7 ids make that creation order),
    /// after `cursor` (the last id of the previous page): at most `limit`
    /// accounts, and no more than about [`PAGE_BYTE_BUDGET`] bytes of them
    /// (always at least one).
    pub async fn list_accounts(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Account>, StoreError> {
        self.list_accounts_among(cursor, limit, None, None).await
    }

    /// [`Self::list_accounts`], of `among` only when given (the accounts an
    /// API key is restricted to), and only those whose metadata contains
    /// `metadata` when given (`@>`: each top-level key with that value).
    pub async fn list_accounts_among(
        &self,
        cursor: Option<&str>,
        limit: u32,
        among: Option<&[AccountId]>,
        metadata: Option<&serde_json::Value>,
    ) -> Result<Page<Account>, StoreError> {
        let among: Option<Vec<uuid::Uuid>> =
            among.map(|ids| ids.iter().map(AccountId::as_uuid).collect());
        let after = match cursor {
            None => uuid::Uuid::nil(),
            Some(text) => self
                .cursor_key()
                .await?
                .open(ACCOUNTS_SCOPE, text)?
                .parse::<uuid::Uuid>()
                .map_err(|_| StoreError::InvalidCursor)?,
        };
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let client = self.client().await?;
        // Two statements rather than `$5 is null or …`: a generic plan of
        // the catch-all could not use the metadata index (V7).
        let metadata_filter = if metadata.is_some() {
            "and metadata is not null and metadata @> $5"
        } else {
            "and $5::jsonb is null"
        };
        // The byte budget is applied in SQL, so accounts past it are neither
        // sent nor have their balance computed (see `history`).
        let statement = client
            .prepare_cached(&format!(
                "select {ACCOUNT_COLUMNS}, matched from (
                   select account_id, currency_code, is_system, created_at, closed_at, metadata,
                          sum({ACCOUNT_ROW_BYTES}) over (order by account_id)
                            - {ACCOUNT_ROW_BYTES} as bytes_before,
                          count(*) over () as matched
                     from (select account_id, currency_code, is_system, created_at, closed_at,
                                  metadata
                             from ledger.accounts
                            where account_id > $1
                              and ($4::uuid[] is null or account_id = any($4))
                              {metadata_filter}
                            order by account_id limit $2) a
                 ) p
                 where bytes_before < $3
                 order by account_id"
            ))
            .await?;
        // One more than asked tells whether there is a next page.
        let rows = client
            .query(
                &statement,
                &[
                    &after,
                    &(i64::from(limit) + 1),
                    &PAGE_BYTE_BUDGET,
                    &among,
                    &metadata,
                ],
            )
            .await?;
        let matched: i64 = match rows.first() {
            Some(row) => row.try_get("matched")?,
            None => 0,
        };
        let mut items = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit as usize || matched > items.len() as i64;
        items.truncate(limit as usize);
        let next_cursor = match items.last() {
            Some(account) if more => Some(
                self.cursor_key()
                    .await?
                    .seal(ACCOUNTS_SCOPE, &account.id.to_string()),
            ),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

/// The original answer of an opening whose key is replayed.
async fn replayed_opening(
    client: &impl GenericClient,
    account_id: Option<uuid::Uuid>,
    transfer_id: Option<uuid::Uuid>,
) -> Result<Outcome<Account>, StoreError> {
    let id = account_id.ok_or_else(|| {
        StoreError::Internal(anyhow::anyhow!("idempotency key without an account"))
    })?;
    Ok(Outcome {
        value: account_as_opened(client, AccountId::from(id), transfer_id).await?,
        replayed: true,
    })
}

/// The account as its opening answered: open, holding its opening deposit
/// (or nothing). Everything else about an account is immutable, so this is
/// the original response of the opening, whatever happened since.
async fn account_as_opened(
    client: &impl GenericClient,
    id: AccountId,
    opening_deposit: Option<uuid::Uuid>,
) -> Result<Account, StoreError> {
    let mut account = fetch_account(client, id).await?;
    account.balance = match opening_deposit {
        Some(transfer) => {
            crate::transfers::fetch_transfer(client, TransferId::from(transfer))
                .await?
                .amount
        }
        None => Decimal::ZERO,
    };
    account.closed_at = None;
    let statement = client
        .prepare_cached("select overdraft_limit from ledger.accounts where account_id = $1")
        .await?;
    account.overdraft_limit = client
        .query_one(&statement, &[&id.as_uuid()])
        .await?
        .try_get("overdraft_limit")?;
    Ok(account)
}

pub(crate) async fn fetch_account(
    client: &impl GenericClient,
    id: AccountId,
) -> Result<Account, StoreError> {
    let sql = format!("select {ACCOUNT_COLUMNS} from ledger.accounts where account_id = $1");
    let row = find_one(
        client,
        &sql,
        &[&id.as_uuid()],
        DomainError::AccountNotFound(id),
    )
    .await?;
    account_from_row(&row)
}

fn open_fingerprint(
    request: &NewAccount,
    initial: Option<&Amount>,
    overdraft_limit: Decimal,
) -> RequestFingerprint {
    let id = request.id.map(|id| id.to_string()).unwrap_or_default();
    let initial = initial
        .map(|amount| amount.value().normalize().to_string())
        .unwrap_or_default();
    let metadata = request
        .metadata
        .as_ref()
        .map(Metadata::canonical)
        .unwrap_or_default();
    // The line joins the fingerprint only when there is one, so that a key
    // recorded before lines existed still matches its request.
    let line = overdraft_limit.normalize().to_string();
    let mut parts: Vec<&str> = vec![&id, request.currency.code(), &initial, &metadata];
    if !overdraft_limit.is_zero() {
        parts.push(&line);
    }
    RequestFingerprint::of("open_account", &parts)
}
