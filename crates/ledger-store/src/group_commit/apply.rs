//! Applying one group: a transaction that reads the source's head and the
//! destinations' states, decides every leg in order, claims their keys and
//! inserts the accepted legs in one statement; and the fallbacks when the
//! database refuses (leg by leg) or another process won the race (retry).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{
    decide, AccountId, AccountKind, AccountState, Currency, Decimal, DestinationState, DomainError,
    SourceHead,
};
use rand::Rng;
use tracing::debug;
use uuid::Uuid;

use super::{Leg, LegAnswer};
use crate::error::{
    constraint_violation, is_unique_violation, violates, Constraint, Context, WriteContext,
};
use crate::heads::{read_destination, read_source_head, DESTINATIONS, HEADS};
use crate::idempotency::{claim, Claim};
use crate::records::{TransfersById, TRANSFER_COLUMNS};
use crate::{Ledger, StoreError};

/// A group's rows in one statement, in sequence order: the trigger of each
/// row sees the rows before it (a VOLATILE plpgsql trigger function reads
/// with a fresh command id), so their hashes and totals chain. No `on
/// conflict`: a row another process took aborts the whole statement, so a
/// group is never half in.
fn insert_group_sql() -> String {
    format!(
        "insert into ledger.transfers (source_account_id, source_seq, transfer_id, \
             destination_account_id, currency_code, amount, metadata, created_by, kind, \
             held_amount, hold_expires_at, hold_id, reverses_transfer_id, \
             source_overdraft_limit) \
         select $1, leg.seq, leg.transfer_id, leg.destination, $2, leg.amount, leg.metadata, \
                leg.author, leg.kind, leg.held_amount, leg.hold_expires_at, leg.hold_id, \
                leg.reverses, leg.overdraft_limit \
           from unnest($3::bigint[], $4::uuid[], $5::uuid[], $6::numeric[], $7::jsonb[], \
                       $8::uuid[], $9::text[], $10::numeric[], $11::timestamptz[], \
                       $12::uuid[], $13::uuid[], $14::numeric[]) \
                with ordinality as leg(seq, transfer_id, destination, amount, metadata, author, \
                                       kind, held_amount, hold_expires_at, hold_id, reverses, \
                                       overdraft_limit, position) \
          order by leg.position \
         returning {TRANSFER_COLUMNS}"
    )
}

/// The captures of a group settle their holds: one row each, whose primary
/// key makes a capture lose to a void or an expiry that came first (and the
/// group with it, which is then applied leg by leg).
const INSERT_CAPTURES: &str = "\
    insert into ledger.hold_resolutions \
        (hold_id, outcome, capture_transfer_id, captured_amount, created_by) \
    select capture.hold_id, 'captured', capture.transfer_id, capture.amount, capture.author \
      from unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::uuid[]) \
           as capture(hold_id, transfer_id, amount, author)";

const INSERT_OPENED_ACCOUNT: &str = "\
    insert into ledger.accounts (account_id, currency_code, metadata, opened_by, overdraft_limit)
    values ($1, $2, $3, $4, $5)
    on conflict on constraint accounts_pkey do nothing
    returning created_at";

/// A leg `decide` let through, with what its row records.
struct Accepted {
    index: usize,
    seq: i64,
    amount: Decimal,
    held_amount: Option<Decimal>,
    overdraft_limit: Decimal,
    opened_at: Option<DateTime<Utc>>,
}

/// How one attempt at a group ended.
enum Attempt {
    Committed(Vec<Result<LegAnswer, StoreError>>),
    LostRace,
}

impl Ledger {
    /// Applies `legs` (all out of one source) and answers each, in order.
    pub(super) async fn commit_group(&self, legs: &[Leg]) -> Vec<Result<LegAnswer, StoreError>> {
        let mut client = match self.client().await {
            Ok(client) => client,
            Err(err) => return legs.iter().map(|_| Err(replicate(&err))).collect(),
        };
        match self.commit_legs(&mut client, legs).await {
            Ok(answers) => answers,
            // A database that is down, or a source another process keeps
            // winning, fails every leg alike: applying them one by one
            // would only repeat that. Anything else may be one leg's doing.
            Err(err)
                if legs.len() > 1
                    && !matches!(err, StoreError::Unavailable(_) | StoreError::Contention(_)) =>
            {
                // The database refused the group (or something in it): apply
                // the legs one by one, so that each refusal is one leg's own.
                debug!(legs = legs.len(), error = %err, "group refused; applying its legs one by one");
                self.group_metrics
                    .refused_groups
                    .fetch_add(1, Ordering::Relaxed);
                let mut answers = Vec::with_capacity(legs.len());
                for leg in legs {
                    let answer = match self
                        .commit_legs(&mut client, std::slice::from_ref(leg))
                        .await
                    {
                        Ok(mut one) => one.pop().unwrap_or_else(|| {
                            Err(StoreError::Internal(anyhow::anyhow!(
                                "a leg went unanswered"
                            )))
                        }),
                        Err(err) => Err(err),
                    };
                    answers.push(answer);
                }
                answers
            }
            Err(err) => legs.iter().map(|_| Err(replicate(&err))).collect(),
        }
    }

    /// One group, retried whole while it loses the sequence race. `Err` is
    /// the group's own failure (for a single leg: that leg's).
    async fn commit_legs(
        &self,
        client: &mut deadpool_postgres::Object,
        legs: &[Leg],
    ) -> Result<Vec<Result<LegAnswer, StoreError>>, StoreError> {
        if let [leg] = legs {
            if leg.claim.is_none() && leg.opening.is_none() && leg.posting.is_plain() {
                // Alone and with nothing else to write: one autocommit insert,
                // exactly the path before group commit (no transaction to
                // begin and commit on an uncontended account).
                let mut lost = 0;
                let applied = self.apply(&*client, leg, &mut lost).await;
                self.group_metrics.record_lost_races(lost);
                return Ok(vec![applied.map(|transfer| LegAnswer::Applied {
                    transfer,
                    opened_at: None,
                })]);
            }
        }
        let mut lost = 0;
        let result = loop {
            if lost >= self.config.max_sequence_retries {
                break Err(StoreError::Contention(legs[0].source));
            }
            match self.attempt_group(client, legs).await {
                Ok(Attempt::Committed(answers)) => break Ok(answers),
                Ok(Attempt::LostRace) => {
                    lost += 1;
                    debug!(lost, legs = legs.len(), "group lost the sequence race");
                    // Spread out the processes racing for this source.
                    if lost >= 2 {
                        let cap_us = 50 * u64::from(lost.min(20));
                        let pause_us = rand::thread_rng().gen_range(0..=cap_us);
                        tokio::time::sleep(Duration::from_micros(pause_us)).await;
                    }
                }
                Err(err) => break Err(err),
            }
        };
        self.group_metrics.record_lost_races(lost);
        result
    }

    /// One attempt: head, claims, decisions, one insert. In a transaction
    /// when a leg writes more than its row (a key, an account); otherwise in
    /// autocommit, two round trips instead of four: the group's rows are one
    /// statement, which is atomic on its own, and what comes before it only
    /// reads. (Measured on the hot scenario: a group's time is mostly round
    /// trips waiting for a busy CPU, not the rows.)
    async fn attempt_group(
        &self,
        client: &mut deadpool_postgres::Object,
        legs: &[Leg],
    ) -> Result<Attempt, StoreError> {
        if legs.iter().all(|leg| !leg.needs_transaction()) {
            return self.decide_and_insert(&*client, legs).await;
        }
        let tx = client.transaction().await?;
        let attempt = self.decide_and_insert(&tx, legs).await?;
        if matches!(attempt, Attempt::Committed(_)) {
            tx.commit().await.context("commit a group")?;
        }
        Ok(attempt)
    }

    /// The body of [`Self::attempt_group`], on `tx` (a transaction, or a
    /// connection in autocommit when no leg writes anything but its row).
    async fn decide_and_insert(
        &self,
        tx: &impl GenericClient,
        legs: &[Leg],
    ) -> Result<Attempt, StoreError> {
        let source = legs[0].source;
        let head_statement = tx
            .prepare_cached(HEADS)
            .await
            .context("prepare the group's head")?;
        let destinations_statement = tx
            .prepare_cached(DESTINATIONS)
            .await
            .context("prepare the group's destinations")?;
        let named: Vec<Uuid> = legs
            .iter()
            .filter(|leg| leg.opening.is_none())
            .map(|leg| leg.destination.as_uuid())
            .collect();
        let sources = [source.as_uuid()];
        let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&sources.as_slice()];
        let destination_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&named];
        // Pipelined: both statements are on the wire before either answers.
        let (head_row, destination_rows) = futures::try_join!(
            tx.query_opt(&head_statement, &head_params),
            tx.query(&destinations_statement, &destination_params),
        )?;
        let mut head = head_row.map(|row| read_source_head(&row)).transpose()?;
        let mut destinations = HashMap::with_capacity(destination_rows.len());
        for row in &destination_rows {
            let state = read_destination(row)?;
            destinations.insert(state.account, state);
        }

        let mut answers: Vec<Option<Result<LegAnswer, StoreError>>> =
            legs.iter().map(|_| None).collect();
        let mut accepted: Vec<Accepted> = Vec::new();
        for (index, leg) in legs.iter().enumerate() {
            let decision = decide_leg(leg, head.as_ref(), &destinations);
            // A leg with a key claims it first: a replay answers with the
            // original result whatever the ledger says now. A claimed key is
            // undone with its leg when the leg fails, by a savepoint taken
            // only then (a savepoint that writes costs a subtransaction, and
            // more than 64 in one transaction slow every snapshot in the
            // cluster; group_max_legs is capped at 64 for that reason).
            let needs_savepoint =
                leg.claim.is_some() && (decision.is_err() || leg.opening.is_some());
            if needs_savepoint {
                tx.batch_execute("savepoint leg").await?;
            }
            if let Some(leg_claim) = &leg.claim {
                match claim(
                    tx,
                    &leg_claim.idempotency,
                    leg_claim.operation,
                    leg_claim.account_id,
                    Some(leg.transfer_id.as_uuid()),
                )
                .await
                {
                    Ok(Claim::Claimed) => {}
                    Ok(Claim::Replay {
                        account_id,
                        transfer_id,
                    }) => {
                        answers[index] = Some(Ok(LegAnswer::Replayed {
                            account_id,
                            transfer_id,
                        }));
                        continue;
                    }
                    Err(err @ (StoreError::Domain(_) | StoreError::IdempotencyInFlight)) => {
                        answers[index] = Some(Err(err));
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            }
            let decision = match decision {
                Ok(decision) => decision,
                Err(err) => {
                    if needs_savepoint {
                        tx.batch_execute("rollback to savepoint leg").await?;
                    }
                    answers[index] = Some(Err(err.into()));
                    continue;
                }
            };
            let mut opened_at = None;
            if let Some(opening) = &leg.opening {
                let insert = tx.prepare_cached(INSERT_OPENED_ACCOUNT).await?;
                let row = tx
                    .query_opt(
                        &insert,
                        &[
                            &leg.destination.as_uuid(),
                            &opening.currency.code(),
                            &opening.metadata,
                            &leg.author,
                            &opening.overdraft_limit,
                        ],
                    )
                    .await
                    .map_err(|err| {
                        // Inside a group this fails the group, which is then
                        // applied leg by leg: the error lands on this leg.
                        if violates(&err, Constraint::AccountsCurrencyCodeFkey) {
                            DomainError::UnknownCurrency(opening.currency.code().to_owned()).into()
                        } else {
                            StoreError::from(err)
                        }
                    })?;
                match row {
                    Some(row) => opened_at = Some(row.try_get("created_at")?),
                    None => {
                        if needs_savepoint {
                            tx.batch_execute("rollback to savepoint leg").await?;
                        }
                        answers[index] =
                            Some(Err(DomainError::AccountExists(leg.destination).into()));
                        continue;
                    }
                }
            }
            if let Some(head) = head.as_mut() {
                head.next_seq += 1;
                head.balance = decision.source_balance_after;
                head.held = decision.held_after;
                head.overdraft_limit = decision.overdraft_limit_after;
            }
            accepted.push(Accepted {
                index,
                seq: decision.seq,
                amount: decision.amount,
                held_amount: decision.held_amount,
                overdraft_limit: decision.overdraft_limit_after,
                opened_at,
            });
        }

        if !accepted.is_empty() {
            let currency = head
                .as_ref()
                .map(|head| head.currency)
                .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("legs without a head")))?;
            let insert = tx
                .prepare_cached(&insert_group_sql())
                .await
                .context("prepare the group insert")?;
            let seqs: Vec<i64> = accepted.iter().map(|a| a.seq).collect();
            let leg_of = |a: &Accepted| &legs[a.index];
            let ids: Vec<Uuid> = accepted
                .iter()
                .map(|a| leg_of(a).transfer_id.as_uuid())
                .collect();
            let destinations: Vec<Uuid> = accepted
                .iter()
                .map(|a| leg_of(a).destination.as_uuid())
                .collect();
            let amounts: Vec<Decimal> = accepted.iter().map(|a| a.amount).collect();
            let metadata: Vec<Option<serde_json::Value>> = accepted
                .iter()
                .map(|a| leg_of(a).metadata.clone())
                .collect();
            let authors: Vec<Option<Uuid>> = accepted.iter().map(|a| leg_of(a).author).collect();
            let kinds: Vec<&str> = accepted
                .iter()
                .map(|a| leg_of(a).posting.row_kind())
                .collect();
            let held: Vec<Option<Decimal>> = accepted.iter().map(|a| a.held_amount).collect();
            let expiries: Vec<Option<DateTime<Utc>>> = accepted
                .iter()
                .map(|a| leg_of(a).posting.hold_expires_at())
                .collect();
            let holds: Vec<Option<Uuid>> = accepted
                .iter()
                .map(|a| leg_of(a).posting.hold_id())
                .collect();
            let reverses: Vec<Option<Uuid>> = accepted
                .iter()
                .map(|a| leg_of(a).posting.reverses())
                .collect();
            let lines: Vec<Decimal> = accepted.iter().map(|a| a.overdraft_limit).collect();
            let rows = match tx
                .query(
                    &insert,
                    &[
                        &source.as_uuid(),
                        &currency.code(),
                        &seqs,
                        &ids,
                        &destinations,
                        &amounts,
                        &metadata,
                        &authors,
                        &kinds,
                        &held,
                        &expiries,
                        &holds,
                        &reverses,
                        &lines,
                    ],
                )
                .await
            {
                Ok(rows) => rows,
                Err(err) if is_unique_violation(&err, Constraint::TransfersPkey) => {
                    return Ok(Attempt::LostRace)
                }
                Err(err) if accepted.len() == 1 => {
                    // Alone, a refusal is this leg's own.
                    let leg = &legs[accepted[0].index];
                    return Err(write_error(err, leg, currency));
                }
                Err(err) => return Err(err.into()),
            };
            if rows.len() != accepted.len() {
                return Ok(Attempt::LostRace);
            }
            self.settle_captures(tx, legs, &accepted, currency).await?;
            let mut by_id = TransfersById::read(&rows)?;
            for Accepted {
                index, opened_at, ..
            } in accepted
            {
                let id = legs[index].transfer_id.as_uuid();
                let transfer = by_id.take(id, || "an inserted leg was not returned".into())?;
                answers[index] = Some(Ok(LegAnswer::Applied {
                    transfer,
                    opened_at,
                }));
            }
        }
        Ok(Attempt::Committed(
            answers
                .into_iter()
                .map(|answer| {
                    answer.unwrap_or_else(|| {
                        Err(StoreError::Internal(anyhow::anyhow!(
                            "a leg went unanswered"
                        )))
                    })
                })
                .collect(),
        ))
    }
}

impl Ledger {
    /// Records the resolution of every hold a capture of the group settles,
    /// in the group's transaction.
    async fn settle_captures(
        &self,
        tx: &impl GenericClient,
        legs: &[Leg],
        accepted: &[Accepted],
        currency: Currency,
    ) -> Result<(), StoreError> {
        let captures: Vec<(&Leg, Decimal)> = accepted
            .iter()
            .map(|a| (&legs[a.index], a.amount))
            .filter(|(leg, _)| leg.posting.hold_id().is_some())
            .collect();
        if captures.is_empty() {
            return Ok(());
        }
        let holds: Vec<Option<Uuid>> = captures
            .iter()
            .map(|(leg, _)| leg.posting.hold_id())
            .collect();
        let ids: Vec<Uuid> = captures
            .iter()
            .map(|(leg, _)| leg.transfer_id.as_uuid())
            .collect();
        let amounts: Vec<Decimal> = captures.iter().map(|(_, amount)| *amount).collect();
        let authors: Vec<Option<Uuid>> = captures.iter().map(|(leg, _)| leg.author).collect();
        let statement = tx
            .prepare_cached(INSERT_CAPTURES)
            .await
            .context("prepare the captures")?;
        match tx
            .execute(&statement, &[&holds, &ids, &amounts, &authors])
            .await
        {
            Ok(_) => Ok(()),
            // Alone, the refusal (a void or an expiry won) is this leg's.
            Err(err) if captures.len() == 1 => Err(write_error(err, captures[0].0, currency)),
            Err(err) => Err(err.into()),
        }
    }
}

/// `decide` for one leg against the running head.
fn decide_leg(
    leg: &Leg,
    head: Option<&SourceHead>,
    destinations: &HashMap<AccountId, DestinationState>,
) -> Result<ledger_domain::Decision, DomainError> {
    let head = head.ok_or(DomainError::AccountNotFound(leg.source))?;
    let destination = match &leg.opening {
        // Inserted by the leg itself, just before its deposit.
        Some(opening) => DestinationState {
            account: leg.destination,
            kind: AccountKind::Customer,
            currency: opening.currency,
            state: AccountState::Open,
        },
        None => *destinations
            .get(&leg.destination)
            .ok_or(DomainError::AccountNotFound(leg.destination))?,
    };
    decide(leg.posting.kind(), head, &destination, leg.amount)
}

/// A refused insert as the leg's domain error, when a named constraint says
/// which rule.
pub(crate) fn write_error(err: tokio_postgres::Error, leg: &Leg, currency: Currency) -> StoreError {
    let context = WriteContext {
        source: leg.source,
        destination: leg.destination,
        currency,
        operation: leg.posting.kind(),
        link: leg.posting.link(),
    };
    match constraint_violation(&err, &context) {
        Some(domain) => domain.into(),
        None => err.into(),
    }
}

/// The same failure for every leg of a group that failed as a whole.
fn replicate(err: &StoreError) -> StoreError {
    match err {
        StoreError::Domain(domain) => StoreError::Domain(domain.clone()),
        StoreError::LegRefused { leg, error } => StoreError::LegRefused {
            leg: *leg,
            error: error.clone(),
        },
        StoreError::IdempotencyInFlight => StoreError::IdempotencyInFlight,
        StoreError::InvalidCursor => StoreError::InvalidCursor,
        StoreError::Contention(account) => StoreError::Contention(*account),
        StoreError::QueueFull(account) => StoreError::QueueFull(*account),
        StoreError::Unavailable(text) => StoreError::Unavailable(text.clone()),
        StoreError::Config(text) => StoreError::Config(text.clone()),
        StoreError::Internal(cause) => StoreError::Internal(anyhow::anyhow!("{cause:#}")),
    }
}
