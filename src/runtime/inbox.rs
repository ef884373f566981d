//! Delivery of cross-shard messages: the doorbell and the per-shard inbox task.
//!
//! [`crate::mesh`] owns the queues (a bounded crossbeam channel per shard, an outbox
//! per sender) and knows nothing of glommio; this file is the part that does: it
//! runs one delivery task per joined shard and hooks the mesh into shard shutdown.
//!
//! ```text
//!  sender thread                               receiving shard's executor
//!  ─────────────                               ──────────────────────────
//!  try_send(envelope) ──► channel ──────────►  delivery task: run(BATCH) ─► handler
//!  fence(SeqCst)                                    │ nothing left?
//!  sleeping? ── no ──► done (no syscall)            ▼
//!     │ yes (swap to false)                    arm: register waker, sleeping = true,
//!     ▼                                             fence(SeqCst), re-check the channel
//!  waker.wake_by_ref() ─► glommio foreign            │ still empty
//!  wake queue + eventfd ─► executor wakes ─────►     ▼  Pending (the thread may sleep)
//! ```
//!
//! The flag makes a ring cost one fence and one load while the receiver is busy: only
//! the first message after the receiver parks pays for a wake (a cross-thread
//! waker clone, a queue push and, if the executor is asleep, an eventfd write).
//! Both sides fence between their store and their load (Dekker's pattern), so
//! either the sender sees `sleeping` or the receiver sees the message: a message is
//! never left in a parked inbox.
//!
//! The delivery task runs in a task queue of its own marked latency-sensitive
//! (`Latency::Matters(1 ms)`). For such a task glommio writes the executor's eventfd
//! on every foreign wake; for an ordinary one it writes it only if the executor has
//! announced it is going to sleep, and on this machine that path lost wakes: a
//! two-shard ping-pong (`tests/mesh_wakeups.rs`) hung in about one run of three with
//! the doorbell rung and the task never polled. The doorbell already limits foreign
//! wakes to one per park, so the forced eventfd write costs little, and the latency
//! setting also lets a woken delivery task preempt busy connection tasks within 1 ms.
//!
//! That forced write narrowed the hangs but did not remove them, so a watchdog task
//! per shard ticks every 10 ms and wakes the delivery task itself when the inbox has
//! had work and no progress for a whole tick (counted in `MeshStats::rescued`); the
//! tick also keeps an idle shard's executor from sleeping longer than 10 ms (100
//! timer wake-ups a second per shard). Even so, about one ping-pong run in twenty
//! still hangs with both executors asleep in glommio's `link_rings_and_sleep`
//! (io_uring_enter with no timeout) while a foreign wake *and* the watchdog's
//! timer are pending: glommio's linked-ring sleep itself misses completions. That
//! needs a fix in the engine's sleep path (for instance the eventfd-polling sleep of
//! glommio's unmerged PR #552, or weft's own ring), not in the mesh.
//!
//! Shutdown: every joined shard registers a quiesce hook that steps the mesh's
//! flush barrier (see [`Mailbox::quiesce_step`]) every millisecond until it is done
//! or the drain timeout passes, so shutdown never waits on the mesh for longer than
//! that. The delivery task ends when its mailbox says it is finished.

use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::runtime::shard;

/// Messages one delivery task delivers before yielding to the shard's connections.
pub(crate) const BATCH: usize = 256;

/// The latency glommio is asked to keep for the delivery task's queue: how long
/// other task queues may run before a woken delivery task gets the CPU.
const MESH_LATENCY: Duration = Duration::from_millis(1);

/// How often the watchdog looks for work stuck behind a lost wake-up.
const WATCHDOG_TICK: Duration = Duration::from_millis(10);

/// How often a shutting-down shard steps the mesh's flush barrier.
const QUIESCE_POLL: Duration = Duration::from_millis(1);

/// Wakes a parked delivery task from any thread, only when it may be parked.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    sleeping: AtomicBool,
    waker: Mutex<Option<Waker>>,
    wakeups: AtomicU64,
    rescues: AtomicU64,
}

impl Doorbell {
    /// Wakes the receiver if it is parked. Call after making work visible (a push
    /// into its channel, a flag it re-checks).
    pub(crate) fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            let w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = w.as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// Returns how many rings found the receiver parked and woke it.
    pub(crate) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Returns how many times the watchdog found work stuck behind a lost wake-up.
    pub(crate) fn rescues(&self) -> u64 {
        self.rescues.load(Ordering::Relaxed)
    }

    /// Wakes the receiver from its own thread (the watchdog).
    fn rescue(&self) {
        self.rescues.fetch_add(1, Ordering::Relaxed);
        self.sleeping.store(false, Ordering::Relaxed);
        let w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = w.as_ref() {
            w.wake_by_ref();
        }
    }

    /// The receiver is running: rings need not wake it.
    fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// The receiver is about to park with `waker`: the caller must re-check for
    /// work after this returns, and park only if there is none.
    fn arm(&self, waker: &Waker) {
        {
            let mut w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !w.as_ref().is_some_and(|old| old.will_wake(waker)) {
                *w = Some(waker.clone());
            }
        }
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}

/// What the delivery task drives: one shard's end of the mesh.
pub(crate) trait Mailbox: 'static {
    /// The doorbell senders ring for this shard.
    fn doorbell(&self) -> &Doorbell;

    /// Moves waiting outbox messages on and delivers up to `budget` inbox
    /// messages; returns true if the budget ran out (more may be waiting).
    fn run(&self, budget: usize) -> bool;

    /// Tells whether there is work (checked after arming the doorbell).
    fn has_work(&self) -> bool;

    /// Returns how many messages this endpoint has delivered so far.
    fn delivered(&self) -> u64;

    /// Tells whether this endpoint is closed and its delivery task may end.
    fn finished(&self) -> bool;

    /// Does one step of the shutdown barrier; returns true once this endpoint is
    /// closed. `late` is true once the drain deadline has passed: the step must
    /// then finish, giving up (with a log line) on whatever is still waiting.
    fn quiesce_step(&self, late: bool) -> bool;
}

/// Attaches `mailbox` to the shard running on this thread: spawns its delivery
/// task and registers its shutdown step. Returns false if this thread runs no shard.
pub(crate) fn attach(mailbox: Rc<dyn Mailbox>) -> bool {
    let Some(shard) = shard::current() else {
        return false;
    };
    // Latency-sensitive: glommio then writes the executor's eventfd on every foreign
    // wake of this task (see the module notes); the doorbell keeps that to one per park.
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::default(),
        glommio::Latency::Matters(MESH_LATENCY),
        "weft-mesh",
    );
    match glommio::spawn_local_into(deliver(Rc::clone(&mailbox)), queue) {
        Ok(task) => task.detach(),
        Err(_) => glommio::spawn_local(deliver(Rc::clone(&mailbox))).detach(),
    };
    glommio::spawn_local(watchdog(Rc::clone(&mailbox))).detach();
    shard.on_quiesce(Box::new(move |deadline: Instant| {
        Box::pin(async move {
            while !mailbox.quiesce_step(Instant::now() >= deadline) {
                glommio::timer::sleep(QUIESCE_POLL).await;
            }
        })
    }));
    true
}

/// The delivery task: runs the mailbox whenever the doorbell rings, in batches.
async fn deliver(mailbox: Rc<dyn Mailbox>) {
    poll_fn(|cx| loop {
        let bell = mailbox.doorbell();
        bell.awake();
        if mailbox.finished() {
            return Poll::Ready(());
        }
        if mailbox.run(BATCH) {
            // Budget spent: let the shard's connections run, then come back.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        bell.arm(cx.waker());
        if !mailbox.has_work() && !mailbox.finished() {
            return Poll::Pending;
        }
    })
    .await
}

/// Bounds the cost of a lost cross-thread wake-up to two ticks: if the inbox has
/// had work and no delivery for a whole tick, wake the delivery task locally.
///
/// glommio 0.9 occasionally loses a foreign wake of a sleeping executor (see the
/// module notes); the tick also wakes the executor, which then drains its foreign
/// wake queue. `MeshStats::rescued` counts the times this was needed.
async fn watchdog(mailbox: Rc<dyn Mailbox>) {
    let mut last = mailbox.delivered();
    let mut stuck = false;
    while !mailbox.finished() {
        glommio::timer::sleep(WATCHDOG_TICK).await;
        let now = mailbox.delivered();
        let idle_with_work = now == last && mailbox.has_work();
        if idle_with_work && stuck {
            mailbox.doorbell().rescue();
        }
        stuck = idle_with_work;
        last = now;
    }
}
