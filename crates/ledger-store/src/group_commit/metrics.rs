//! The group commit's counters: what the benchmark prints and the service
//! logs at shutdown (and `/metrics` will export).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

    pub(super) fn record_group(&self, size: usize, waits: impl Iterator<Item = Duration>) {
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

    pub(super) fn record_group_time(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.group_us.fetch_add(us, Ordering::Relaxed);
        self.longest_group_us.fetch_max(us, Ordering::Relaxed);
    }

    pub(super) fn record_lost_races(&self, lost: u32) {
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
