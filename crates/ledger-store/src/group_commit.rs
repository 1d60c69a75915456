//! Group commit per source. Every write out of one account (transfers,
//! deposits and withdrawals through the system account, opening deposits)
//! joins that account's queue in this process. One task per busy source, the
//! *leader*, takes up to `group_max_legs` queued writes (*legs*) at a time and
//! appends them in one transaction: one head read, one multi-row insert with
//! consecutive sequence numbers, one commit. Each caller gets its own answer.
//!
//! Why: without it, concurrent writers out of one account race for the same
//! sequence number; every commit wakes all of them and all but one retry, so a
//! hot account (or a currency's system account, which every deposit leaves)
//! ran at a small fraction of the uniform rate (163/s against 2,238/s, see
//! docs/design.md "Group commit"). With a queue, one process never races
//! itself; processes still race each other on the primary key, as before.
//!
//! What a group guarantees to each leg:
//! * it is decided by `ledger_domain::decide` against the running head (the
//!   head after the legs accepted before it), so a leg that would overdraw
//!   fails alone and the others go on;
//! * a refusal by the database (its trigger disagreeing with the Rust
//!   decision, e.g. a destination closed since the head was read) fails only
//!   that leg: the group is rolled back and its legs are applied one by one,
//!   where the refusal belongs to one statement and one leg. Errors are told
//!   apart by SQLSTATE and constraint name, never by message;
//! * a group that lost the sequence race to another process (a unique
//!   violation on `transfers_pkey`) is rolled back whole and retried with a
//!   fresh head: a partly applied group would have legs decided against a
//!   head that was not the one they landed on;
//! * idempotency keys are claimed in the group's transaction, so a group that
//!   fails leaves no key; a key used twice in one group applies once, and the
//!   second leg replays the first.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use ledger_domain::{
    decide, AccountId, AccountKind, AccountState, Currency, Decimal, DestinationState, DomainError,
    SourceHead, TransferId,
};
use rand::Rng;
use tokio::sync::oneshot;
use tracing::debug;
use uuid::Uuid;

use crate::error::{constraint_violation, is_unique_violation, violates, Constraint, WriteContext};
use crate::idempotency::{claim, Claim, Idempotency};
use crate::records::{currency_of, transfer_from_row, Posting, Transfer, TRANSFER_COLUMNS};
use crate::{Ledger, StoreError};

/// One write out of a source, as it waits in the source's queue.
pub(crate) struct Leg {
    /// What it does (decides which rules apply).
    pub posting: Posting,
    /// Where the money leaves from: the queue it joins.
    pub source: AccountId,
    /// Where it goes.
    pub destination: AccountId,
    /// As the client asked; scaled by `decide`.
    pub amount: Decimal,
    /// The row's metadata, as stored.
    pub metadata: Option<serde_json::Value>,
    /// Chosen before queueing, so that a retried group keeps its ids.
    pub transfer_id: TransferId,
    /// The idempotency key to claim in the group's transaction.
    pub claim: Option<LegClaim>,
    /// Set when the leg opens its destination: the account row is inserted
    /// in the group's transaction, just before its deposit.
    pub opening: Option<Opening>,
}

/// An idempotency key and what it records for the leg.
pub(crate) struct LegClaim {
    pub idempotency: Idempotency,
    /// `ledger.idempotency_keys.operation`.
    pub operation: &'static str,
    /// The account an `open_account` key records.
    pub account_id: Option<Uuid>,
}

/// The account a leg opens (its destination).
pub(crate) struct Opening {
    pub currency: Currency,
    pub metadata: Option<serde_json::Value>,
}

/// What a leg did.
#[derive(Debug)]
pub(crate) enum LegAnswer {
    /// Its row is in; `opened_at` is the opened account's `created_at`.
    Applied {
        transfer: Transfer,
        opened_at: Option<DateTime<Utc>>,
    },
    /// Its idempotency key was used before by the same request, with these
    /// results (perhaps by an earlier leg of the same group).
    Replayed {
        account_id: Option<Uuid>,
        transfer_id: Option<Uuid>,
    },
}

type Reply = oneshot::Sender<Result<LegAnswer, StoreError>>;

struct Waiting {
    leg: Leg,
    enqueued: Instant,
    reply: Reply,
}

/// The queues of the sources with writes in flight in this process. A
/// source has an entry exactly while its leader task runs.
#[derive(Default)]
pub(crate) struct Queues {
    pending: Mutex<HashMap<AccountId, VecDeque<Waiting>>>,
}

/// Counters of the group commit, for the benchmark and `/metrics`. All are
/// totals since the `Ledger` was built; read them with [`Self::snapshot`].
#[derive(Debug, Default)]
pub struct GroupCommitMetrics {
    /// Groups committed or answered (a leg applied alone is a group of one).
    pub groups: AtomicU64,
    /// Legs those groups carried.
    pub legs: AtomicU64,
    /// Groups by size: 1, 2–3, 4–7, 8–15, 16–31, 32–63, 64 and more.
    pub group_sizes: [AtomicU64; 7],
    /// The largest group so far.
    pub largest_group: AtomicU64,
    /// Sequence races lost to another process (each one retried the group).
    pub lost_races: AtomicU64,
    /// The most races one group lost before it committed or gave up.
    pub most_lost_races_in_a_group: AtomicU64,
    /// Groups the database refused as a whole, re-run leg by leg.
    pub refused_groups: AtomicU64,
    /// Writes answered `Unavailable` at once because their queue was full.
    pub queue_full: AtomicU64,
    /// Sum of the time legs waited in a queue before their group began, µs.
    pub queue_wait_us: AtomicU64,
    /// The longest such wait, µs.
    pub longest_queue_wait_us: AtomicU64,
    /// Sum of the time groups took, from taking their legs to answering
    /// them, µs: how busy the leaders were.
    pub group_us: AtomicU64,
    /// The longest group, µs.
    pub longest_group_us: AtomicU64,
}

/// A copy of [`GroupCommitMetrics`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// See [`GroupCommitMetrics::groups`].
    pub groups: u64,
    /// See [`GroupCommitMetrics::legs`].
    pub legs: u64,
    /// See [`GroupCommitMetrics::group_sizes`].
    pub group_sizes: [u64; 7],
    /// See [`GroupCommitMetrics::largest_group`].
    pub largest_group: u64,
    /// See [`GroupCommitMetrics::lost_races`].
    pub lost_races: u64,
    /// See [`GroupCommitMetrics::most_lost_races_in_a_group`].
    pub most_lost_races_in_a_group: u64,
    /// See [`GroupCommitMetrics::refused_groups`].
    pub refused_groups: u64,
    /// See [`GroupCommitMetrics::queue_full`].
    pub queue_full: u64,
    /// See [`GroupCommitMetrics::queue_wait_us`].
    pub queue_wait_us: u64,
    /// See [`GroupCommitMetrics::longest_queue_wait_us`].
    pub longest_queue_wait_us: u64,
    /// See [`GroupCommitMetrics::group_us`].
    pub group_us: u64,
    /// See [`GroupCommitMetrics::longest_group_us`].
    pub longest_group_us: u64,
}

impl GroupCommitMetrics {
    /// The counters now (each read on its own: not one atomic snapshot).
    pub fn snapshot(&self) -> GroupCommitStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        GroupCommitStats {
            groups: load(&self.groups),
            legs: load(&self.legs),
            group_sizes: std::array::from_fn(|i| load(&self.group_sizes[i])),
            largest_group: load(&self.largest_group),
            lost_races: load(&self.lost_races),
            most_lost_races_in_a_group: load(&self.most_lost_races_in_a_group),
            refused_groups: load(&self.refused_groups),
            queue_full: load(&self.queue_full),
            queue_wait_us: load(&self.queue_wait_us),
            longest_queue_wait_us: load(&self.longest_queue_wait_us),
            group_us: load(&self.group_us),
            longest_group_us: load(&self.longest_group_us),
        }
    }

    fn record_group(&self, size: usize, waits: impl Iterator<Item = Duration>) {
        let size = size as u64;
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.legs.fetch_add(size, Ordering::Relaxed);
        let bucket = (u64::BITS - size.max(1).leading_zeros() - 1).min(6) as usize;
        self.group_sizes[bucket].fetch_add(1, Ordering::Relaxed);
        self.largest_group.fetch_max(size, Ordering::Relaxed);
        for wait in waits {
            let us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
            self.queue_wait_us.fetch_add(us, Ordering::Relaxed);
            self.longest_queue_wait_us.fetch_max(us, Ordering::Relaxed);
        }
    }

    fn record_group_time(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.group_us.fetch_add(us, Ordering::Relaxed);
        self.longest_group_us.fetch_max(us, Ordering::Relaxed);
    }

    fn record_lost_races(&self, lost: u32) {
        self.lost_races
            .fetch_add(u64::from(lost), Ordering::Relaxed);
        self.most_lost_races_in_a_group
            .fetch_max(u64::from(lost), Ordering::Relaxed);
    }
}

impl GroupCommitStats {
    /// The mean number of legs per group.
    pub fn mean_group_size(&self) -> f64 {
        if self.groups == 0 {
            return 0.0;
        }
        self.legs as f64 / self.groups as f64
    }
}

impl fmt::Display for GroupCommitStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [one, two, four, eight, sixteen, thirty_two, sixty_four] = self.group_sizes;
        write!(
            f,
            "{} legs in {} groups (mean {:.1}, largest {}; sizes 1:{one} 2-3:{two} 4-7:{four} \
             8-15:{eight} 16-31:{sixteen} 32-63:{thirty_two} 64+:{sixty_four}), \
             {} lost races (at most {} in one group), {} groups refused and re-run leg by \
             leg, {} writes refused on a full queue, queue wait mean {} µs, longest {} µs, \
             group time mean {} µs, longest {} µs",
            self.legs,
            self.groups,
            self.mean_group_size(),
            self.largest_group,
            self.lost_races,
            self.most_lost_races_in_a_group,
            self.refused_groups,
            self.queue_full,
            self.queue_wait_us.checked_div(self.legs).unwrap_or(0),
            self.longest_queue_wait_us,
            self.group_us.checked_div(self.groups).unwrap_or(0),
            self.longest_group_us,
        )
    }
}

/// The source's head, and the state of every destination a group names, in
/// one round trip each (pipelined). No head row: the source does not exist.
pub const GROUP_SOURCE_HEAD: &str = "\
    select s.currency_code, s.is_system, ledger.close_state(s.closed_at, s.closing_xid) as state,
           coalesce(h.source_seq + 1, 0) as next_seq,
           ledger.incoming_total(s.account_id) - coalesce(h.source_outgoing_total, 0) as balance
      from ledger.accounts s
      left join lateral (
            select t.source_seq, t.source_outgoing_total
              from ledger.transfers t
             where t.source_account_id = s.account_id
             order by t.source_seq desc
             limit 1) h on true
     where s.account_id = $1";

const GROUP_DESTINATIONS: &str = "\
    select account_id, currency_code, is_system,
           ledger.close_state(closed_at, closing_xid) as state
      from ledger.accounts
     where account_id = any($1)";

/// A group's rows in one statement, in sequence order: the trigger of each
/// row sees the rows before it (a VOLATILE plpgsql trigger function reads
/// with a fresh command id), so their hashes and totals chain. No `on
/// conflict`: a row another process took aborts the whole statement, so a
/// group is never half in.
fn insert_group_sql() -> String {
    format!(
        "insert into ledger.transfers (source_account_id, source_seq, transfer_id, \
             destination_account_id, currency_code, amount, metadata) \
         select $1, leg.seq, leg.transfer_id, leg.destination, $2, leg.amount, leg.metadata \
           from unnest($3::bigint[], $4::uuid[], $5::uuid[], $6::numeric[], $7::jsonb[]) \
                with ordinality as leg(seq, transfer_id, destination, amount, metadata, position) \
          order by leg.position \
         returning {TRANSFER_COLUMNS}"
    )
}

const INSERT_OPENED_ACCOUNT: &str = "\
    insert into ledger.accounts (account_id, currency_code, metadata)
    values ($1, $2, $3)
    on conflict on constraint accounts_pkey do nothing
    returning created_at";

/// How one attempt at a group ended.
enum Attempt {
    Committed(Vec<Result<LegAnswer, StoreError>>),
    LostRace,
}

impl Ledger {
    /// Queues `leg` behind the other writes out of its source in this process
    /// and waits for its group's answer. A full queue answers `Unavailable`
    /// at once.
    pub(crate) async fn submit(&self, leg: Leg) -> Result<LegAnswer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let source = leg.source;
        let waiting = Waiting {
            leg,
            enqueued: Instant::now(),
            reply,
        };
        let start_leader = {
            let mut pending = self
                .queues
                .pending
                .lock()
                .map_err(|_| StoreError::Internal(anyhow::anyhow!("group queue poisoned")))?;
            match pending.entry(source) {
                Entry::Occupied(mut queue) => {
                    if queue.get().len() >= self.config.source_queue_max_legs {
                        self.group_metrics
                            .queue_full
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(StoreError::QueueFull(source));
                    }
                    queue.get_mut().push_back(waiting);
                    false
                }
                Entry::Vacant(slot) => {
                    slot.insert(VecDeque::from([waiting]));
                    true
                }
            }
        };
        if start_leader {
            // A task of its own, not the caller's future: a caller that goes
            // away (its client disconnected) must not strand the others.
            tokio::spawn(self.clone().lead(source));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Internal(anyhow::anyhow!(
                "the group commit of {source} stopped before answering"
            )))
        })
    }

    /// Runs the groups of `source` until its queue is empty.
    async fn lead(self, source: AccountId) {
        let mut guard = LeaderGuard {
            queues: &self.queues,
            source,
            done: false,
        };
        let max_legs = self.config.group_max_legs.max(1);
        loop {
            let batch: Vec<Waiting> = {
                let Ok(mut pending) = self.queues.pending.lock() else {
                    return;
                };
                let Some(queue) = pending.get_mut(&source) else {
                    guard.done = true;
                    return;
                };
                if queue.is_empty() {
                    pending.remove(&source);
                    guard.done = true;
                    return;
                }
                let take = queue.len().min(max_legs);
                queue.drain(..take).collect()
            };
            let now = Instant::now();
            self.group_metrics
                .record_group(batch.len(), batch.iter().map(|w| now - w.enqueued));
            let (legs, replies): (Vec<Leg>, Vec<Reply>) =
                batch.into_iter().map(|w| (w.leg, w.reply)).unzip();
            let answers = self.commit_group(&legs).await;
            for (reply, answer) in replies.into_iter().zip(answers) {
                // The caller may have gone away; its write stands regardless.
                let _ = reply.send(answer);
            }
            self.group_metrics.record_group_time(now.elapsed());
        }
    }

    /// Applies `legs` (all out of one source) and answers each, in order.
    async fn commit_group(&self, legs: &[Leg]) -> Vec<Result<LegAnswer, StoreError>> {
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
            if leg.claim.is_none() && leg.opening.is_none() {
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
        if legs
            .iter()
            .all(|leg| leg.claim.is_none() && leg.opening.is_none())
        {
            return self.decide_and_insert(&*client, legs).await;
        }
        let tx = client.transaction().await?;
        let attempt = self.decide_and_insert(&tx, legs).await?;
        if matches!(attempt, Attempt::Committed(_)) {
            tx.commit().await?;
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
        let head_statement = tx.prepare_cached(GROUP_SOURCE_HEAD).await?;
        let destinations_statement = tx.prepare_cached(GROUP_DESTINATIONS).await?;
        let named: Vec<Uuid> = legs
            .iter()
            .filter(|leg| leg.opening.is_none())
            .map(|leg| leg.destination.as_uuid())
            .collect();
        let source_uuid = source.as_uuid();
        let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&source_uuid];
        let destination_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&named];
        // Pipelined: both statements are on the wire before either answers.
        let (head_row, destination_rows) = futures::try_join!(
            tx.query_opt(&head_statement, &head_params),
            tx.query(&destinations_statement, &destination_params),
        )?;
        let mut head = head_row
            .map(|row| read_source_head(&row, source))
            .transpose()?;
        let mut destinations = HashMap::with_capacity(destination_rows.len());
        for row in &destination_rows {
            let state = read_destination(row)?;
            destinations.insert(state.account, state);
        }

        let mut answers: Vec<Option<Result<LegAnswer, StoreError>>> =
            legs.iter().map(|_| None).collect();
        // (leg index, sequence number, scaled amount, opened_at)
        let mut accepted: Vec<(usize, i64, Decimal, Option<DateTime<Utc>>)> = Vec::new();
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
            }
            accepted.push((index, decision.seq, decision.amount.value(), opened_at));
        }

        if !accepted.is_empty() {
            let currency = head
                .as_ref()
                .map(|head| head.currency)
                .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("legs without a head")))?;
            let insert = tx.prepare_cached(&insert_group_sql()).await?;
            let seqs: Vec<i64> = accepted.iter().map(|a| a.1).collect();
            let ids: Vec<Uuid> = accepted
                .iter()
                .map(|a| legs[a.0].transfer_id.as_uuid())
                .collect();
            let destinations: Vec<Uuid> = accepted
                .iter()
                .map(|a| legs[a.0].destination.as_uuid())
                .collect();
            let amounts: Vec<Decimal> = accepted.iter().map(|a| a.2).collect();
            let metadata: Vec<Option<serde_json::Value>> = accepted
                .iter()
                .map(|a| legs[a.0].metadata.clone())
                .collect();
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
                    let leg = &legs[accepted[0].0];
                    return Err(write_error(err, leg, currency));
                }
                Err(err) => return Err(err.into()),
            };
            if rows.len() != accepted.len() {
                return Ok(Attempt::LostRace);
            }
            let mut by_id: HashMap<Uuid, Transfer> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let transfer = transfer_from_row(row)?;
                by_id.insert(transfer.id.as_uuid(), transfer);
            }
            for (index, _, _, opened_at) in accepted {
                let transfer = by_id
                    .remove(&legs[index].transfer_id.as_uuid())
                    .ok_or_else(|| {
                        StoreError::Internal(anyhow::anyhow!("an inserted leg was not returned"))
                    })?;
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

/// Removes a leader's queue if its task ends without emptying it (a panic,
/// or the runtime shutting down): the writes still queued are answered with
/// an error (their reply channels close) rather than left waiting forever,
/// and the next write starts a new leader.
struct LeaderGuard<'a> {
    queues: &'a Queues,
    source: AccountId,
    done: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(mut pending) = self.queues.pending.lock() {
            pending.remove(&self.source);
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

fn read_source_head(
    row: &tokio_postgres::Row,
    source: AccountId,
) -> Result<SourceHead, StoreError> {
    Ok(SourceHead {
        account: source,
        kind: kind_of(row.try_get("is_system")?),
        currency: currency_of(row.try_get("currency_code")?)?,
        state: state_of(row.try_get("state")?)?,
        next_seq: row.try_get("next_seq")?,
        balance: row.try_get("balance")?,
    })
}

fn read_destination(row: &tokio_postgres::Row) -> Result<DestinationState, StoreError> {
    Ok(DestinationState {
        account: AccountId::from(row.try_get::<_, Uuid>("account_id")?),
        kind: kind_of(row.try_get("is_system")?),
        currency: currency_of(row.try_get("currency_code")?)?,
        state: state_of(row.try_get("state")?)?,
    })
}

/// A refused insert as the leg's domain error, when a named constraint says
/// which rule.
pub(crate) fn write_error(err: tokio_postgres::Error, leg: &Leg, currency: Currency) -> StoreError {
    let context = WriteContext {
        source: leg.source,
        destination: leg.destination,
        currency: currency.code(),
        max_decimals: currency.minor_units(),
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
