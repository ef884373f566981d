//! One shard: its state, and the loop that runs it on its own thread.
//!
//! ```text
//!  loop {
//!     completions ─► accepts, receives (→ data_received), sends, polls, doorbell
//!     due timers (call_later), ready tasks (spawn_local), mesh inbox, UNIX hand-offs
//!     connections on the service list ─► flow control, ends, sends, receives
//!     datagram ports' writes of the turn ─► one SendMsg each (datagram.rs)
//!     the shard's output budget
//!     work left (tasks, service list, completions, a due timer)?
//!        yes ─► submit this turn's SQEs, go round
//!        no  ─► doorbell: sleeping ─► re-check other threads' work ─► submit and
//!               sleep in io_uring_enter until a completion or the next timer
//!  }
//! ```
//!
//! Everything a shard owns lives here, on one thread; the only things that cross
//! threads are the doorbell (`doorbell.rs`), the stop flag, the published
//! counters, the task and hand-off channels and the mesh's inboxes, and each of
//! them rings the doorbell after making its work visible. A shard therefore
//! sleeps in exactly one place, its ring, and every kind of wake-up reaches it
//! there: an I/O completion directly, a timer as the wait's timeout, anything from
//! another thread as the completion of the doorbell's eventfd read.
//!
//! A panic in user code run by the loop (a protocol callback, a `call_later`
//! closure, a spawned task, a mesh handler, a factory method) is caught where it is
//! called, logged with the shard (and the peer, for a connection), counted, and
//! ends only the connection it belongs to, or nothing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::address::Address;
use crate::clock::Clock;
use crate::reactor::Reactor;
use crate::runtime::accept::{Acceptor, Listener};
use crate::runtime::builder::{OnShard, ServiceInstaller};
use crate::runtime::config::{Config, MESH_BATCH, TASK_BUDGET};
use crate::runtime::connection::Entry;
use crate::runtime::datagram::Port;
use crate::runtime::dial::Waiter;
use crate::runtime::doorbell::Doorbell;
use crate::runtime::inbox::Mailbox;
use crate::runtime::listener::{Bound, Handoff};
use crate::runtime::log_limit::LogLimit;
use crate::runtime::ring::op::Op;
use crate::runtime::ring::Ring;
use crate::runtime::tasks::Tasks;
use crate::runtime::{ShardStats, ShardSummary, StopHandle};
use crate::transport::ServiceList;

/// What a shard thread is started with.
pub(crate) struct ShardInit {
    pub(crate) index: usize,
    pub(crate) shards: usize,
    pub(crate) config: Arc<Config>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) stop: StopHandle,
    pub(crate) bell: Arc<Doorbell>,
    pub(crate) handoff: Handoff,
    pub(crate) installers: Vec<Arc<dyn ServiceInstaller>>,
    pub(crate) listeners: Vec<Vec<Bound>>,
    pub(crate) ready: mpsc::Sender<Result<usize, String>>,
    /// Hooks run on the shard once it is listening (see `ServerBuilder::on_shard`).
    pub(crate) on_shard: Vec<Arc<OnShard>>,
}

/// Who serves a UNIX connection handed to this shard, and the listener's address.
pub(crate) type UnixRoute = (Rc<dyn Acceptor>, Address);

/// A shutdown step given the deadline by which it should be done.
pub(crate) type QuiesceHook = Box<dyn FnOnce(Instant) -> Pin<Box<dyn Future<Output = ()>>>>;

/// A shard's state, shared through an `Rc` by its loop, its tasks and its timers.
pub(crate) struct Shard {
    // Declared first so that it is dropped first: its drop cancels and reaps every
    // request in flight before the descriptors and buffers below are released.
    pub(crate) ring: RefCell<Ring>,
    pub(crate) index: usize,
    pub(crate) shards: usize,
    pub(crate) config: Arc<Config>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) reactor: Reactor,
    pub(crate) clock: Clock,
    pub(crate) bell: Arc<Doorbell>,
    pub(crate) tasks: Tasks,
    pub(crate) stop: StopHandle,
    pub(crate) conns: RefCell<Slab<Entry>>,
    /// Connections to look at before the turn ends.
    pub(crate) service: Rc<ServiceList>,
    /// The list being serviced (swapped with `service`, so neither reallocates).
    servicing: RefCell<Vec<usize>>,
    /// Connections of the current service pass after the one being serviced.
    pub(crate) pass_left: Cell<usize>,
    /// Connections whose `connection_lost` has not run yet.
    pub(crate) live: Cell<usize>,
    /// Output held by all connections (for the shard's budget).
    pub(crate) buffered_total: Cell<usize>,
    /// Woken when `live` reaches zero or the last slot is released (shutdown waits).
    pub(crate) drained: Cell<Option<Waker>>,
    /// Connections whose receive ended for want of buffers: re-armed (serviced)
    /// once the pool has buffers again.
    pub(crate) starved: RefCell<Vec<usize>>,
    /// The pool ran dry at least once (logged once per shard).
    pub(crate) starved_logged: Cell<bool>,
    /// Log budgets for lines a flood of peers could multiply.
    pub(crate) refusals_log: LogLimit,
    pub(crate) aborts_log: LogLimit,
    pub(crate) listeners: RefCell<Vec<Listener>>,
    /// Datagram ports (`datagram.rs`), indexed as their ops and buffer pools.
    pub(crate) datagrams: RefCell<Vec<Port>>,
    pub(crate) waiters: RefCell<Slab<Waiter>>,
    pub(crate) mailboxes: RefCell<Vec<Rc<dyn Mailbox>>>,
    pub(crate) handoff: Handoff,
    /// UNIX listeners by route: who serves a handed-off connection, and its host.
    pub(crate) unix_routes: RefCell<HashMap<usize, UnixRoute>>,
    pub(crate) next_unix_shard: Cell<usize>,
    pub(crate) stopping: Cell<bool>,
    pub(crate) finished: Cell<bool>,
    pub(crate) stop_factories: RefCell<Vec<Box<dyn FnOnce()>>>,
    pub(crate) quiesce_hooks: RefCell<Vec<QuiesceHook>>,
}

thread_local! {
    /// The shard running on this thread: the one current shard, for code that must
    /// reach it from inside user code (client connections, the mesh, spawning).
    static CURRENT: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

/// Returns the shard whose loop runs on this thread, if any.
pub(crate) fn current() -> Option<Rc<Shard>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs a shard until it is stopped: the body of its thread.
pub(crate) fn run(mut init: ShardInit) -> Result<ShardSummary, String> {
    let listeners = std::mem::take(&mut init.listeners);
    let ring = match Ring::new(init.config.receive_buffers) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("shard {}: {e}", init.index);
            let _ = init.ready.send(Err(msg.clone()));
            return Err(msg);
        }
    };
    let shard = Shard::new(&init, ring);
    CURRENT.with(|c| *c.borrow_mut() = Some(Rc::clone(&shard)));
    shard.tasks.enter();
    shard.ring.borrow_mut().arm_doorbell(shard.bell.fd());
    let started = shard.start(&init, listeners);
    let _ = init.ready.send(started.clone().map(|()| shard.index));
    if started.is_ok() {
        tracing::debug!(shard = shard.index, "listening");
        shard.run_loop();
    } else {
        // Unwind what was started: stop accepting and let the loop close it all.
        shard.stop.stop();
        shard.run_loop();
    }
    let summary = ShardSummary {
        shard: shard.index,
        accepted: shard.stats.accepted(),
        bytes_in: shard.stats.bytes_in(),
        bytes_out: shard.stats.bytes_out(),
        datagrams_in: shard.stats.datagrams_in(),
    };
    let r = shard.ring.borrow().counters;
    tracing::debug!(
        shard = shard.index,
        turns = shard.stats.turns(),
        parks = shard.stats.parks(),
        wakeups = shard.bell.wakeups(),
        enters = r.enters,
        "shard ended"
    );
    shard.tasks.exit();
    shard.mailboxes.borrow_mut().clear();
    CURRENT.with(|c| c.borrow_mut().take());
    drop(shard);
    started.map(|()| summary)
}

impl Shard {
    fn new(init: &ShardInit, ring: Ring) -> Rc<Shard> {
        let clock = Clock::real();
        Rc::new_cyclic(|weak: &std::rc::Weak<Shard>| {
            let w = weak.clone();
            let reactor = Reactor::new(
                clock.clone(),
                Rc::new(move |f| {
                    if let Some(s) = w.upgrade() {
                        s.tasks.spawn(f);
                    }
                }),
                init.index,
            );
            Shard {
                ring: RefCell::new(ring),
                index: init.index,
                shards: init.shards,
                config: Arc::clone(&init.config),
                stats: Arc::clone(&init.stats),
                reactor,
                clock,
                bell: Arc::clone(&init.bell),
                tasks: Tasks::new(Arc::clone(&init.bell)),
                stop: init.stop.clone(),
                conns: RefCell::new(Slab::new()),
                service: Rc::new(RefCell::new(Vec::with_capacity(64))),
                servicing: RefCell::new(Vec::with_capacity(64)),
                pass_left: Cell::new(0),
                live: Cell::new(0),
                buffered_total: Cell::new(0),
                drained: Cell::new(None),
                starved: RefCell::new(Vec::new()),
                starved_logged: Cell::new(false),
                refusals_log: LogLimit::new(),
                aborts_log: LogLimit::new(),
                listeners: RefCell::new(Vec::new()),
                datagrams: RefCell::new(Vec::new()),
                waiters: RefCell::new(Slab::new()),
                mailboxes: RefCell::new(Vec::new()),
                handoff: init.handoff.clone(),
                unix_routes: RefCell::new(HashMap::new()),
                next_unix_shard: Cell::new(0),
                stopping: Cell::new(false),
                finished: Cell::new(false),
                stop_factories: RefCell::new(Vec::new()),
                quiesce_hooks: RefCell::new(Vec::new()),
            }
        })
    }

    /// Installs the services and runs the `on_shard` hooks.
    fn start(self: &Rc<Self>, init: &ShardInit, listeners: Vec<Vec<Bound>>) -> Result<(), String> {
        for (installer, bound) in init.installers.iter().zip(listeners) {
            installer.install(self, bound)?;
        }
        for hook in &init.on_shard {
            if let Err(msg) = guarded(|| hook(&self.reactor, &init.stop)) {
                return Err(format!(
                    "an on_shard hook panicked on shard {}: {msg}",
                    self.index
                ));
            }
        }
        Ok(())
    }

    /// Counts a caught panic and logs it.
    pub(crate) fn report_panic(&self, what: &str, msg: &str) {
        ShardStats::add(&self.stats.panics, 1);
        tracing::error!(
            shard = self.index,
            "{what} panicked: {msg}; the shard goes on"
        );
    }

    fn run_loop(self: &Rc<Self>) {
        loop {
            let turn_start = Instant::now();
            self.reap();
            self.run_timers();
            self.run_tasks();
            self.run_mail();
            self.take_handoffs();
            if !self.stopping.get() && self.stop.is_stopping() {
                self.begin_shutdown();
            }
            self.service_all();
            self.flush_datagrams();
            self.enforce_budget();
            self.publish(turn_start);
            if self.finished.get() {
                break;
            }
            self.submit_or_sleep();
        }
    }

    /// Dispatches every completion ready on the ring.
    fn reap(self: &Rc<Self>) {
        loop {
            let c = self.ring.borrow_mut().next();
            let Some(c) = c else { break };
            match c.op {
                Some(Op::Recv(id)) => self.on_recv(id, c),
                Some(Op::Send(id)) => self.on_send(id, c.result),
                Some(Op::Cancel(id)) => self.on_cancel(id),
                Some(Op::Accept(i)) => self.on_accept(i, c),
                Some(Op::Doorbell) => self.ring.borrow_mut().arm_doorbell(self.bell.fd()),
                Some(Op::Poll(id)) => self.on_poll(id, c.result),
                Some(Op::DgramRecv(i)) => self.on_datagram(i, c),
                Some(Op::DgramSend(i)) => self.on_datagram_sent(i, c.result),
                Some(
                    Op::PollCancel(_) | Op::AcceptCancel(_) | Op::CancelAll | Op::DgramCancel(_),
                ) => {}
                None => tracing::error!(shard = self.index, "a completion of unknown origin"),
            }
        }
    }

    fn run_timers(&self) {
        let mut panics = Vec::new();
        let ran = self.clock.run_due_guarded(&mut |msg| panics.push(msg));
        if ran > 0 {
            ShardStats::add(&self.stats.timers_fired, ran as u64);
        }
        for msg in panics {
            self.report_panic("a call_later closure", &msg);
        }
    }

    fn run_tasks(&self) {
        let mut panics = Vec::new();
        let ran = self.tasks.run(TASK_BUDGET, &mut |msg| panics.push(msg));
        if ran > 0 {
            ShardStats::add(&self.stats.tasks_polled, ran as u64);
        }
        for msg in panics {
            self.report_panic("a spawned task", &msg);
        }
    }

    fn run_mail(&self) {
        let n = self.mailboxes.borrow().len();
        let mut finished = false;
        for i in 0..n {
            // A handler may join another mailbox (push): index, don't iterate.
            let mb = Rc::clone(&self.mailboxes.borrow()[i]);
            if mb.has_work() {
                mb.run(MESH_BATCH);
            }
            finished |= mb.finished();
        }
        if finished {
            self.mailboxes.borrow_mut().retain(|m| !m.finished());
        }
    }

    fn take_handoffs(self: &Rc<Self>) {
        while let Some((route, fd)) = self.handoff.try_receive(self.index) {
            let target = self.unix_routes.borrow().get(&route).cloned();
            match target {
                Some((acceptor, host)) if !self.stopping.get() => {
                    acceptor.accept(self, fd, Address::Unix(None), host)
                }
                _ => drop(fd), // stopping, or no such listener: closed, never leaked
            }
        }
    }

    /// Services every connection on the service list (and those its callbacks add).
    fn service_all(self: &Rc<Self>) {
        // Bounded: a connection whose callbacks keep waking others cannot hold the
        // shard here forever; what is left is serviced next turn.
        for _ in 0..8 {
            if !self.starved.borrow().is_empty() && self.ring.borrow().buffers_free() {
                let ids = std::mem::take(&mut *self.starved.borrow_mut());
                self.service.borrow_mut().extend(ids);
            }
            let mut ids = self.servicing.take();
            std::mem::swap(&mut ids, &mut *self.service.borrow_mut());
            if ids.is_empty() {
                *self.servicing.borrow_mut() = ids;
                return;
            }
            for (i, &id) in ids.iter().enumerate() {
                self.pass_left.set(ids.len() - 1 - i);
                self.service_conn(id);
            }
            ids.clear();
            *self.servicing.borrow_mut() = ids;
        }
    }

    fn publish(&self, turn_start: Instant) {
        let s = &self.stats;
        ShardStats::add(&s.turns, 1);
        let took = turn_start.elapsed().as_nanos() as u64;
        s.turn_took(took);
        if took > s.longest_turn_ns() {
            ShardStats::set(&s.longest_turn_ns, took);
        }
        let r = self.ring.borrow().counters;
        ShardStats::set(&s.ring_submitted, r.submitted);
        ShardStats::set(&s.ring_completed, r.completed);
        ShardStats::set(&s.ring_enters, r.enters);
        ShardStats::set(&s.ring_no_buffers, r.no_buffers);
        ShardStats::set(&s.output_buffered, self.buffered_total.get() as u64);
        ShardStats::set(&s.wakeups, self.bell.wakeups());
    }

    /// Work this thread can see without a fence: go round again, don't sleep.
    fn local_work(&self) -> bool {
        self.tasks.has_work()
            || !self.service.borrow().is_empty()
            || self.ring.borrow_mut().has_completions()
    }

    /// Work other threads may have posted (checked after announcing sleep).
    fn remote_work(&self) -> bool {
        self.tasks.has_work()
            || self.handoff.pending(self.index)
            || (!self.stopping.get() && self.stop.is_stopping())
            || self.mailboxes.borrow().iter().any(|m| m.has_work())
    }

    fn submit_or_sleep(&self) {
        if self.local_work() {
            self.ring.borrow_mut().submit();
            return;
        }
        let timeout = self
            .clock
            .next_deadline()
            .map(|at| at.saturating_sub(self.clock.now()));
        if timeout == Some(Duration::ZERO) {
            self.ring.borrow_mut().submit();
            return;
        }
        self.bell.prepare_to_sleep();
        if self.remote_work() {
            self.bell.awake();
            self.ring.borrow_mut().submit();
            return;
        }
        ShardStats::add(&self.stats.parks, 1);
        self.ring.borrow_mut().submit_and_wait(timeout);
        self.bell.awake();
    }

    /// Wakes the shutdown sequence if it waits for connections to end.
    pub(crate) fn wake_drained(&self) {
        if let Some(w) = self.drained.take() {
            w.wake();
        }
    }

    /// Registers work to run at shutdown, before connections are closed.
    pub(crate) fn on_quiesce(&self, hook: QuiesceHook) {
        self.quiesce_hooks.borrow_mut().push(hook);
    }

    /// Tells whether the shard is shutting down (new client connections are refused).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.get()
    }
}

/// Runs `f`, turning a panic into its message.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p))
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
