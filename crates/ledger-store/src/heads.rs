//! The heads of accounts, as every write path reads them before it lets
//! `ledger_domain::decide` judge a leg: a source's next sequence number,
//! balance, kind, currency and state; a destination's kind, currency and
//! state. One SQL text ([`heads_sql`]) serves lone writes, groups and
//! batches, so the three cannot read a head differently.

use ledger_domain::{AccountId, AccountKind, AccountState, DestinationState, SourceHead};
use uuid::Uuid;

use crate::records::currency_of;
use crate::StoreError;

/// The head of every account the `where` clause picks: the next sequence
/// number is one past the latest row out of it (an index probe of the
/// primary key), the balance everything in minus its running outgoing total,
/// its pending holds (none when its latest row left none pending, as only a
/// row of its own places one; `ledger.held_at` otherwise) and its line
/// (carried on its latest row).
macro_rules! heads_sql {
    ($accounts:literal) => {
        concat!(
            "select s.account_id, s.currency_code, s.is_system,
                    ledger.close_state(s.closed_at, s.closing_xid) as state,
                    coalesce(h.source_seq + 1, 0) as next_seq,
                    ledger.incoming_total(s.account_id) - coalesce(h.source_outgoing_total, 0) as balance,
                    case when s.is_system or coalesce(h.source_held_after, 0) = 0 then 0
                         else ledger.held_at(s.account_id, clock_timestamp()) end as held,
                    coalesce(h.source_overdraft_limit, s.overdraft_limit) as overdraft_limit
               from ledger.accounts s
               left join lateral (
                     select t.source_seq, t.source_outgoing_total, t.source_overdraft_limit,
                            t.source_held_after
                       from ledger.transfers t
                      where t.source_account_id = s.account_id
                      order by t.source_seq desc
                      limit 1) h on true
              where ",
            $accounts
        )
    };
}

/// The heads of the accounts in `$1` (`uuid[]`): a group's one source, or
/// every account of a batch. No row for an account that does not exist.
pub(crate) const HEADS: &str = heads_sql!("s.account_id = any($1::uuid[])");

/// A lone write's source head (`$1`) and destination state (`$2`) in one
/// statement. No row: the source does not exist; null destination columns:
/// the destination does not. Public, with the other statements of the write
/// path, so that the benchmark can drive exactly this SQL with pgbench.
pub const WRITE_HEAD: &str = concat!(
    "select h.*, d.currency_code as destination_currency,
            d.is_system as destination_is_system,
            ledger.close_state(d.closed_at, d.closing_xid) as destination_state
       from (",
    heads_sql!("s.account_id = $1"),
    ") h
       left join ledger.accounts d on d.account_id = $2"
);

/// The states of the destinations in `$1` (`uuid[]`) a group names.
pub(crate) const DESTINATIONS: &str = "\
    select account_id, currency_code, is_system,
           ledger.close_state(closed_at, closing_xid) as state
      from ledger.accounts
     where account_id = any($1)";

/// A row of [`HEADS`] or [`WRITE_HEAD`] as a source head: the columns of a
/// destination's state ([`read_destination`]), and its chain's head.
pub(crate) fn read_source_head(row: &tokio_postgres::Row) -> Result<SourceHead, StoreError> {
    let DestinationState {
        account,
        kind,
        currency,
        state,
    } = read_destination(row)?;
    Ok(SourceHead {
        account,
        kind,
        currency,
        state,
        next_seq: row.try_get("next_seq")?,
        balance: row.try_get("balance")?,
        held: row.try_get("held")?,
        overdraft_limit: row.try_get("overdraft_limit")?,
    })
}

/// A row of [`DESTINATIONS`] (or the account columns of a head) as a
/// destination's state.
pub(crate) fn read_destination(row: &tokio_postgres::Row) -> Result<DestinationState, StoreError> {
    Ok(DestinationState {
        account: AccountId::from(row.try_get::<_, Uuid>("account_id")?),
        kind: kind_of(row.try_get("is_system")?),
        currency: currency_of(row.try_get("currency_code")?)?,
        state: state_of(row.try_get("state")?)?,
    })
}

/// The destination columns of a [`WRITE_HEAD`] row; `None` when the
/// destination does not exist.
pub(crate) fn read_write_destination(
    row: &tokio_postgres::Row,
    destination: AccountId,
) -> Result<Option<DestinationState>, StoreError> {
    let Some(currency) = row.try_get::<_, Option<&str>>("destination_currency")? else {
        return Ok(None);
    };
    Ok(Some(DestinationState {
        account: destination,
        kind: kind_of(row.try_get("destination_is_system")?),
        currency: currency_of(currency)?,
        state: state_of(row.try_get("destination_state")?)?,
    }))
}

fn kind_of(is_system: bool) -> AccountKind {
    if is_system {
        AccountKind::System
    } else {
        AccountKind::Customer
    }
}

fn state_of(text: &str) -> Result<AccountState, StoreError> {
    AccountState::parse(text)
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("unknown account state {text:?}")))
}
