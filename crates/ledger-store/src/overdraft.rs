//! Overdraft lines: how far below zero an account's balance may go. A change
//! is a row of the account's own sequence (`sql/V6`), so no write out of it
//! that commits after the change is judged by the old line.

use ledger_domain::{AccountId, Decimal, IdempotencyKey, RequestFingerprint};
use tracing::instrument;

use crate::group_commit::LegAnswer;
use crate::records::{Outcome, Posting};
use crate::{Account, Ledger, StoreError};

impl Ledger {
    /// Sets an account's overdraft line, as a row of its own sequence: no
    /// write out of the account that commits after it is judged by the old
    /// line.
    #[instrument(skip(self, key))]
    pub async fn set_overdraft_limit(
        &self,
        account: AccountId,
        limit: Decimal,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Account>, StoreError> {
        ledger_domain::check_overdraft_limit(limit)?;
        let fingerprint = RequestFingerprint::of(
            "overdraft_change",
            &[&account.to_string(), &limit.normalize().to_string()],
        );
        let posting = Posting::OverdraftChange { account };
        let replayed = match self.write(posting, limit, None, fingerprint, key).await? {
            LegAnswer::Applied { .. } => false,
            LegAnswer::Replayed { .. } => true,
        };
        Ok(Outcome {
            value: self.get_account(account).await?,
            replayed,
        })
    }
}
