//! `HaproxyStats`: what the PROXY wrappers of one listening service did with the
//! connections they were given.
//!
//! Shared by every shard's wrapping factory of one service (an `Arc`); written once
//! per connection at most, when its header is read or refused, so a shared atomic
//! costs nothing on the data path. Any thread may read it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the PROXY protocol wrappers of one listening service.
#[derive(Debug, Default)]
pub struct HaproxyStats {
    accepted: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

impl HaproxyStats {
    pub(crate) fn on_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn on_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn on_timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns the connections whose header was read and handed to the protocol.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Returns the connections closed for a missing (junk), malformed or oversized
    /// header.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Returns the connections closed because no complete header came in time.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }
}
