use std::time::Duration;

use deadpool_postgres::GenericClient;
use ledger_domain::{
    check_amount, check_request, decide, AccountId, Currency, Decimal, DomainError, IdempotencyKey,
    Metadata, Operation, RequestFingerprint, TransferId,
};
use rand::Rng;
use tracing::{debug, instrument};
use uuid::Uuid;

use crate::error::Context;
use crate::group_commit::{write_error, Leg, LegAnswer, LegClaim};
use crate::heads::{read_source_head, read_write_destination, WRITE_HEAD};
use crate::idempotency::Idempotency;
use crate::records::{
    currency_of, find_one, transfer_from_row, Outcome, Posting, Transfer, TRANSFER_COLUMNS,
};
use crate::{Ledger, StoreError};

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
    #[instrument(
        skip(self, metadata, key),
        fields(operation = posting.operation(), transfer.id = tracing::field::Empty)
    )]
    pub async fn post(
        &self,
        posting: Posting,
        amount: Decimal,
        metadata: Option<Metadata>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        // Rules that need no ledger state come first: a bad request costs no
        // database round trip.
        if let Posting::Transfer {
            source,
            destination,
        } = posting
        {
            check_request(Operation::Transfer, source, destination, amount)?;
        } else {
            // The system account end is not resolved yet.
            check_amount(amount)?;
        }

        let fingerprint = fingerprint(&posting, amount, metadata.as_ref());
        match self
            .write(posting, amount, metadata, fingerprint, key)
            .await?
        {
            LegAnswer::Applied { transfer, .. } => Ok(Outcome {
                value: transfer,
                replayed: false,
            }),
            LegAnswer::Replayed { transfer_id, .. } => self.replayed_transfer(transfer_id).await,
        }
    }

    /// The transfer an idempotency key recorded, as a replay.
    pub(crate) async fn replayed_transfer(
        &self,
        transfer_id: Option<Uuid>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        let id = transfer_id.ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("idempotency key without a transfer"))
        })?;
        let client = self.client().await?;
        let transfer = fetch_transfer(&client, TransferId::from(id)).await?;
        Ok(Outcome {
            value: transfer,
            replayed: true,
        })
    }

    /// Queues one write out of its source (every kind of row goes this way)
    /// with its idempotency key, and answers what the group did with it.
    pub(crate) async fn write(
        &self,
        posting: Posting,
        amount: Decimal,
        metadata: Option<Metadata>,
        fingerprint: RequestFingerprint,
        key: Option<&IdempotencyKey>,
    ) -> Result<LegAnswer, StoreError> {
        let transfer_id = TransferId::generate();
        tracing::Span::current().record("transfer.id", tracing::field::display(transfer_id));
        // Resolve the system account before queueing: creating it needs a
        // connection of its own (see ensure_system_account).
        let (source, destination) = self.resolve(&posting).await?;
        let claim = key.map(|key| LegClaim {
            idempotency: Idempotency {
                key: key.clone(),
                fingerprint,
            },
            operation: posting.operation(),
            account_id: match posting {
                Posting::OverdraftChange { account } => Some(account.as_uuid()),
                _ => None,
            },
        });
        let leg = Leg {
            posting,
            source,
            destination,
            amount,
            metadata: metadata.as_ref().map(Metadata::to_value),
            transfer_id,
            claim,
            opening: None,
            author: self.author,
        };
        self.submit(leg).await
    }

    /// How much of a transfer its reversals have moved back, derived from
    /// them at read time (the transfer's own row never changes).
    pub async fn reversed_amount(&self, id: TransferId) -> Result<Decimal, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "select coalesce(sum(amount), 0) as reversed from ledger.transfers \
                  where reverses_transfer_id = $1",
            )
            .await?;
        let row = client.query_one(&statement, &[&id.as_uuid()]).await?;
        Ok(row.try_get("reversed")?)
    }

    /// Reads one transfer.
    #[instrument(skip(self), fields(transfer.id = %id))]
    pub async fn get_transfer(&self, id: TransferId) -> Result<Transfer, StoreError> {
        let client = self.client().await?;
        fetch_transfer(&client, id).await
    }

    /// One leg alone, in autocommit: reads both accounts' heads, lets the
    /// domain decide, and inserts the row; retries with a fresh head while
    /// another process wins the source's next sequence number (`lost` counts
    /// those races).
    pub(crate) async fn apply(
        &self,
        client: &impl GenericClient,
        leg: &Leg,
        lost: &mut u32,
    ) -> Result<Transfer, StoreError> {
        let (source, destination) = (leg.source, leg.destination);
        let head_statement = client
            .prepare_cached(WRITE_HEAD)
            .await
            .context("prepare the write head")?;
        let insert = client
            .prepare_cached(&insert_transfer_sql())
            .await
            .context("prepare the transfer insert")?;

        for attempt in 0..self.config.max_sequence_retries {
            let row = client
                .query_opt(
                    &head_statement,
                    &[&source.as_uuid(), &destination.as_uuid()],
                )
                .await?
                .ok_or(DomainError::AccountNotFound(source))?;
            let head = read_source_head(&row)?;
            let destination_state = read_write_destination(&row, destination)?
                .ok_or(DomainError::AccountNotFound(destination))?;
            let decision = decide(leg.posting.kind(), &head, &destination_state, leg.amount)?;
            let currency = head.currency;
            let inserted = client
                .query_opt(
                    &insert,
                    &[
                        &source.as_uuid(),
                        &decision.seq,
                        &leg.transfer_id.as_uuid(),
                        &destination.as_uuid(),
                        &currency.code(),
                        &decision.amount,
                        &leg.metadata,
                        &leg.author,
                    ],
                )
                .await
                .map_err(|err| write_error(err, leg, currency))?;
            if let Some(row) = inserted {
                return transfer_from_row(&row);
            }
            // Another process's transfer took the sequence number (the insert
            // waited for it to commit). Read the new head and try again,
            // after a short random pause once the race repeats, so that
            // losers spread out.
            *lost += 1;
            debug!(attempt, source_seq = decision.seq, "lost the sequence race");
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
            }
            | Posting::Hold {
                source,
                destination,
                ..
            }
            | Posting::Capture {
                source,
                destination,
                ..
            }
            | Posting::Reversal {
                source,
                destination,
                ..
            } => return Ok((source, destination)),
            Posting::Deposit { account }
            | Posting::Withdrawal { account }
            | Posting::OverdraftChange { account } => account,
        };
        let currency = {
            let client = self.client().await?;
            let missing = DomainError::AccountNotFound(account);
            let row = find_one(&client, ACCOUNT_CURRENCY, &[&account.as_uuid()], missing).await?;
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
        let row = client
            .query_one(&statement, &[&currency.code()])
            .await
            .context("create the system account")?;
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
             destination_account_id, currency_code, amount, metadata, created_by) \
         values ($1, $2, $3, $4, $5, $6, $7, $8) \
         on conflict (source_account_id, source_seq) do nothing \
         returning {TRANSFER_COLUMNS}"
    )
}

/// The domain's view of a [`WRITE_HEAD`] row.
pub(crate) async fn fetch_transfer(
    client: &impl GenericClient,
    id: TransferId,
) -> Result<Transfer, StoreError> {
    // A hold's placement or a line change is a row of the log, but not a
    // transfer: it moves nothing (amount 0).
    let sql = format!(
        "select {TRANSFER_COLUMNS} from ledger.transfers where transfer_id = $1 and amount > 0"
    );
    let row = find_one(
        client,
        &sql,
        &[&id.as_uuid()],
        DomainError::TransferNotFound(id),
    )
    .await?;
    transfer_from_row(&row)
}

/// What makes two postings the same request: the operation, the accounts,
/// the amount's value (`1.0` and `1` are the same) and the metadata. (The
/// other writes fingerprint their own requests: see `holds`.)
pub(crate) fn fingerprint(
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
        Posting::Deposit { account }
        | Posting::Withdrawal { account }
        | Posting::OverdraftChange { account } => RequestFingerprint::of(
            posting.operation(),
            &[&account.to_string(), &amount, &metadata],
        ),
        Posting::Hold {
            source,
            destination,
            ..
        }
        | Posting::Capture {
            source,
            destination,
            ..
        }
        | Posting::Reversal {
            source,
            destination,
            ..
        } => RequestFingerprint::of(
            posting.operation(),
            &[
                &source.to_string(),
                &destination.to_string(),
                &amount,
                &metadata,
            ],
        ),
    }
}
