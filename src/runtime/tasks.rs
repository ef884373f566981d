//! A shard's spawned tasks (`Reactor::spawn_local`): run by the shard's loop, woken
//! from anywhere.
//!
//! A wake on the shard's own thread pushes the task on a thread-local queue (no
//! synchronisation, no allocation); a wake from another thread (a resolver
//! thread, a channel) sends it through a channel and rings the shard's doorbell.
//! The loop runs a bounded batch per turn, so tasks and I/O share the core. A task
//! that panics is dropped, logged and counted; the shard goes on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_task::Runnable;
use crossbeam_channel::{Receiver, Sender};

use crate::reactor::LocalFuture;
use crate::runtime::doorbell::Doorbell;
use crate::runtime::shard::panic_message;

thread_local! {
    /// Tasks woken on this thread, for the shard running here.
    static LOCAL: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    /// The token of the shard whose loop runs on this thread (0: none).
    static RUNNING: Cell<u64> = const { Cell::new(0) };
}

struct Remote {
    tx: Sender<Runnable>,
    bell: Arc<Doorbell>,
}

/// One shard's task queues.
pub(crate) struct Tasks {
    token: u64,
    remote: Arc<Remote>,
    remote_rx: Receiver<Runnable>,
}

impl Tasks {
    pub(crate) fn new(bell: Arc<Doorbell>) -> Tasks {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (tx, remote_rx) = crossbeam_channel::unbounded();
        Tasks {
            token: NEXT.fetch_add(1, Ordering::Relaxed),
            remote: Arc::new(Remote { tx, bell }),
            remote_rx,
        }
    }

    /// Makes this thread the one that runs these tasks.
    pub(crate) fn enter(&self) {
        RUNNING.with(|r| r.set(self.token));
    }

    /// This thread stops running these tasks; what is still queued is dropped.
    pub(crate) fn exit(&self) {
        RUNNING.with(|r| r.set(0));
        let left: Vec<Runnable> = LOCAL.with(|q| q.borrow_mut().drain(..).collect());
        drop(left);
        while self.remote_rx.try_recv().is_ok() {}
    }

    /// Spawns `fut`; it first runs in the loop's next task batch (never inside
    /// this call, so a callback that spawns keeps its borrows).
    pub(crate) fn spawn(&self, fut: LocalFuture) {
        let token = self.token;
        let remote = Arc::clone(&self.remote);
        let schedule = move |r: Runnable| {
            let here = RUNNING.try_with(|t| t.get() == token).unwrap_or(false);
            if here {
                LOCAL.with(|q| q.borrow_mut().push_back(r));
            } else if remote.tx.send(r).is_ok() {
                remote.bell.ring();
            }
        };
        let (runnable, task) = async_task::spawn_local(fut, schedule);
        task.detach();
        runnable.schedule();
    }

    /// Tells whether a task is ready to run.
    pub(crate) fn has_work(&self) -> bool {
        LOCAL.with(|q| !q.borrow().is_empty()) || !self.remote_rx.is_empty()
    }

    /// Runs up to `budget` ready tasks; a panicking task is dropped and reported
    /// to `on_panic`. Returns how many ran.
    pub(crate) fn run(&self, budget: usize, on_panic: &mut dyn FnMut(String)) -> usize {
        while let Ok(r) = self.remote_rx.try_recv() {
            LOCAL.with(|q| q.borrow_mut().push_back(r));
        }
        let mut ran = 0;
        while ran < budget {
            let Some(r) = LOCAL.with(|q| q.borrow_mut().pop_front()) else {
                break;
            };
            ran += 1;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| r.run())) {
                on_panic(panic_message(&*p));
            }
        }
        ran
    }
}
