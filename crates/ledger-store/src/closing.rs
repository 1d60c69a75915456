//! Closing an account: a protocol between two transactions of its own, with
//! no lock on the write path (see `close_account` and docs/design.md
//! "Closing an account without locks").

use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use ledger_domain::{
    AccountId, AccountKind, Decimal, DomainError, IdempotencyKey, RequestFingerprint,
};
use tracing::instrument;

use crate::accounts::fetch_account;
use crate::idempotency::{claim, Claim, Idempotency};
use crate::records::{Account, Outcome};
use crate::{Ledger, StoreError};

impl Ledger {
    /// Closes an account whose balance is zero. Without locks on the write
    /// path, a close is a protocol between two transactions of its own:
    ///
    /// 1. the *closing* transaction starts and takes an xid, which it keeps
    ///    open to the end;
    /// 2. the *mark* (on a second connection, committed at once) records that
    ///    xid on the account. Transfers read the account after taking their
    ///    own xid, and refuse it while the closing transaction runs
    ///    (`ledger.close_state`);
    /// 3. wait until every transaction that could have read the account
    ///    before the mark has ended: then its balance can no longer change;
    /// 4. the closing transaction checks the balance and sets `closed_at`
    ///    (zero), or rolls back (not zero).
    ///
    /// The mark is live only while its own closing transaction runs. Whatever
    /// ends an attempt early (a refusal, an error, a timeout, the client going
    /// away and this future being dropped, the process dying) ends that
    /// transaction, and the account is open again at once: no state outlives
    /// the attempt. Two attempts on one account cannot share a mark: the
    /// second finds the first's live and answers `AccountClosing`.
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
        // Each close holds two connections at once; a bound on concurrent
        // closes keeps them from taking the whole pool (hold and wait).
        let _slot = self
            .close_slots
            .acquire(self.config.acquire_timeout)
            .await?;
        let marker = self.client().await?;

        // A replay needs no new close; a reused key fails before any change.
        if let Some(idempotency) = &idempotency {
            let statement = marker
                .prepare_cached(
                    "select request_fingerprint, account_id from ledger.idempotency_keys \
                      where idempotency_key = $1",
                )
                .await?;
            if let Some(row) = marker
                .query_opt(&statement, &[&idempotency.key.as_str()])
                .await?
            {
                let fingerprint: &[u8] = row.try_get("request_fingerprint")?;
                if fingerprint != idempotency.fingerprint.as_bytes() {
                    return Err(DomainError::IdempotencyKeyReused.into());
                }
                // A closed account never changes again: this is the original
                // response.
                return Ok(Outcome {
                    value: fetch_account(&marker, id).await?,
                    replayed: true,
                });
            }
        }

        let account = fetch_account(&marker, id).await?;
        if account.kind == AccountKind::System {
            return Err(DomainError::SystemAccount(id).into());
        }
        if account.closed_at.is_some() {
            return Err(DomainError::AccountClosed(id).into());
        }
        if !account.balance.is_zero() {
            return Err(DomainError::AccountNotEmpty(id).into());
        }

        // Step 1: the closing transaction, with its xid.
        let mut closer = self.client().await?;
        let closing = closer.transaction().await?;
        let closing_xid = current_xid(&closing).await?;

        // Step 2: the mark, unless another attempt's is live.
        let mark = marker
            .prepare_cached(
                "update ledger.accounts \
                    set closing_at = clock_timestamp(), closing_xid = $2::bigint::text::xid8 \
                  where account_id = $1 and ledger.close_state(closed_at, closing_xid) = 'open'",
            )
            .await?;
        if marker
            .execute(&mark, &[&id.as_uuid(), &closing_xid])
            .await?
            == 0
        {
            let state = marker
                .query_one(
                    "select ledger.close_state(closed_at, closing_xid) from ledger.accounts \
                      where account_id = $1",
                    &[&id.as_uuid()],
                )
                .await?;
            return Err(match state.try_get::<_, &str>(0)? {
                "closed" => DomainError::AccountClosed(id),
                _ => DomainError::AccountClosing(id),
            }
            .into());
        }

        // Step 3. On any error below, `closing` is dropped and rolls back.
        self.wait_for_transactions_that_missed_the_mark(&marker, closing_xid)
            .await?;

        // Step 4: the balance is now final.
        let balance_statement = closing.prepare_cached("select ledger.balance($1)").await?;
        let balance: Decimal = closing
            .query_one(&balance_statement, &[&id.as_uuid()])
            .await?
            .try_get(0)?;
        if !balance.is_zero() {
            closing.rollback().await?;
            return Err(DomainError::AccountNotEmpty(id).into());
        }
        if let Some(idempotency) = &idempotency {
            // The key was free when this attempt started; a concurrent request
            // with the same key for this account could not have closed it
            // meanwhile (this attempt's mark refuses theirs), so a claim that
            // is not ours is a conflict or still in flight, both errors.
            if let Claim::Replay { .. } = claim(
                &closing,
                idempotency,
                "close_account",
                Some(id.as_uuid()),
                None,
            )
            .await?
            {
                return Err(StoreError::IdempotencyInFlight);
            }
        }
        let finish = closing
            .prepare_cached(
                "update ledger.accounts set closed_at = clock_timestamp(), closed_by = $2 \
                  where account_id = $1 and closed_at is null \
                    and closing_xid = pg_current_xact_id()",
            )
            .await?;
        if closing
            .execute(&finish, &[&id.as_uuid(), &self.author])
            .await?
            != 1
        {
            // Nothing else may touch a live mark: this is a bug, and the close
            // must not answer as if it had happened.
            return Err(StoreError::Internal(anyhow::anyhow!(
                "the close of {id} lost its own mark"
            )));
        }
        let account = fetch_account(&closing, id).await?;
        closing.commit().await?;
        Ok(Outcome {
            value: account,
            replayed: false,
        })
    }

    /// Waits until every transaction that may have read the account before
    /// the mark committed has ended. A transfer takes its xid before reading
    /// the account, so one that missed the mark has an xid below one taken
    /// now, after the mark: wait until no xid below that one is running.
    /// Left out: transactions in other databases of the cluster (they cannot
    /// write this ledger; `backend_xid` and `datid` are visible to every
    /// role), other closes' own transactions (they insert no transfers, and
    /// two closes waiting for each other would wait for ever), and this
    /// close's own.
    ///
    /// Both are judged by snapshots, not by `pg_xact_status`: a transaction
    /// is marked committed in the commit log a moment before new snapshots
    /// see it, and a balance read in that moment would miss its transfer.
    /// And a snapshot lists only running xids below its `xmax`, which is
    /// past the fresh xid once that one has ended.
    async fn wait_for_transactions_that_missed_the_mark(
        &self,
        client: &impl GenericClient,
        closing_xid: i64,
    ) -> Result<(), StoreError> {
        let after_mark = current_xid(client).await?;
        let still_running = client
            .prepare_cached(
                "select count(*) from pg_snapshot_xip(pg_current_snapshot()) x \
                  where x < $1::bigint::text::xid8 and x <> $2::bigint::text::xid8 \
                    and not exists (select 1 from ledger.accounts a where a.closing_xid = x) \
                    and exists (select 1 from pg_stat_activity s \
                                 where s.backend_xid = x::xid \
                                   and s.datid = (select oid from pg_database \
                                                   where datname = current_database()))",
            )
            .await?;
        let deadline = Instant::now() + self.config.close_wait;
        loop {
            let running: i64 = client
                .query_one(&still_running, &[&after_mark, &closing_xid])
                .await?
                .try_get(0)?;
            if running == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "a long-running transaction kept the close from completing".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The xid of `client`'s transaction (assigning one if it has none yet), as
/// a number.
async fn current_xid(client: &impl GenericClient) -> Result<i64, StoreError> {
    let row = client
        .query_one("select pg_current_xact_id()::text::bigint", &[])
        .await?;
    Ok(row.try_get(0)?)
}
