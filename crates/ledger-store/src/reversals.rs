//! Reversals: a transfer moved back, in part or whole, by a new transfer
//! from its destination to its source that names it (`sql/V6`). All
//! reversals of one transfer leave its destination, so they are rows of one
//! sequence, and the trigger refuses a total above the original.

use ledger_domain::{
    Decimal, DomainError, IdempotencyKey, Metadata, RequestFingerprint, TransferId,
};
use tracing::instrument;

use crate::group_commit::LegAnswer;
use crate::records::{Outcome, Posting, Transfer, TransferKind};
use crate::{Ledger, StoreError};

impl Ledger {
    /// Moves (part of) a transfer back: from its destination to its source,
    /// linked to it. Without `amount`, whatever is not reversed yet.
    #[instrument(skip(self, metadata, key), fields(transfer.id = tracing::field::Empty))]
    pub async fn reverse(
        &self,
        original: TransferId,
        amount: Option<Decimal>,
        metadata: Option<Metadata>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome<Transfer>, StoreError> {
        let transfer = self.get_transfer(original).await?;
        if matches!(transfer.kind, TransferKind::Reversal(_)) {
            return Err(DomainError::NotReversible(original).into());
        }
        let remaining = transfer.amount - self.reversed_amount(original).await?;
        let amount_text = amount
            .map(|amount| amount.normalize().to_string())
            .unwrap_or_default();
        let metadata_text = metadata
            .as_ref()
            .map(Metadata::canonical)
            .unwrap_or_default();
        let fingerprint = RequestFingerprint::of(
            "reversal",
            &[&original.to_string(), &amount_text, &metadata_text],
        );
        let posting = Posting::Reversal {
            original,
            source: transfer.destination,
            destination: transfer.source,
            remaining,
        };
        // "The rest" when nothing is left asks for more than remains, so the
        // refusal is the reversal rule's (and a key still replays first).
        let amount = match amount {
            Some(amount) => amount,
            None if remaining > Decimal::ZERO => remaining,
            None => transfer.amount,
        };
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
}
