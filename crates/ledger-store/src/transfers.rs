use std::time::Duration;

use deadpool_postgres::GenericClient;
use ledger_domain::{
    check_funds, AccountId, AccountKind, Amount, Currency, Decimal, DomainError, IdempotencyKey,
    Metadata, RequestFingerprint, TransferId, MAX_AMOUNT,
};
use rand::Rng;
use tokio_postgres::types::ToSql;
use tracing::{debug, instrument};
use uuid::Uuid;

use crate::error::{constraint_violation, WriteContext};
use crate::idempotency::{claim, Claim, Idempotency};
use crate::records::{
    currency_of, transfer_from_row, Outcome, Posting, Transfer, TRANSFER_COLUMNS,
};
use crate::{Ledger, StoreError};

/// The source's state that a transfer is checked against. Public, with the
/// other statements of the write path, so that the benchmark can drive
/// exactly this SQL with pgbench.
pub const SOURCE_HEAD: &str = "\
    select a.currency_code, a.is_system, ledger.close_state(a.closed_at, a.closing_xid) as close_state,
           coalesce(h.source_seq + 1, 0) as next_seq,
           ledger.incoming_total(a.account_id) - coalesce(h.source_outgoing_total, 0) as balance
      from ledger.accounts a
      left join lateral (
            select t.source_seq, t.source_outgoing_total
              from ledger.transfers t
             where t.source_account_id = a.account_id
             order by t.source_seq desc
             limit 1) h on true
     where a.account_id = $1";

/// The destination's state, read together with [`SOURCE_HEAD`].
pub const DESTINATION_STATE: &str = "\
    select currency_code, ledger.close_state(closed_at, closing_xid) as close_state
      from ledger.accounts
     where account_id = $1";

const ACCOUNT_CURRENCY: &str = "select currency_code from ledger.accounts where account_id = $1";

impl Ledger {
    /// Moves `amount` between two customer accounts.
    pub async fn transfer(
        &self,
        source: AccountId,
        destination: AccountId,
        amount: Decimal,
        metadata: Option<Metadata>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        let posting = Posting::Transfer {
            source,
            destination,
        };
        self.post(posting, amount, metadata, key).await
    }

    /// Moves `amount` from the currency's system account into `account`.
    pub async fn deposit(
        &self,
        account: AccountId,
        amount: Decimal,
        metadata: Option<Metadata>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        self.post(Posting::Deposit { account }, amount, metadata, key)
            .await
    }

    /// Moves `amount` from `account` to the currency's system account.
    pub async fn withdraw(
        &self,
        account: AccountId,
        amount: Decimal,
        metadata: Option<Metadata>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        self.post(Posting::Withdrawal { account }, amount, metadata, key)
            .await
    }

    /// Applies one posting: exactly once, or not at all.
    #[instrument(skip(self, metadata, key), fields(operation = posting.operation()))]
    pub async fn post(
        &self,
        posting: Posting,
        amount: Decimal,
        metadata: Option<Metadata>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        // Rules that need no ledger state come first: a bad request costs no
        // database round trip.
        if amount <= Decimal::ZERO {
            return Err(DomainError::NonPositiveAmount.into());
        }
        if amount > MAX_AMOUNT {
            return Err(DomainError::AmountTooLarge { max: MAX_AMOUNT }.into());
        }
        if let Posting::Transfer {
            source,
            destination,
        } = &posting
        {
            if source == destination {
                return Err(DomainError::SameAccount.into());
            }
            // Money leaves the ledger only by a withdrawal, which has its own
            // endpoint, idempotency scope and (later) permissions: a transfer
            // to a system account would be one under another name. The id
            // range is reserved for system accounts by a CHECK.
            if destination.is_reserved_for_system() {
                return Err(DomainError::SystemAccount(*destination).into());
            }
        }

        let transfer_id = TransferId::generate();
        // Resolve the system account before taking this request's connection:
        // creating it needs a connection of its own (see ensure_system_account).
        let (source, destination) = self.resolve(&posting).await?;
        let mut client = self.client().await?;
        let Some(key) = key else {
            let transfer = self
                .apply(
                    &client,
                    &posting,
                    (source, destination),
                    amount,
                    metadata.as_ref(),
                    transfer_id,
                )
                .await?;
            return Ok(Outcome {
                value: transfer,
                replayed: false,
            });
        };

        let idempotency = Idempotency {
            key: key.clone(),
            fingerprint: fingerprint(&posting, amount, metadata.as_ref()),
        };
        let tx = client.transaction().await?;
        let claimed = claim(
            &tx,
            &idempotency,
            posting.operation(),
            None,
            Some(transfer_id.as_uuid()),
        )
        .await?;
        match claimed {
            Claim::Claimed => {
                let transfer = self
                    .apply(
                        &tx,
                        &posting,
                        (source, destination),
                        amount,
                        metadata.as_ref(),
                        transfer_id,
                    )
                    .await?;
                tx.commit().await?;
                Ok(Outcome {
                    value: transfer,
                    replayed: false,
                })
            }
            Claim::Replay { transfer_id, .. } => {
                let id = transfer_id.ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("idempotency key without a transfer"))
                })?;
                let transfer = fetch_transfer(&tx, TransferId::from(id)).await?;
                Ok(Outcome {
                    value: transfer,
                    replayed: true,
                })
            }
        }
    }

    /// Reads one transfer.
    pub async fn get_transfer(&self, id: TransferId) -> Result<Transfer, StoreError> {
        let client = self.client().await?;
        fetch_transfer(&client, id).await
    }

    /// Resolves the posting's accounts and inserts the row, retrying while
    /// other transfers win the source's next sequence number.
    pub(crate) async fn apply(
        &self,
        client: &impl GenericClient,
        posting: &Posting,
        (source, destination): (AccountId, AccountId),
        amount: Decimal,
        metadata: Option<&Metadata>,
        transfer_id: TransferId,
    ) -> Result<Transfer, StoreError> {
        let head = client.prepare_cached(SOURCE_HEAD).await?;
        let destination_state = client.prepare_cached(DESTINATION_STATE).await?;
        let insert = client.prepare_cached(&insert_transfer_sql()).await?;
        let metadata_json = metadata.map(Metadata::to_value);

        for attempt in 0..self.config.max_sequence_retries {
            let source_uuid = source.as_uuid();
            let destination_uuid = destination.as_uuid();
            // Both reads go out on the connection together (pipelined). In a
            // transaction, a failed first read (e.g. statement timeout) makes
            // the second fail with 25P02 "transaction is aborted", so the
            // first read's error is the one to report.
            let source_params: [&(dyn ToSql + Sync); 1] = [&source_uuid];
            let destination_params: [&(dyn ToSql + Sync); 1] = [&destination_uuid];
            let (source_row, destination_row) = tokio::join!(
                client.query_opt(&head, &source_params),
                client.query_opt(&destination_state, &destination_params),
            );
            let source_row = source_row?.ok_or(DomainError::AccountNotFound(source))?;
            let destination_row =
                destination_row?.ok_or(DomainError::AccountNotFound(destination))?;

            let currency = currency_of(source_row.try_get("currency_code")?)?;
            let kind = if source_row.try_get("is_system")? {
                AccountKind::System
            } else {
                AccountKind::Customer
            };
            if kind == AccountKind::System && matches!(posting, Posting::Transfer { .. }) {
                return Err(DomainError::SystemAccount(source).into());
            }
            check_open(source, source_row.try_get("close_state")?)?;
            check_open(destination, destination_row.try_get("close_state")?)?;
            let destination_currency: &str = destination_row.try_get("currency_code")?;
            if destination_currency != currency.code() {
                return Err(DomainError::CurrencyMismatch {
                    expected: currency.code().to_owned(),
                    found: destination_currency.to_owned(),
                }
                .into());
            }
            let amount = Amount::new(amount, currency)?;
            let balance: Decimal = source_row.try_get("balance")?;
            check_funds(source, kind, balance, &amount)?;

            let next_seq: i64 = source_row.try_get("next_seq")?;
            let inserted = client
                .query_opt(
                    &insert,
                    &[
                        &source_uuid,
                        &next_seq,
                        &transfer_id.as_uuid(),
                        &destination_uuid,
                        &currency.code(),
                        &amount.value(),
                        &metadata_json,
                    ],
                )
                .await
                .map_err(|err| write_error(err, source, destination, currency))?;
            if let Some(row) = inserted {
                return transfer_from_row(&row);
            }
            // Another transfer took `next_seq` (the insert waited for it to
            // commit). Read the new head and try again, after a short random
            // pause once the race repeats, so that losers spread out.
            debug!(attempt, source_seq = next_seq, "lost the sequence race");
            if attempt >= 2 {
                let cap_us = 50 * u64::from(attempt.min(20));
                let pause_us = rand::thread_rng().gen_range(0..=cap_us);
                tokio::time::sleep(Duration::from_micros(pause_us)).await;
            }
        }
        Err(StoreError::Contention(source))
    }

    /// The posting's (source, destination), the system account of the
    /// account's currency standing in for the outside world.
    async fn resolve(&self, posting: &Posting) -> Result<(AccountId, AccountId), StoreError> {
        let account = match *posting {
            Posting::Transfer {
                source,
                destination,
            } => return Ok((source, destination)),
            Posting::Deposit { account } | Posting::Withdrawal { account } => account,
        };
        let currency = {
            let client = self.client().await?;
            let statement = client.prepare_cached(ACCOUNT_CURRENCY).await?;
            let row = client
                .query_opt(&statement, &[&account.as_uuid()])
                .await?
                .ok_or(DomainError::AccountNotFound(account))?;
            currency_of(row.try_get("currency_code")?)?
        };
        let system = self.ensure_system_account(currency).await?;
        Ok(match posting {
            Posting::Deposit { .. } => (system, account),
            _ => (account, system),
        })
    }

    /// Creates the system account of `currency` unless it exists. The answer
    /// never changes once yes, so it is remembered per process. It is created
    /// on a pooled connection of its own, in autocommit, and remembered only
    /// once that has committed: created inside the caller's transaction, it
    /// would be remembered before other requests could see it.
    pub(crate) async fn ensure_system_account(
        &self,
        currency: Currency,
    ) -> Result<AccountId, StoreError> {
        let id = AccountId::system(currency);
        if self
            .known_system_accounts
            .read()
            .is_ok_and(|known| known.contains(&id))
        {
            return Ok(id);
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached("select ledger.ensure_system_account($1)")
            .await?;
        let row = client.query_one(&statement, &[&currency.code()]).await?;
        let created: Option<Uuid> = row.try_get(0)?;
        if created != Some(id.as_uuid()) {
            return Err(StoreError::Internal(anyhow::anyhow!(
                "system account of {currency} is {created:?}, expected {id}"
            )));
        }
        if let Ok(mut known) = self.known_system_accounts.write() {
            known.insert(id);
        }
        Ok(id)
    }
}

/// The insert of the write path: `$1` source, `$2` sequence number, `$3`
/// transfer id, `$4` destination, `$5` currency, `$6` amount, `$7` metadata.
pub fn insert_transfer_sql() -> String {
    format!(
        "insert into ledger.transfers (source_account_id, source_seq, transfer_id, \
             destination_account_id, currency_code, amount, metadata) \
         values ($1, $2, $3, $4, $5, $6, $7) \
         on conflict (source_account_id, source_seq) do nothing \
         returning {TRANSFER_COLUMNS}"
    )
}

/// Refuses an account that is closed, or whose close is in progress (a
/// transient state with its own, retryable, error). `state` is
/// `ledger.close_state`'s answer.
fn check_open(account: AccountId, state: &str) -> Result<(), DomainError> {
    match state {
        "closed" => Err(DomainError::AccountClosed(account)),
        "closing" => Err(DomainError::AccountClosing(account)),
        _ => Ok(()),
    }
}

fn write_error(
    err: tokio_postgres::Error,
    source: AccountId,
    destination: AccountId,
    currency: Currency,
) -> StoreError {
    let context = WriteContext {
        source,
        destination,
        currency: currency.code(),
        max_decimals: currency.minor_units(),
    };
    match constraint_violation(&err, &context) {
        Some(domain) => domain.into(),
        None => err.into(),
    }
}

pub(crate) async fn fetch_transfer(
    client: &impl GenericClient,
    id: TransferId,
) -> Result<Transfer, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "select {TRANSFER_COLUMNS} from ledger.transfers where transfer_id = $1"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&id.as_uuid()])
        .await?
        .ok_or(DomainError::TransferNotFound(id))?;
    transfer_from_row(&row)
}

/// What makes two postings the same request: the operation, the accounts,
/// the amount's value (`1.0` and `1` are the same) and the metadata.
fn fingerprint(
    posting: &Posting,
    amount: Decimal,
    metadata: Option<&Metadata>,
) -> RequestFingerprint {
    let amount = amount.normalize().to_string();
    let metadata = metadata.map(Metadata::canonical).unwrap_or_default();
    match posting {
        Posting::Transfer {
            source,
            destination,
        } => RequestFingerprint::of(
            "transfer",
            &[
                &source.to_string(),
                &destination.to_string(),
                &amount,
                &metadata,
            ],
        ),
        Posting::Deposit { account } | Posting::Withdrawal { account } => RequestFingerprint::of(
            posting.operation(),
            &[&account.to_string(), &amount, &metadata],
        ),
    }
}
