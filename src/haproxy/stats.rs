//! `HaproxyStats`: what the PROXY wrappers of one listening service did with the
//! connections they were given, per shard: headers accepted, and headers rejected
//! by [`RejectReason`]; and the process's list of live ones, which the metrics page
//! reads (`weft_proxy_headers_*_total`).
//!
//! Shared by every shard's wrapping factory of one service (an `Arc`). Each shard
//! takes its own cells once ([`HaproxyStats::shard`]) and then counts without a
//! lock, once per connection at most (when its header is read or refused), on a
//! line no other shard writes. Any thread may read them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::reject::RejectReason;

/// One shard's counters of one service's PROXY wrappers.
#[derive(Debug, Default)]
pub(crate) struct ShardCounts {
    accepted: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
}

impl ShardCounts {
    pub(crate) fn on_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn on_rejected(&self, why: RejectReason) {
        self.rejected[why.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// What one shard's wrappers did, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardProxyCounts {
    /// Headers read and handed to the protocol.
    pub accepted: u64,
    /// Connections refused, in the order of [`RejectReason::ALL`].
    pub rejected: [u64; RejectReason::ALL.len()],
}

impl ShardProxyCounts {
    /// Returns the connections refused for `why`.
    pub fn rejected(&self, why: RejectReason) -> u64 {
        self.rejected[why.index()]
    }
}

/// Counters of the PROXY protocol wrappers of one listening service.
#[derive(Debug, Default)]
pub struct HaproxyStats {
    shards: Mutex<BTreeMap<usize, Arc<ShardCounts>>>,
}

impl HaproxyStats {
    fn cells(&self) -> MutexGuard<'_, BTreeMap<usize, Arc<ShardCounts>>> {
        // The map only grows; a panic while it was held left it whole.
        self.shards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns shard `index`'s cells, created (at zero) the first time.
    pub(crate) fn shard(&self, index: usize) -> Arc<ShardCounts> {
        Arc::clone(self.cells().entry(index).or_default())
    }

    /// Returns each shard's counters that counted anything yet, by shard index.
    pub fn per_shard(&self) -> Vec<(usize, ShardProxyCounts)> {
        self.cells()
            .iter()
            .map(|(&i, c)| {
                let mut s = ShardProxyCounts {
                    accepted: c.accepted.load(Ordering::Relaxed),
                    ..ShardProxyCounts::default()
                };
                for (v, cell) in s.rejected.iter_mut().zip(&c.rejected) {
                    *v = cell.load(Ordering::Relaxed);
                }
                (i, s)
            })
            .collect()
    }

    /// Returns the connections whose header was read and handed to the protocol.
    pub fn accepted(&self) -> u64 {
        self.per_shard().iter().map(|(_, s)| s.accepted).sum()
    }

    /// Returns the connections refused for `why`, every shard together.
    pub fn rejected(&self, why: RejectReason) -> u64 {
        self.per_shard().iter().map(|(_, s)| s.rejected(why)).sum()
    }

    /// Returns the connections closed for a missing (junk), malformed or oversized
    /// header (every reason but the timeout).
    pub fn refused(&self) -> u64 {
        RejectReason::ALL
            .iter()
            .filter(|&&r| r != RejectReason::Timeout)
            .map(|&r| self.rejected(r))
            .sum()
    }

    /// Returns the connections closed because no complete header came in time.
    pub fn timed_out(&self) -> u64 {
        self.rejected(RejectReason::Timeout)
    }
}

/// Every service's counters that are still in use, for the metrics page.
static LIVE: Mutex<Vec<Weak<HaproxyStats>>> = Mutex::new(Vec::new());

/// Puts `stats` on the process's list (once, however often it is given).
pub(crate) fn register(stats: &Arc<HaproxyStats>) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|w| w.strong_count() > 0);
    if !live
        .iter()
        .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(stats)))
    {
        live.push(Arc::downgrade(stats));
    }
}

/// Returns the PROXY counters of every live wrapper in the process, each shard's
/// summed over its services; empty when no wrapper exists.
pub fn process_totals() -> Vec<(usize, ShardProxyCounts)> {
    let live: Vec<Arc<HaproxyStats>> = {
        let l = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().filter_map(Weak::upgrade).collect()
    };
    let mut by_shard: BTreeMap<usize, ShardProxyCounts> = BTreeMap::new();
    for stats in &live {
        for (i, s) in stats.per_shard() {
            let t = by_shard.entry(i).or_default();
            t.accepted += s.accepted;
            for (a, b) in t.rejected.iter_mut().zip(s.rejected) {
                *a += b;
            }
        }
    }
    by_shard.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_count_apart_and_sum_together() {
        let s = HaproxyStats::default();
        s.shard(0).on_accepted();
        s.shard(1).on_accepted();
        s.shard(1).on_rejected(RejectReason::BadLength);
        s.shard(1).on_rejected(RejectReason::Timeout);
        s.shard(0).on_rejected(RejectReason::NotProxy);
        assert_eq!((s.accepted(), s.refused(), s.timed_out()), (2, 2, 1));
        let per = s.per_shard();
        assert_eq!(per[0].0, 0);
        assert_eq!(per[0].1.rejected(RejectReason::NotProxy), 1);
        assert_eq!(per[1].1.rejected(RejectReason::BadLength), 1);
        assert_eq!(per[1].1.rejected(RejectReason::NotProxy), 0);
    }

    #[test]
    fn the_process_list_holds_live_stats_once_and_forgets_dropped_ones() {
        let a = Arc::new(HaproxyStats::default());
        register(&a);
        register(&a);
        a.shard(7).on_accepted();
        let before = process_totals();
        let seven = |t: &[(usize, ShardProxyCounts)]| {
            t.iter().find(|(i, _)| *i == 7).map(|(_, s)| s.accepted)
        };
        // Other tests of this binary may count on other shards, never on 7.
        assert_eq!(seven(&before), Some(1));
        drop(a);
        assert_eq!(seven(&process_totals()), None);
    }
}
