//! Shard-to-shard messages: broadcast, send to one shard, ask every shard.
//!
//! Each shard's factory sees only its own connections (reference A15). When
//! shard-local code needs the others — a chat line for every client, a global
//! connection count — it sends a message through a [`Mesh`]: one bounded inbox per
//! shard, a shard-local outbox per sender, and a doorbell that wakes a parked
//! receiver.
//!
//! ```text
//!  Mesh::new(shards, capacity)            (before start; Send + Sync, clonable)
//!    └─ in each shard's factory closure: mesh.join(shard) ─► MeshEndpoint (shard-local)
//!
//!  endpoint.broadcast(m) ─► for each shard s: outbox[s] empty? ─► try_send ─► inbox[s]
//!                                              │ full, or outbox not empty  │ ring doorbell
//!                                              ▼                            ▼
//!                                     outbox[s] (ordered, shard-local)   delivery task on s:
//!                                     moved on when s makes room         handler(m), in order
//! ```
//!
//! # Order
//! Messages from one sender shard to one receiver shard are delivered in the order
//! sent (asks and replies included). There is no order across senders: two shards
//! broadcasting at once may be seen in different orders by different shards. This
//! is the deliberate difference from single-threaded Twisted, where one reactor
//! gives every event one total order.
//!
//! # A full inbox: back-pressure, never a silent drop
//! Inboxes are bounded (`capacity` messages each, preallocated). When a receiver's
//! inbox is full, the message waits in the sender's shard-local outbox, behind
//! anything already waiting for that receiver, and is moved on when the receiver
//! drains (the receiver rings the sender's doorbell). Nothing is dropped and
//! per-sender order holds. The cost of a slow receiver is memory on the *sender*,
//! visible as [`MeshEndpoint::backlog`] and counted in [`MeshStats::deferred`]; a
//! sender that must bound it checks `backlog()` and slows its own producers.
//! [`Mesh::post`], for threads outside the server, has no outbox: it returns
//! [`MeshError::Full`] and the caller keeps the message.
//!
//! # Cost
//! A message is one `try_send` into a preallocated array channel and, on the
//! receiver, one `try_recv` and one call of the handler: no allocation (the payload
//! should be [`bytes::Bytes`], so a broadcast clones a reference count per shard).
//! The doorbell costs one fence and one load while the receiver is busy; only a
//! message that finds it parked pays for a cross-thread wake.
//!
//! # Shutdown
//! A graceful stop runs a flush barrier on every joined shard before any connection
//! is closed: the shard refuses new sends ([`MeshError::Closed`]), moves its whole
//! outbox on, waits until every joined shard has done the same, then delivers
//! everything left in its inbox. So every message accepted before the stop reaches
//! its handlers, and what they write reaches connected clients as the connections
//! drain. The barrier is bounded by the server's drain timeout; past it, what is
//! still waiting is dropped with a logged count. Asks still unanswered at the stop
//! resolve with [`MeshError::Closed`].
//!
//! # Examples
//! ```no_run
//! use weft::mesh::Mesh;
//! # use weft::{Address, Factory, Protocol, Transport};
//! # struct P;
//! # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
//! # struct F(weft::mesh::MeshEndpoint<u64>);
//! # impl Factory for F { type Protocol = P;
//! #   fn build_protocol(&mut self, _: &Address) -> Option<P> { Some(P) } }
//! let builder = weft::Server::builder().cores(2);
//! let mesh: Mesh<u64> = Mesh::new(builder.shard_count(), 1024);
//! let server = builder
//!     .listen("tcp:0", move |shard| {
//!         let endpoint = mesh.join(shard).expect("one join per shard");
//!         endpoint.on_message(move |n| println!("shard {shard} got {n}"));
//!         F(endpoint)
//!     })
//!     .start()
//!     .expect("listening");
//! # server.shutdown().unwrap();
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::runtime::inbox::{self, Doorbell, Mailbox};

/// The inbox capacity `weft serve chat` uses: messages per shard's inbox.
pub const DEFAULT_INBOX_CAPACITY: usize = 4096;

/// Why a mesh operation did not happen. The message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshError {
    /// The shard index is not in this mesh.
    NoSuchShard {
        /// The index given.
        shard: usize,
        /// The number of shards in the mesh.
        shards: usize,
    },
    /// This shard has already joined the mesh (one endpoint per shard).
    AlreadyJoined {
        /// The shard.
        shard: usize,
    },
    /// `join` was called on a thread that runs no weft shard (use `join_manual`).
    NotOnShard,
    /// The mesh is shutting down: new messages are refused.
    Closed,
    /// The receiver's inbox is full ([`Mesh::post`] only; endpoints queue instead).
    Full {
        /// The receiving shard.
        shard: usize,
    },
    /// A shard asked by [`MeshEndpoint::ask_all`] has no responder set.
    NoResponder {
        /// The shard without a responder.
        shard: usize,
    },
}

impl fmt::Display for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeshError::NoSuchShard { shard, shards } => {
                write!(f, "no shard {shard} in a mesh of {shards}")
            }
            MeshError::AlreadyJoined { shard } => write!(f, "shard {shard} already joined"),
            MeshError::NotOnShard => f.write_str("this thread runs no weft shard"),
            MeshError::Closed => f.write_str("the mesh is shutting down"),
            MeshError::Full { shard } => write!(f, "the inbox of shard {shard} is full"),
            MeshError::NoResponder { shard } => write!(f, "shard {shard} answers no asks"),
        }
    }
}

impl std::error::Error for MeshError {}

/// What travels through an inbox. `from` is the sending shard.
enum Envelope<M> {
    Message(M),
    Ask { from: usize, id: u64, msg: M },
    Reply { from: usize, id: u64, msg: M },
    NoResponder { from: usize, id: u64 },
}

/// One shard's inbox and the flags other shards use to reach it.
struct Slot<M> {
    tx: Sender<Envelope<M>>,
    rx: Receiver<Envelope<M>>,
    doorbell: Doorbell,
    joined: AtomicBool,
    /// `waiting[s]`: sender `s` has an outbox waiting for room here.
    waiting: Box<[AtomicBool]>,
    any_waiting: AtomicBool,
    /// Set by a receiver that made room for this shard's outboxes.
    retry: AtomicBool,
    /// External posts are refused once set; `posting` counts posts in progress.
    closed: AtomicBool,
    posting: AtomicUsize,
    stats: SlotStats,
}

#[derive(Default)]
struct SlotStats {
    sent: AtomicU64,
    delivered: AtomicU64,
    deferred: AtomicU64,
    dropped: AtomicU64,
}

/// Adds to a counter that only its own shard writes (no read-modify-write needed).
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

struct Shared<M> {
    slots: Box<[Slot<M>]>,
    capacity: usize,
    joined: AtomicUsize,
    flushed: AtomicUsize,
}

/// A set of bounded inboxes, one per shard, for messages of type `M`.
///
/// Create it before the server starts, move a clone into the factory closure and
/// [`join`](Mesh::join) once per shard there. It is `Send + Sync`; the endpoints
/// it hands out are shard-local.
pub struct Mesh<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for Mesh<M> {
    fn clone(&self) -> Self {
        Mesh {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> fmt::Debug for Mesh<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh")
            .field("shards", &self.shared.slots.len())
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

/// One shard's counters, readable from any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MeshStats {
    /// Messages this shard sent (every receiver counts once; asks and replies too).
    pub sent: u64,
    /// Messages this shard delivered to its handler or responder.
    pub delivered: u64,
    /// Messages this shard sent that had to wait in its outbox (a full inbox).
    pub deferred: u64,
    /// Messages dropped because the shutdown barrier passed its deadline.
    pub dropped: u64,
    /// Times a sender found this shard asleep and woke it.
    pub wakeups: u64,
}

impl<M: Send + 'static> Mesh<M> {
    /// Creates a mesh for `shards` shards whose inboxes hold `capacity` messages
    /// each (both at least 1). The inboxes are allocated here, once.
    pub fn new(shards: usize, capacity: usize) -> Mesh<M> {
        let shards = shards.max(1);
        let capacity = capacity.max(1);
        let slots = (0..shards)
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                Slot {
                    tx,
                    rx,
                    doorbell: Doorbell::default(),
                    joined: AtomicBool::new(false),
                    waiting: (0..shards).map(|_| AtomicBool::new(false)).collect(),
                    any_waiting: AtomicBool::new(false),
                    retry: AtomicBool::new(false),
                    closed: AtomicBool::new(false),
                    posting: AtomicUsize::new(0),
                    stats: SlotStats::default(),
                }
            })
            .collect();
        Mesh {
            shared: Arc::new(Shared {
                slots,
                capacity,
                joined: AtomicUsize::new(0),
                flushed: AtomicUsize::new(0),
            }),
        }
    }

    /// Returns the number of shards.
    pub fn shards(&self) -> usize {
        self.shared.slots.len()
    }

    /// Returns the capacity of each inbox, in messages.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Joins the mesh as `shard`, from that shard's thread (inside the factory
    /// closure): starts the shard's delivery task and hooks it into shutdown.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`], [`MeshError::AlreadyJoined`], or
    /// [`MeshError::NotOnShard`] when called outside a weft shard.
    pub fn join(&self, shard: usize) -> Result<MeshEndpoint<M>, MeshError> {
        let endpoint = self.join_manual(shard)?;
        let mailbox: Rc<dyn Mailbox> = endpoint.local.clone();
        if !inbox::attach(mailbox) {
            self.leave(shard);
            return Err(MeshError::NotOnShard);
        }
        Ok(endpoint)
    }

    /// Joins the mesh as `shard` without a delivery task: the caller delivers by
    /// calling [`MeshEndpoint::run_pending`]. For tests and for threads that run
    /// no weft shard. Such an endpoint takes no part in the shutdown barrier.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`] or [`MeshError::AlreadyJoined`].
    pub fn join_manual(&self, shard: usize) -> Result<MeshEndpoint<M>, MeshError> {
        let shards = self.shards();
        let slot = self
            .shared
            .slots
            .get(shard)
            .ok_or(MeshError::NoSuchShard { shard, shards })?;
        if slot.joined.swap(true, Ordering::SeqCst) {
            return Err(MeshError::AlreadyJoined { shard });
        }
        self.shared.joined.fetch_add(1, Ordering::SeqCst);
        Ok(MeshEndpoint {
            local: Rc::new(Local {
                shard,
                shared: Arc::clone(&self.shared),
                outboxes: RefCell::new((0..shards).map(|_| VecDeque::new()).collect()),
                backlog: Cell::new(0),
                handler: RefCell::new(None),
                responder: RefCell::new(None),
                asks: RefCell::new(HashMap::new()),
                next_ask: Cell::new(0),
                phase: Cell::new(Phase::Open),
            }),
        })
    }

    fn leave(&self, shard: usize) {
        self.shared.slots[shard]
            .joined
            .store(false, Ordering::SeqCst);
        self.shared.joined.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sends `msg` to `shard` from any thread (an admin thread, a test). There is
    /// no outbox here: a full inbox gives the error back at once.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`], [`MeshError::Full`], or [`MeshError::Closed`]
    /// once that shard has begun shutting down.
    pub fn post(&self, shard: usize, msg: M) -> Result<(), MeshError> {
        let shards = self.shards();
        let slot = self
            .shared
            .slots
            .get(shard)
            .ok_or(MeshError::NoSuchShard { shard, shards })?;
        // Counted so that the receiver's final drain waits for a post in progress.
        slot.posting.fetch_add(1, Ordering::SeqCst);
        let result = if slot.closed.load(Ordering::SeqCst) {
            Err(MeshError::Closed)
        } else {
            match slot.tx.try_send(Envelope::Message(msg)) {
                Ok(()) => {
                    slot.doorbell.ring();
                    Ok(())
                }
                Err(_) => Err(MeshError::Full { shard }),
            }
        };
        slot.posting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Returns every shard's counters.
    pub fn stats(&self) -> Vec<MeshStats> {
        self.shared
            .slots
            .iter()
            .map(|s| MeshStats {
                sent: s.stats.sent.load(Ordering::Relaxed),
                delivered: s.stats.delivered.load(Ordering::Relaxed),
                deferred: s.stats.deferred.load(Ordering::Relaxed),
                dropped: s.stats.dropped.load(Ordering::Relaxed),
                wakeups: s.doorbell.wakeups(),
            })
            .collect()
    }
}

/// Where an endpoint is in the shutdown barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending and receiving.
    Open,
    /// Refusing new sends; moving the outbox on.
    Flushing,
    /// Outbox empty; waiting for every joined shard to get here.
    Waiting,
    /// Inbox delivered; the delivery task ends.
    Closed,
}

struct AskState<M> {
    answers: Vec<Option<M>>,
    remaining: usize,
    error: Option<MeshError>,
    waker: Option<Waker>,
}

type Handler<M> = Box<dyn FnMut(M)>;
type Responder<M> = Box<dyn FnMut(M) -> M>;

struct Local<M> {
    shard: usize,
    shared: Arc<Shared<M>>,
    outboxes: RefCell<Vec<VecDeque<Envelope<M>>>>,
    backlog: Cell<usize>,
    handler: RefCell<Option<Handler<M>>>,
    responder: RefCell<Option<Responder<M>>>,
    asks: RefCell<HashMap<u64, AskState<M>>>,
    next_ask: Cell<u64>,
    phase: Cell<Phase>,
}

impl<M: Send + 'static> Local<M> {
    fn own(&self) -> &Slot<M> {
        &self.shared.slots[self.shard]
    }

    fn check_open(&self) -> Result<(), MeshError> {
        if self.phase.get() == Phase::Open {
            Ok(())
        } else {
            Err(MeshError::Closed)
        }
    }

    fn check_shard(&self, to: usize) -> Result<(), MeshError> {
        let shards = self.shared.slots.len();
        if to < shards {
            Ok(())
        } else {
            Err(MeshError::NoSuchShard { shard: to, shards })
        }
    }

    /// Sends `env` to `to`, or queues it behind that receiver's outbox.
    fn push(&self, to: usize, env: Envelope<M>) {
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
    fn flush_to(&self, to: usize, outbox: &mut VecDeque<Envelope<M>>) {
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

    fn flush_all(&self) {
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
    fn release_waiting_senders(&self) {
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

    fn dispatch(&self, env: Envelope<M>) {
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

    fn answer(&self, id: u64, from: usize, answer: Result<M, MeshError>) {
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

    fn fail_asks(&self) {
        for state in self.asks.borrow_mut().values_mut() {
            state.error.get_or_insert(MeshError::Closed);
            state.remaining = 0;
            if let Some(w) = state.waker.take() {
                w.wake();
            }
        }
    }

    fn drop_backlog(&self) -> usize {
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

fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// One shard's end of a [`Mesh`]: shard-local, cheap to clone (an `Rc`).
///
/// Send with [`broadcast`](Self::broadcast), [`send`](Self::send) and
/// [`ask_all`](Self::ask_all); receive by setting [`on_message`](Self::on_message)
/// and [`on_ask`](Self::on_ask). Handlers run on this shard, in the shard's
/// delivery task, never inside the sender's call: a handler may itself send.
pub struct MeshEndpoint<M> {
    local: Rc<Local<M>>,
}

impl<M> Clone for MeshEndpoint<M> {
    fn clone(&self) -> Self {
        MeshEndpoint {
            local: Rc::clone(&self.local),
        }
    }
}

impl<M> fmt::Debug for MeshEndpoint<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshEndpoint")
            .field("shard", &self.local.shard)
            .field("backlog", &self.local.backlog.get())
            .finish()
    }
}

impl<M: Send + 'static> MeshEndpoint<M> {
    /// Returns this endpoint's shard index.
    pub fn shard(&self) -> usize {
        self.local.shard
    }

    /// Returns the number of shards in the mesh.
    pub fn shards(&self) -> usize {
        self.local.shared.slots.len()
    }

    /// Sets the function called with every message delivered to this shard
    /// (replacing any previous one). Without one, messages are discarded.
    pub fn on_message<H: FnMut(M) + 'static>(&self, handler: H) {
        *self.local.handler.borrow_mut() = Some(Box::new(handler));
    }

    /// Sets the function that answers [`ask_all`](Self::ask_all) on this shard.
    pub fn on_ask<R: FnMut(M) -> M + 'static>(&self, responder: R) {
        *self.local.responder.borrow_mut() = Some(Box::new(responder));
    }

    /// Sends `msg` to shard `to` (this shard included). If `to`'s inbox is full the
    /// message waits in this shard's outbox; it is never dropped.
    ///
    /// # Errors
    /// [`MeshError::NoSuchShard`], or [`MeshError::Closed`] once shutdown began.
    pub fn send(&self, to: usize, msg: M) -> Result<(), MeshError> {
        self.local.check_shard(to)?;
        self.local.check_open()?;
        self.local.push(to, Envelope::Message(msg));
        Ok(())
    }

    /// Returns the messages waiting in this shard's outbox for full inboxes.
    pub fn backlog(&self) -> usize {
        self.local.backlog.get()
    }

    /// Delivers what is waiting in this shard's inbox (and moves the outbox on);
    /// returns how many messages were delivered. A [`join_manual`](Mesh::join_manual)
    /// endpoint is driven this way; with [`join`](Mesh::join) the delivery task
    /// does it.
    pub fn run_pending(&self) -> u64 {
        let before = self.local.own().stats.delivered.load(Ordering::Relaxed);
        while self.local.run(usize::MAX) {}
        self.local.own().stats.delivered.load(Ordering::Relaxed) - before
    }
}

impl<M: Send + Clone + 'static> MeshEndpoint<M> {
    /// Sends `msg` to every shard, this one included (one clone per shard: make the
    /// payload [`bytes::Bytes`] so a clone is a reference count).
    ///
    /// # Errors
    /// [`MeshError::Closed`] once shutdown began.
    pub fn broadcast(&self, msg: M) -> Result<(), MeshError> {
        self.local.check_open()?;
        let last = self.shards() - 1;
        for to in 0..last {
            self.local.push(to, Envelope::Message(msg.clone()));
        }
        self.local.push(last, Envelope::Message(msg));
        Ok(())
    }

    /// Asks every shard (this one included) to answer `msg` with its responder and
    /// returns a future of the answers, indexed by shard; combine them as needed
    /// (for example, sum the connection counts). Spawn it with
    /// [`Reactor::spawn_local`](crate::Reactor::spawn_local).
    ///
    /// # Errors
    /// The future yields [`MeshError::NoResponder`] if a shard has no responder,
    /// and [`MeshError::Closed`] if shutdown began before every answer came.
    pub fn ask_all(&self, msg: M) -> AskAll<M> {
        let local = Rc::clone(&self.local);
        if let Err(e) = local.check_open() {
            return AskAll {
                local,
                id: None,
                early: Some(e),
            };
        }
        let id = local.next_ask.get();
        local.next_ask.set(id + 1);
        let shards = self.shards();
        local.asks.borrow_mut().insert(
            id,
            AskState {
                answers: (0..shards).map(|_| None).collect(),
                remaining: shards,
                error: None,
                waker: None,
            },
        );
        let from = local.shard;
        for to in 0..shards {
            local.push(
                to,
                Envelope::Ask {
                    from,
                    id,
                    msg: msg.clone(),
                },
            );
        }
        AskAll {
            local,
            id: Some(id),
            early: None,
        }
    }
}

/// The answers to [`MeshEndpoint::ask_all`], indexed by shard.
#[must_use = "an ask does nothing useful unless awaited"]
pub struct AskAll<M> {
    local: Rc<Local<M>>,
    id: Option<u64>,
    early: Option<MeshError>,
}

impl<M> fmt::Debug for AskAll<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AskAll").field("id", &self.id).finish()
    }
}

impl<M> Future for AskAll<M> {
    type Output = Result<Vec<M>, MeshError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(id) = self.id else {
            return Poll::Ready(Err(MeshError::Closed));
        };
        let mut asks = self.local.asks.borrow_mut();
        let Some(state) = asks.get_mut(&id) else {
            return Poll::Ready(Err(MeshError::Closed));
        };
        if state.remaining > 0 {
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let state = asks.remove(&id).expect("present above");
        drop(asks);
        self.id = None;
        if let Some(e) = state.error {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(state.answers.into_iter().flatten().collect()))
    }
}

impl<M> Drop for AskAll<M> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.local.asks.borrow_mut().remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(capacity: usize) -> (Mesh<u32>, MeshEndpoint<u32>, MeshEndpoint<u32>) {
        let mesh = Mesh::new(2, capacity);
        let a = mesh.join_manual(0).unwrap();
        let b = mesh.join_manual(1).unwrap();
        (mesh, a, b)
    }

    fn collect(e: &MeshEndpoint<u32>) -> Rc<RefCell<Vec<u32>>> {
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = Rc::clone(&got);
        e.on_message(move |m| g.borrow_mut().push(m));
        got
    }

    #[test]
    fn join_rejects_a_second_join_and_a_bad_index() {
        let mesh: Mesh<u32> = Mesh::new(2, 4);
        let _a = mesh.join_manual(0).unwrap();
        assert_eq!(
            mesh.join_manual(0).unwrap_err(),
            MeshError::AlreadyJoined { shard: 0 }
        );
        assert_eq!(
            mesh.join_manual(2).unwrap_err(),
            MeshError::NoSuchShard {
                shard: 2,
                shards: 2
            }
        );
    }

    #[test]
    fn join_off_a_shard_thread_is_refused_and_leaves_the_slot_free() {
        let mesh: Mesh<u32> = Mesh::new(1, 4);
        assert_eq!(mesh.join(0).unwrap_err(), MeshError::NotOnShard);
        assert!(mesh.join_manual(0).is_ok());
    }

    #[test]
    fn broadcast_reaches_every_shard_in_order() {
        let (_mesh, a, b) = pair(16);
        let (got_a, got_b) = (collect(&a), collect(&b));
        for i in 0..10 {
            a.broadcast(i).unwrap();
        }
        a.run_pending();
        b.run_pending();
        assert_eq!(*got_a.borrow(), (0..10).collect::<Vec<_>>());
        assert_eq!(*got_b.borrow(), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn full_inbox_defers_to_the_outbox_and_loses_nothing() {
        let (mesh, a, b) = pair(4);
        let got = collect(&b);
        for i in 0..100 {
            a.send(1, i).unwrap();
        }
        assert_eq!(a.backlog(), 96);
        assert_eq!(mesh.stats()[0].deferred, 96);
        // The receiver drains and flags the sender; the sender moves its outbox on.
        while got.borrow().len() < 100 {
            b.run_pending();
            a.run_pending();
        }
        assert_eq!(*got.borrow(), (0..100).collect::<Vec<_>>());
        assert_eq!(a.backlog(), 0);
    }

    #[test]
    fn post_reports_a_full_inbox() {
        let (mesh, _a, b) = pair(2);
        mesh.post(1, 1).unwrap();
        mesh.post(1, 2).unwrap();
        assert_eq!(mesh.post(1, 3), Err(MeshError::Full { shard: 1 }));
        let got = collect(&b);
        b.run_pending();
        assert_eq!(*got.borrow(), vec![1, 2]);
    }

    #[test]
    fn send_to_a_missing_shard_is_an_error() {
        let (_mesh, a, _b) = pair(2);
        assert_eq!(
            a.send(5, 0),
            Err(MeshError::NoSuchShard {
                shard: 5,
                shards: 2
            })
        );
    }

    #[test]
    fn ask_all_collects_one_answer_per_shard() {
        let (_mesh, a, b) = pair(8);
        a.on_ask(|q| q + 1);
        b.on_ask(|q| q + 2);
        let mut ask = Box::pin(a.ask_all(10));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(ask.as_mut().poll(&mut cx).is_pending());
        b.run_pending();
        a.run_pending();
        assert_eq!(ask.as_mut().poll(&mut cx), Poll::Ready(Ok(vec![11, 12])));
    }

    #[test]
    fn ask_all_without_a_responder_fails() {
        let (_mesh, a, b) = pair(8);
        a.on_ask(|q| q);
        let mut ask = Box::pin(a.ask_all(1));
        b.run_pending();
        a.run_pending();
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(
            ask.as_mut().poll(&mut cx),
            Poll::Ready(Err(MeshError::NoResponder { shard: 1 }))
        );
    }

    #[test]
    fn a_panicking_handler_does_not_stop_delivery() {
        let (_mesh, a, _b) = pair(8);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = Rc::clone(&got);
        a.on_message(move |m| {
            assert_ne!(m, 1, "boom");
            g.borrow_mut().push(m);
        });
        for i in 0..3 {
            a.send(0, i).unwrap();
        }
        a.run_pending();
        assert_eq!(*got.borrow(), vec![0, 2]);
    }
}
