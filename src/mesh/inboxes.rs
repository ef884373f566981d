//! The part of a mesh every shard shares: one bounded inbox per shard, with the flags
//! other shards use to reach it, and the counters only its shard writes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::runtime::inbox::Doorbell;

/// What travels through an inbox. `from` is the sending shard.
pub(super) enum Envelope<M> {
    Message(M),
    Ask { from: usize, id: u64, msg: M },
    Reply { from: usize, id: u64, msg: M },
    NoResponder { from: usize, id: u64 },
}

/// One shard's inbox and the flags other shards use to reach it.
pub(super) struct Slot<M> {
    pub(super) tx: Sender<Envelope<M>>,
    pub(super) rx: Receiver<Envelope<M>>,
    pub(super) doorbell: Doorbell,
    pub(super) joined: AtomicBool,
    /// `waiting[s]`: sender `s` has an outbox waiting for room here.
    pub(super) waiting: Box<[AtomicBool]>,
    pub(super) any_waiting: AtomicBool,
    /// Set by a receiver that made room for this shard's outboxes.
    pub(super) retry: AtomicBool,
    /// External posts are refused once set; `posting` counts posts in progress.
    pub(super) closed: AtomicBool,
    pub(super) posting: AtomicUsize,
    pub(super) stats: SlotStats,
}

#[derive(Default)]
pub(super) struct SlotStats {
    pub(super) sent: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) deferred: AtomicU64,
    pub(super) dropped: AtomicU64,
}

/// Adds to a counter that only its own shard writes (no read-modify-write needed).
pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

pub(super) struct Shared<M> {
    pub(super) slots: Box<[Slot<M>]>,
    pub(super) capacity: usize,
    pub(super) joined: AtomicUsize,
    pub(super) flushed: AtomicUsize,
}
