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
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ledger_domain::{AccountId, Currency, Decimal, TransferId};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::idempotency::Idempotency;
use crate::records::{Posting, Transfer};
use crate::{Ledger, StoreError};

mod apply;
mod metrics;

pub(crate) use apply::write_error;
pub use metrics::{GroupCommitMetrics, GroupCommitStats};

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
    /// The API key that asked for it (`created_by`).
    pub author: Option<Uuid>,
}

impl Leg {
    /// Whether the leg writes more than its own row (a key, an account, a
    /// hold's resolution), so that its group needs a transaction.
    pub(crate) fn needs_transaction(&self) -> bool {
        self.claim.is_some() || self.opening.is_some() || self.posting.hold_id().is_some()
    }
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
    pub overdraft_limit: Decimal,
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
