//! A joined shard's side: its outboxes, handler, responder, asks in flight and
//! shutdown barrier, delivered as the shard's mailbox.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::task::Waker;

use crossbeam_channel::TrySendError;

use crate::runtime::inbox::{Doorbell, Mailbox};

use super::*;

/// Where an endpoint is in the shutdown barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Sending and receiving.
    Open,
    /// Refusing new sends; moving the outbox on.
    Flushing,
    /// Outbox empty; waiting for every joined shard to get here.
    Waiting,
    /// Inbox delivered; the delivery task ends.
    Closed,
}

pub(super) struct AskState<M> {
    pub(super) answers: Vec<Option<M>>,
    pub(super) remaining: usize,
    pub(super) error: Option<MeshError>,
    pub(super) waker: Option<Waker>,
}

pub(super) type Handler<M> = Box<dyn FnMut(M)>;
pub(super) type Responder<M> = Box<dyn FnMut(M) -> M>;

pub(super) struct Local<M> {
    pub(super) shard: usize,
    pub(super) shared: Arc<Shared<M>>,
    pub(super) outboxes: RefCell<Vec<VecDeque<Envelope<M>>>>,
    pub(super) backlog: Cell<usize>,
    pub(super) handler: RefCell<Option<Handler<M>>>,
    pub(super) responder: RefCell<Option<Responder<M>>>,
    pub(super) asks: RefCell<HashMap<u64, AskState<M>>>,
    pub(super) next_ask: Cell<u64>,
    pub(super) phase: Cell<Phase>,
}

impl<M: Send + 'static> Local<M> {
    pub(super) fn own(&self) -> &Slot<M> {
        &self.shared.slots[self.shard]
    }

    pub(super) fn check_open(&self) -> Result<(), MeshError> {
        if self.phase.get() == Phase::Open {
            Ok(())
        } else {
            Err(MeshError::Closed)
        }
    }

    pub(super) fn check_shard(&self, to: usize) -> Result<(), MeshError> {
        let shards = self.shared.slots.len();
        if to < shards {
            Ok(())
        } else {
            Err(MeshError::NoSuchShard { shard: to, shards })
        }
    }

    /// Sends `env` to `to`, or queues it behind that receiver's outbox.
    pub(super) fn push(&self, to: usize, env: Envelope<M>) {
        bump(&self.own().stats.sent, 1);
        let mut outboxes = self.outboxes.borrow_mut();
        let outbox = &mut outboxes[to];
        if outbox.is_empty() {
            let slot = &self.shared.slots[to];
            match slot.tx.try_send(env) {
                Ok(()) => {
                    slot.doorbell.ring();
                    return;
                }
                Err(TrySendError::Full(env) | TrySendError::Disconnected(env)) => {
                    outbox.push_back(env);
                }
            }
        } else {
            outbox.push_back(env);
        }
        bump(&self.own().stats.deferred, 1);
        self.backlog.set(self.backlog.get() + 1);
        self.flush_to(to, outbox);
    }

    /// Moves as much of the outbox for `to` as fits; if some is left, asks `to`
    /// to ring back when it makes room.
    pub(super) fn flush_to(&self, to: usize, outbox: &mut VecDeque<Envelope<M>>) {
        let slot = &self.shared.slots[to];
        let mut registered = false;
        let mut moved = false;
        while let Some(env) = outbox.pop_front() {
            match slot.tx.try_send(env) {
                Ok(()) => {
                    self.backlog.set(self.backlog.get() - 1);
                    moved = true;
                }
                Err(TrySendError::Full(env) | TrySendError::Disconnected(env)) => {
                    outbox.push_front(env);
                    if registered {
                        break;
                    }
                    // Register, then try once more: either this retry sees the room
                    // the receiver made, or the receiver sees the registration.
                    slot.waiting[self.shard].store(true, Ordering::SeqCst);
                    slot.any_waiting.store(true, Ordering::SeqCst);
                    fence(Ordering::SeqCst);
                    registered = true;
                }
            }
        }
        if moved {
            slot.doorbell.ring();
        }
    }

    pub(super) fn flush_all(&self) {
        if self.backlog.get() == 0 {
            return;
        }
        let mut outboxes = self.outboxes.borrow_mut();
        for (to, outbox) in outboxes.iter_mut().enumerate() {
            if !outbox.is_empty() {
                self.flush_to(to, outbox);
            }
        }
    }

    /// Rings the senders that wait for room in this shard's inbox.
    pub(super) fn release_waiting_senders(&self) {
        let own = self.own();
        fence(Ordering::SeqCst);
        if !own.any_waiting.swap(false, Ordering::SeqCst) {
            return;
        }
        for (s, flag) in own.waiting.iter().enumerate() {
            if flag.swap(false, Ordering::SeqCst) {
                let sender = &self.shared.slots[s];
                sender.retry.store(true, Ordering::SeqCst);
                sender.doorbell.ring();
            }
        }
    }

    pub(super) fn dispatch(&self, env: Envelope<M>) {
        match env {
            Envelope::Message(msg) => {
                let handler = self.handler.borrow_mut().take();
                if let Some(mut h) = handler {
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| h(msg))) {
                        tracing::error!(
                            shard = self.shard,
                            "mesh message handler panicked: {}",
                            panic_text(&*p)
                        );
                    }
                    let mut slot = self.handler.borrow_mut();
                    if slot.is_none() {
                        *slot = Some(h);
                    }
                }
            }
            Envelope::Ask { from, id, msg } => {
                let responder = self.responder.borrow_mut().take();
                let reply = match responder {
                    Some(mut r) => {
                        let answer = catch_unwind(AssertUnwindSafe(|| r(msg)));
                        let mut slot = self.responder.borrow_mut();
                        if slot.is_none() {
                            *slot = Some(r);
                        }
                        match answer {
                            Ok(msg) => Envelope::Reply {
                                from: self.shard,
                                id,
                                msg,
                            },
                            Err(p) => {
                                tracing::error!(
                                    shard = self.shard,
                                    "mesh responder panicked: {}",
                                    panic_text(&*p)
                                );
                                Envelope::NoResponder {
                                    from: self.shard,
                                    id,
                                }
                            }
                        }
                    }
                    None => Envelope::NoResponder {
                        from: self.shard,
                        id,
                    },
                };
                // Replies go out even while closing: the ask was accepted.
                self.push(from, reply);
            }
            Envelope::Reply { from, id, msg } => self.answer(id, from, Ok(msg)),
            Envelope::NoResponder { from, id } => {
                self.answer(id, from, Err(MeshError::NoResponder { shard: from }))
            }
        }
    }

    pub(super) fn answer(&self, id: u64, from: usize, answer: Result<M, MeshError>) {
        let mut asks = self.asks.borrow_mut();
        let Some(state) = asks.get_mut(&id) else {
            return; // the asker gave up (dropped its future)
        };
        match answer {
            Ok(msg) => state.answers[from] = Some(msg),
            Err(e) => {
                state.error.get_or_insert(e);
            }
        }
        state.remaining -= 1;
        if state.remaining == 0 {
            if let Some(w) = state.waker.take() {
                w.wake();
            }
        }
    }

    pub(super) fn fail_asks(&self) {
        for state in self.asks.borrow_mut().values_mut() {
            state.error.get_or_insert(MeshError::Closed);
            state.remaining = 0;
            if let Some(w) = state.waker.take() {
                w.wake();
            }
        }
    }

    pub(super) fn drop_backlog(&self) -> usize {
        let mut outboxes = self.outboxes.borrow_mut();
        let n: usize = outboxes.iter().map(VecDeque::len).sum();
        outboxes.iter_mut().for_each(VecDeque::clear);
        self.backlog.set(0);
        n
    }
}

impl<M: Send + 'static> Mailbox for Local<M> {
    fn doorbell(&self) -> &Doorbell {
        &self.own().doorbell
    }

    fn run(&self, budget: usize) -> bool {
        if self.own().retry.swap(false, Ordering::SeqCst) || self.backlog.get() > 0 {
            self.flush_all();
        }
        let own = self.own();
        let mut n = 0;
        while n < budget {
            match own.rx.try_recv() {
                Ok(env) => {
                    self.dispatch(env);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if n > 0 {
            bump(&own.stats.delivered, n as u64);
            self.release_waiting_senders();
        }
        n == budget
    }

    fn has_work(&self) -> bool {
        let own = self.own();
        !own.rx.is_empty() || own.retry.load(Ordering::SeqCst)
    }

    fn finished(&self) -> bool {
        self.phase.get() == Phase::Closed
    }

    fn quiesce_step(&self, late: bool) -> bool {
        let own = self.own();
        if self.phase.get() == Phase::Open {
            self.phase.set(Phase::Flushing);
            own.closed.store(true, Ordering::SeqCst);
        }
        if self.phase.get() == Phase::Flushing {
            self.flush_all();
            if self.backlog.get() > 0 && !late {
                return false;
            }
            let dropped = self.drop_backlog();
            if dropped > 0 {
                bump(&own.stats.dropped, dropped as u64);
                tracing::warn!(
                    shard = self.shard,
                    "shutdown: {dropped} mesh messages were still waiting for full inboxes at the drain deadline; dropped"
                );
            }
            self.shared.flushed.fetch_add(1, Ordering::SeqCst);
            self.phase.set(Phase::Waiting);
        }
        if self.phase.get() == Phase::Waiting {
            let (flushed, joined) = (
                self.shared.flushed.load(Ordering::SeqCst),
                self.shared.joined.load(Ordering::SeqCst),
            );
            let posting = own.posting.load(Ordering::SeqCst);
            if (flushed < joined || posting > 0) && !late {
                return false;
            }
            if flushed < joined {
                tracing::warn!(
                    shard = self.shard,
                    "shutdown: {} of {joined} shards did not flush their mesh messages within the drain deadline",
                    joined - flushed
                );
            }
            // Every sender has flushed and refuses new messages: deliver the rest.
            while self.run(usize::MAX) {}
            self.fail_asks();
            self.phase.set(Phase::Closed);
            own.doorbell.ring();
        }
        true
    }
}

pub(super) fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
