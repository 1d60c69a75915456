use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use ledger_domain::{
    AccountId, AccountKind, Amount, Decimal, DomainError, IdempotencyKey, Metadata,
    RequestFingerprint, TransferId,
};
use tracing::instrument;

use crate::balances::PAGE_BYTE_BUDGET;
use crate::error::{is_unique_violation, violates};
use crate::idempotency::{claim, Claim, Idempotency};
use crate::records::{
    account_from_row, Account, NewAccount, Outcome, Page, Posting, ACCOUNT_COLUMNS,
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
        let id = request.id.unwrap_or_else(AccountId::generate);
        // Before taking this request's connection: creating the system account
        // needs one of its own (see ensure_system_account).
        let system = match initial {
            Some(_) => Some(self.ensure_system_account(request.currency).await?),
            None => None,
        };

        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(key) = key {
            let idempotency = Idempotency {
                key: key.clone(),
                fingerprint: open_fingerprint(&request, initial.as_ref()),
            };
            let claimed =
                claim(&tx, &idempotency, "open_account", Some(id.as_uuid()), None).await?;
            if let Claim::Replay { account_id, .. } = claimed {
                let id = account_id.ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("idempotency key without an account"))
                })?;
                let account = fetch_account(&tx, AccountId::from(id)).await?;
                return Ok(Outcome {
                    value: account,
                    replayed: true,
                });
            }
        }

        let insert = tx
            .prepare_cached(
                "insert into ledger.accounts (account_id, currency_code, metadata) \
                 values ($1, $2, $3)",
            )
            .await?;
        let metadata = request.metadata.as_ref().map(Metadata::to_value);
        tx.execute(
            &insert,
            &[&id.as_uuid(), &request.currency.code(), &metadata],
        )
        .await
        .map_err(|err| {
            if is_unique_violation(&err, "accounts_pkey") {
                DomainError::AccountExists(id).into()
            } else if violates(&err, "accounts_currency_code_fkey") {
                DomainError::UnknownCurrency(request.currency.code().to_owned()).into()
            } else {
                StoreError::from(err)
            }
        })?;
        if let (Some(amount), Some(system)) = (initial, system) {
            self.apply(
                &tx,
                &Posting::Deposit { account: id },
                (system, id),
                amount.value(),
                None,
                TransferId::generate(),
            )
            .await?;
        }
        let account = fetch_account(&tx, id).await?;
        tx.commit().await?;
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
                            where account_id > $1 order by account_id limit $2) a
                 ) p
                 where bytes_before < $3
                 order by account_id"
            ))
            .await?;
        // One more than asked tells whether there is a next page.
        let rows = client
            .query(
                &statement,
                &[&after, &(i64::from(limit) + 1), &PAGE_BYTE_BUDGET],
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

    /// Closes an account whose balance is zero. Without taking locks, this
    /// is three steps: mark the account as closing, so that every transfer
    /// that starts from then on refuses it; wait until every transaction that
    /// might have missed the mark has finished; then look at the balance,
    /// which can no longer change, and either finish the close or undo the
    /// mark.
    #[instrument(skip(self, key), fields(account.id = %id))]
    pub async fn close_account(
        &self,
        id: AccountId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Account>, StoreError> {
        let idempotency = key.map(|key| Idempotency {
            key: key.clone(),
            fingerprint: RequestFingerprint::of("close_account", &[&id.to_string()]),
        });
        let client = self.client().await?;

        // A replay needs no new close; a reused key fails before any change.
        if let Some(idempotency) = &idempotency {
            let statement = client
                .prepare_cached(
                    "select request_fingerprint, account_id from ledger.idempotency_keys \
                      where idempotency_key = $1",
                )
                .await?;
            if let Some(row) = client
                .query_opt(&statement, &[&idempotency.key.as_str()])
                .await?
            {
                let fingerprint: &[u8] = row.try_get("request_fingerprint")?;
                if fingerprint != idempotency.fingerprint.as_bytes() {
                    return Err(DomainError::IdempotencyKeyReused.into());
                }
                return Ok(Outcome {
                    value: fetch_account(&client, id).await?,
                    replayed: true,
                });
            }
        }

        let account = fetch_account(&client, id).await?;
        if account.kind == AccountKind::System {
            return Err(DomainError::SystemAccount(id).into());
        }
        if account.closed_at.is_some() {
            return Err(DomainError::AccountClosed(id).into());
        }
        if !account.balance.is_zero() {
            return Err(DomainError::AccountNotEmpty(id).into());
        }

        // Step 1: mark. From the commit on, transfers see the mark (their
        // trigger reads the account after taking its xid).
        let mark = client
            .prepare_cached(
                "update ledger.accounts set closing_at = coalesce(closing_at, clock_timestamp()) \
                  where account_id = $1 and closed_at is null",
            )
            .await?;
        if client.execute(&mark, &[&id.as_uuid()]).await? == 0 {
            return Err(DomainError::AccountClosed(id).into());
        }

        // Step 2: an xid taken now is later than that of every transaction
        // that could have read the account before the mark; wait until all
        // of them have finished.
        if let Err(err) = self.wait_for_transactions_before_now(&client).await {
            self.undo_closing(&client, id).await?;
            return Err(err);
        }

        // Step 3: the balance is now final.
        let mut client = client;
        let tx = client.transaction().await?;
        let balance_statement = tx.prepare_cached("select ledger.balance($1)").await?;
        let balance: Decimal = tx
            .query_one(&balance_statement, &[&id.as_uuid()])
            .await?
            .try_get(0)?;
        if !balance.is_zero() {
            tx.rollback().await?;
            self.undo_closing(&client, id).await?;
            return Err(DomainError::AccountNotEmpty(id).into());
        }
        if let Some(idempotency) = &idempotency {
            if let Claim::Replay { .. } =
                claim(&tx, idempotency, "close_account", Some(id.as_uuid()), None).await?
            {
                // A concurrent request with the same key closed it first.
            }
        }
        let finish = tx
            .prepare_cached(
                "update ledger.accounts set closed_at = clock_timestamp() \
                  where account_id = $1 and closed_at is null and closing_at is not null",
            )
            .await?;
        tx.execute(&finish, &[&id.as_uuid()]).await?;
        let account = fetch_account(&tx, id).await?;
        tx.commit().await?;
        Ok(Outcome {
            value: account,
            replayed: false,
        })
    }

    async fn wait_for_transactions_before_now(
        &self,
        client: &impl GenericClient,
    ) -> Result<(), StoreError> {
        let now_xid: i64 = client
            .query_one("select pg_current_xact_id()::text::bigint", &[])
            .await?
            .try_get(0)?;
        let xmin = client
            .prepare_cached("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            .await?;
        let deadline = Instant::now() + self.config.close_wait;
        loop {
            let oldest_running: i64 = client.query_one(&xmin, &[]).await?.try_get(0)?;
            if oldest_running > now_xid {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "a long-running transaction kept the close from completing".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn undo_closing(
        &self,
        client: &impl GenericClient,
        id: AccountId,
    ) -> Result<(), StoreError> {
        client
            .execute(
                "update ledger.accounts set closing_at = null \
                  where account_id = $1 and closed_at is null",
                &[&id.as_uuid()],
            )
            .await?;
        Ok(())
    }
}

pub(crate) async fn fetch_account(
    client: &impl GenericClient,
    id: AccountId,
) -> Result<Account, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "select {ACCOUNT_COLUMNS} from ledger.accounts where account_id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&id.as_uuid()])
        .await?
        .ok_or(DomainError::AccountNotFound(id))?;
    account_from_row(&row)
}

fn open_fingerprint(request: &NewAccount, initial: Option<&Amount>) -> RequestFingerprint {
    let id = request.id.map(|id| id.to_string()).unwrap_or_default();
    let initial = initial
        .map(|amount| amount.value().normalize().to_string())
        .unwrap_or_default();
    let metadata = request
        .metadata
        .as_ref()
        .map(Metadata::canonical)
        .unwrap_or_default();
    RequestFingerprint::of(
        "open_account",
        &[&id, request.currency.code(), &initial, &metadata],
    )
}
