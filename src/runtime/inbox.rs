//! Delivery of cross-shard messages on the receiving shard's loop.
//!
//! [`crate::mesh`] owns the queues (a bounded crossbeam channel per shard, an outbox
//! per sender) and knows nothing of the engine; this file attaches a shard's end
//! of the mesh (its [`Mailbox`]) to the shard: the loop delivers a batch every turn
//! in which the inbox has work, and a sender wakes a sleeping shard through the
//! shard's own doorbell (see `doorbell.rs`), so a message to a parked shard is
//! delivered as soon as that shard's io_uring_enter returns.
//!
//! ```text
//!  sender thread                         receiving shard's loop
//!  try_send(envelope) ─► inbox channel   every turn: has_work? ─► run(BATCH) ─► handler
//!  doorbell.ring(): fence, sleeping? ──► eventfd write ─► the ring's doorbell read
//!                                        completes ─► the shard wakes
//! ```
//!
//! Shutdown: every joined shard registers a quiesce hook that steps the mesh's
//! flush barrier (see [`Mailbox::quiesce_step`]) every millisecond until it is done
//! or the drain timeout passes.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::runtime::doorbell::Doorbell as ShardBell;
use crate::runtime::shard;

/// How often a shutting-down shard steps the mesh's flush barrier.
const QUIESCE_POLL: Duration = Duration::from_millis(1);

/// A mesh inbox's doorbell: rings the shard the inbox is attached to.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    target: OnceLock<Arc<ShardBell>>,
    wakeups: AtomicU64,
}

impl Doorbell {
    /// Wakes the receiving shard if it may be asleep. Call after making work
    /// visible (a push into its channel, a flag it re-checks).
    pub(crate) fn ring(&self) {
        if let Some(t) = self.target.get() {
            if t.ring() {
                self.wakeups.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Returns how many rings found the receiving shard asleep and woke it.
    pub(crate) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

/// What the shard's loop drives: one shard's end of the mesh.
pub(crate) trait Mailbox: 'static {
    /// The doorbell senders ring for this shard.
    fn doorbell(&self) -> &Doorbell;

    /// Moves waiting outbox messages on and delivers up to `budget` inbox
    /// messages; returns true if the budget ran out (more may be waiting).
    fn run(&self, budget: usize) -> bool;

    /// Tells whether there is work.
    fn has_work(&self) -> bool;

    /// Tells whether this endpoint is closed and needs no more delivery.
    fn finished(&self) -> bool;

    /// Does one step of the shutdown barrier; returns true once this endpoint is
    /// closed. `late` is true once the drain deadline has passed: the step must
    /// then finish, giving up (with a log line) on whatever is still waiting.
    fn quiesce_step(&self, late: bool) -> bool;
}

/// Attaches `mailbox` to the shard running on this thread: its loop delivers the
/// mailbox's messages and its shutdown steps the barrier. Returns false if this
/// thread runs no shard.
pub(crate) fn attach(mailbox: Rc<dyn Mailbox>) -> bool {
    let Some(shard) = shard::current() else {
        return false;
    };
    let _ = mailbox.doorbell().target.set(Arc::clone(&shard.bell));
    shard.mailboxes.borrow_mut().push(Rc::clone(&mailbox));
    // Messages may have arrived before the doorbell had a target.
    shard.bell.ring();
    let reactor = shard.reactor.clone();
    shard.on_quiesce(Box::new(move |deadline: Instant| {
        Box::pin(async move {
            while !mailbox.quiesce_step(Instant::now() >= deadline) {
                reactor.sleep(QUIESCE_POLL).await;
            }
        })
    }));
    true
}
