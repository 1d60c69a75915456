//! `verify`'s checks of holds, captures and reversals (sql/V6), in the same
//! snapshot. Each is one query that returns the rows breaking its rule, with
//! the subject and what was found; none reads the trigger's functions, so a
//! bug there cannot hide itself.

use uuid::Uuid;

use super::{flag, Violation};
use crate::{StoreError, VerifyReport};

/// (rule, SQL returning `(subject text, source uuid, seq bigint, transfer_id
/// uuid, detail text)` for every breach; the row columns may be null).
const CHECKS: &[(&str, &str)] = &[
    // Every resolution names a hold; a capture's names its capture row, which
    // settles that hold with the recorded amount, within the hold's amount,
    // before its expiry, at the same instant as the resolution; a void is
    // before the expiry and an expiry at or after it.
    (
        "hold_resolution_mismatch",
        "select r.hold_id::text, h.source_account_id, h.source_seq, h.transfer_id,
                'resolution ' || r.outcome || ' does not fit its hold'
           from ledger.hold_resolutions r
           left join ledger.transfers h on h.transfer_id = r.hold_id and h.kind = 'hold'
          where h.transfer_id is null
             or (r.outcome = 'voided' and r.resolved_at >= h.hold_expires_at)
             or (r.outcome = 'expired' and r.resolved_at < h.hold_expires_at)",
    ),
    (
        "capture_mismatch",
        "select r.hold_id::text, c.source_account_id, c.source_seq, c.transfer_id,
                'capture does not settle its hold as recorded'
           from ledger.hold_resolutions r
           join ledger.transfers h on h.transfer_id = r.hold_id
           left join ledger.transfers c on c.transfer_id = r.capture_transfer_id
          where r.outcome = 'captured'
            and (c.transfer_id is null or c.kind <> 'capture' or c.hold_id <> r.hold_id
                 or c.amount <> r.captured_amount or c.amount > h.held_amount
                 or c.source_account_id <> h.source_account_id
                 or c.destination_account_id <> h.destination_account_id
                 or c.created_at >= h.hold_expires_at or r.resolved_at <> c.created_at)
         union all
         select c.hold_id::text, c.source_account_id, c.source_seq, c.transfer_id,
                'a capture row without its hold''s resolution'
           from ledger.transfers c
          where c.kind = 'capture'
            and not exists (select 1 from ledger.hold_resolutions r
                             where r.capture_transfer_id = c.transfer_id)",
    ),
    // A reversal goes back along its original (a transfer or a capture),
    // and the reversals of one original sum to at most its amount.
    (
        "reversal_mismatch",
        "select v.reverses_transfer_id::text, v.source_account_id, v.source_seq, v.transfer_id,
                'reversal does not go back along its original'
           from ledger.transfers v
           left join ledger.transfers o on o.transfer_id = v.reverses_transfer_id
          where v.kind = 'reversal'
            and (o.transfer_id is null or o.kind not in ('transfer', 'capture')
                 or o.source_account_id <> v.destination_account_id
                 or o.destination_account_id <> v.source_account_id)
         union all
         select o.transfer_id::text, o.source_account_id, o.source_seq, o.transfer_id,
                'reversals move back ' || sum(v.amount) || ' of ' || o.amount
           from ledger.transfers v
           join ledger.transfers o on o.transfer_id = v.reverses_transfer_id
          where v.kind = 'reversal'
          group by o.transfer_id, o.source_account_id, o.source_seq, o.amount
         having sum(v.amount) > o.amount",
    ),
    // The held figure each row out of an account with holds carries is at
    // least a plain recount: holds placed at or before the row (itself
    // included), expiring after it, not resolved at or before it, the hold a
    // capture settles left out. At least, not equal: a void stamped before
    // the row may commit after the row was checked, which then counted the
    // hold (the safe side). Less would have let the row overspend.
    (
        "held_mismatch",
        "select t.source_account_id::text, t.source_account_id, t.source_seq, t.transfer_id,
                'held ' || t.source_held_after || ', recounted ' || coalesce(recount.held, 0)
           from ledger.transfers t
           cross join lateral (
                 select sum(h.held_amount) as held
                   from ledger.transfers h
                  where h.kind = 'hold' and h.source_account_id = t.source_account_id
                    and h.source_seq <= t.source_seq
                    and h.hold_expires_at > t.created_at
                    and h.transfer_id is distinct from t.hold_id
                    and not exists (select 1 from ledger.hold_resolutions r
                                     where r.hold_id = h.transfer_id
                                       and r.resolved_at <= t.created_at)) recount
          where not t.source_is_system
            and exists (select 1 from ledger.transfers any_hold
                         where any_hold.kind = 'hold'
                           and any_hold.source_account_id = t.source_account_id)
            and t.source_held_after < coalesce(recount.held, 0)",
    ),
];

/// Runs [`CHECKS`] and flags every breach.
pub(super) async fn verify_holds_and_reversals(
    tx: &tokio_postgres::Transaction<'_>,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    for (rule, sql) in CHECKS {
        for row in tx.query(*sql, &[]).await? {
            let source: Option<Uuid> = row.try_get(1)?;
            let seq: Option<i64> = row.try_get(2)?;
            let id: Option<Uuid> = row.try_get(3)?;
            flag(
                report,
                Violation {
                    rule,
                    row: match (source, seq, id) {
                        (Some(source), Some(seq), Some(id)) => Some((source, seq, id)),
                        _ => None,
                    },
                    subject: row.try_get(0)?,
                    detail: row.try_get(4)?,
                },
            );
        }
    }
    Ok(())
}
