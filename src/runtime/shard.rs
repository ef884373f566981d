//! One shard: its reactor, factories, accept loops, connection registry, shutdown.
//!
//! Everything here lives on one executor thread; the only things that cross threads
//! are the stop flag (with a waker per shard), the published counters, and the UNIX
//! hand-off channel.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::task::{Poll, Waker};
use std::time::Instant;

use glommio::net::UnixStream;

use crate::address::Address;
use crate::clock::Clock;
use crate::factory::Factory;
use crate::reactor::Reactor;
use crate::runtime::listener::{self, AcceptFailure, Backoff, Bound, Handoff};
use crate::runtime::{
    connection, timer, Config, OnShard, ServiceInstaller, ShardStats, ShardSummary, StopHandle,
    READ_BUFFER_SIZE,
};
use crate::transport::ConnShared;

/// What a shard thread is started with.
pub(crate) struct ShardInit {
    pub(crate) index: usize,
    pub(crate) shards: usize,
    pub(crate) config: Arc<Config>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) stop: StopHandle,
    pub(crate) handoff: Handoff,
    pub(crate) installers: Vec<Arc<dyn ServiceInstaller>>,
    pub(crate) listeners: Vec<Vec<Bound>>,
    pub(crate) ready: mpsc::Sender<Result<usize, String>>,
    /// Hooks run on the shard once it is listening (see `ServerBuilder::on_shard`).
    pub(crate) on_shard: Vec<Arc<OnShard>>,
}

type UnixRoute = Rc<dyn Fn(UnixStream)>;

/// A shard's state, shared by its tasks through an `Rc`.
pub(crate) struct Shard {
    pub(crate) index: usize,
    shards: usize,
    pub(crate) config: Arc<Config>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) reactor: Reactor,
    /// The read buffer every connection of this shard reads into, one at a time:
    /// an idle connection holds no read buffer of its own.
    pub(crate) scratch: RefCell<Vec<u8>>,
    conns: RefCell<HashMap<u64, Rc<ConnShared>>>,
    next_id: Cell<u64>,
    drained: Cell<Option<Waker>>,
    stopping: Cell<bool>,
    accept_tasks: RefCell<Vec<glommio::Task<()>>>,
    stop_factories: RefCell<Vec<Box<dyn FnOnce()>>>,
    unix_routes: RefCell<HashMap<usize, UnixRoute>>,
    /// UNIX socket files this shard bound, removed at shutdown (as Twisted does).
    unix_paths: RefCell<Vec<std::path::PathBuf>>,
    /// This shard's listening TCP sockets, shut down first at shutdown.
    listen_fds: RefCell<Vec<std::os::fd::RawFd>>,
    handoff: Handoff,
    next_unix_shard: Cell<usize>,
    /// Work run at shutdown after accepting stops and before connections are closed
    /// (the mesh's flush barrier: see `runtime::inbox`).
    quiesce_hooks: RefCell<Vec<QuiesceHook>>,
}

/// A shutdown step given the deadline by which it should be done.
pub(crate) type QuiesceHook = Box<dyn FnOnce(Instant) -> Pin<Box<dyn Future<Output = ()>>>>;

thread_local! {
    /// The shard running on this thread, for code that must attach itself to it from
    /// inside a factory-building closure (the mesh inbox).
    static CURRENT: RefCell<std::rc::Weak<Shard>> = const { RefCell::new(std::rc::Weak::new()) };
}

/// Returns the shard whose executor runs on this thread, if any.
pub(crate) fn current() -> Option<Rc<Shard>> {
    CURRENT.with(|c| c.borrow().upgrade())
}

/// Runs a shard until it is stopped; the root future of its executor.
pub(crate) async fn run(init: ShardInit) -> Result<ShardSummary, String> {
    let clock = Clock::real();
    let shard = Shard::new(
        init.index,
        init.shards,
        init.config,
        init.stats,
        clock.clone(),
        init.handoff,
    );
    CURRENT.with(|c| *c.borrow_mut() = Rc::downgrade(&shard));
    let timer_task = glommio::spawn_local(timer::drive(clock));
    let handoff_task = {
        let s = Rc::clone(&shard);
        let serve: Rc<dyn Fn(usize, UnixStream)> = Rc::new(move |route, stream| {
            let handler = s.unix_routes.borrow().get(&route).cloned();
            if let Some(h) = handler {
                h(stream);
            }
        });
        let h = shard.handoff.clone();
        let index = shard.index;
        glommio::spawn_local(async move { h.receive(index, serve).await })
    };
    for (installer, listeners) in init.installers.iter().zip(init.listeners) {
        if let Err(e) = installer.install(&shard, listeners) {
            let _ = init.ready.send(Err(e.clone()));
            return Err(e);
        }
    }
    // Client connections made on this thread find their shard here.
    crate::runtime::client::enter(&shard);
    for hook in &init.on_shard {
        if let Err(msg) = guarded(|| hook(&shard.reactor, &init.stop)) {
            let e = format!("an on_shard hook panicked on shard {}: {msg}", shard.index);
            let _ = init.ready.send(Err(e.clone()));
            return Err(e);
        }
    }
    let _ = init.ready.send(Ok(shard.index));
    tracing::debug!(shard = shard.index, "listening");

    let stop = init.stop;
    poll_fn(|cx| {
        if stop.is_stopping() {
            return Poll::Ready(());
        }
        stop.register(shard.index, cx.waker());
        if stop.is_stopping() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    shard.shutdown().await;
    crate::runtime::uring::shutdown().await; // native data path hook: after the connections
    handoff_task.cancel().await;
    timer_task.cancel().await;
    Ok(ShardSummary {
        shard: shard.index,
        accepted: shard.stats.accepted(),
        bytes_in: shard.stats.bytes_in(),
        bytes_out: shard.stats.bytes_out(),
    })
}

impl Shard {
    pub(crate) fn new(
        index: usize,
        shards: usize,
        config: Arc<Config>,
        stats: Arc<ShardStats>,
        clock: Clock,
        handoff: Handoff,
    ) -> Rc<Shard> {
        let reactor = Reactor::new(
            clock,
            Rc::new(|f| {
                glommio::spawn_local(f).detach();
            }),
            index,
        );
        Rc::new(Shard {
            index,
            shards,
            config,
            stats,
            reactor,
            scratch: RefCell::new(vec![0; READ_BUFFER_SIZE]),
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            drained: Cell::new(None),
            stopping: Cell::new(false),
            accept_tasks: RefCell::new(Vec::new()),
            stop_factories: RefCell::new(Vec::new()),
            unix_routes: RefCell::new(HashMap::new()),
            unix_paths: RefCell::new(Vec::new()),
            listen_fds: RefCell::new(Vec::new()),
            handoff,
            next_unix_shard: Cell::new(0),
            quiesce_hooks: RefCell::new(Vec::new()),
        })
    }

    /// Installs one service on this shard: starts its factory and its accept loops.
    pub(crate) fn serve<F: Factory>(
        shard: &Rc<Shard>,
        factory: F,
        listeners: Vec<Bound>,
    ) -> Result<(), String> {
        let factory = Rc::new(RefCell::new(factory));
        if let Err(msg) = guarded(|| factory.borrow_mut().start_factory()) {
            return Err(format!(
                "start_factory panicked on shard {}: {msg}",
                shard.index
            ));
        }
        let f = Rc::clone(&factory);
        shard.stop_factories.borrow_mut().push(Box::new(move || {
            if let Err(msg) = guarded(|| f.borrow_mut().stop_factory()) {
                tracing::error!("stop_factory panicked: {msg}");
            }
        }));
        for bound in listeners {
            match bound {
                Bound::Tcp(sock) => {
                    shard.listen_fds.borrow_mut().push(sock.as_raw_fd());
                    let l = listener::tcp_listener(sock);
                    let (s, f) = (Rc::clone(shard), Rc::clone(&factory));
                    let task = glommio::spawn_local(async move { s.accept_tcp(l, f).await });
                    shard.accept_tasks.borrow_mut().push(task);
                }
                Bound::Unix { path, mode, route } => {
                    let (s, f) = (Rc::downgrade(shard), Rc::clone(&factory));
                    let host = Address::Unix(Some(path.clone()));
                    let handler: UnixRoute = Rc::new(move |stream: UnixStream| {
                        if let Some(s) = s.upgrade() {
                            let peer = Address::Unix(None);
                            s.start_connection(&f, stream, peer, host.clone());
                        }
                    });
                    shard
                        .unix_routes
                        .borrow_mut()
                        .insert(route, Rc::clone(&handler));
                    if shard.index == 0 {
                        let l = listener::unix_listener(&path, mode).map_err(|e| {
                            format!("cannot listen on unix:{}: {e}", path.display())
                        })?;
                        shard.unix_paths.borrow_mut().push(path.clone());
                        let s = Rc::clone(shard);
                        let task =
                            glommio::spawn_local(
                                async move { s.accept_unix(l, route, handler).await },
                            );
                        shard.accept_tasks.borrow_mut().push(task);
                    }
                }
            }
        }
        Ok(())
    }

    async fn accept_tcp<F: Factory>(
        self: Rc<Self>,
        l: glommio::net::TcpListener,
        factory: Rc<RefCell<F>>,
    ) {
        let host = l
            .local_addr()
            .map(Address::Tcp)
            .unwrap_or(Address::Unix(None));
        let mut backoff = Backoff::new();
        loop {
            match l.accept().await {
                Ok(stream) => {
                    backoff.reset();
                    if self.config.nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    let peer = match stream.peer_addr() {
                        Ok(a) => Address::Tcp(a),
                        Err(_) => continue, // already gone
                    };
                    // Native data path hook (runtime/uring): same protocol, other Socket.
                    let stream = if self.config.native_io {
                        match crate::runtime::uring::adopt(stream) {
                            Ok(native) => {
                                self.start_connection(&factory, native, peer, host.clone());
                                continue;
                            }
                            Err(stream) => stream,
                        }
                    } else {
                        stream
                    };
                    self.start_connection(&factory, stream, peer, host.clone());
                }
                Err(e) => self.accept_failed(e.into(), &mut backoff).await,
            }
        }
    }

    async fn accept_unix(
        self: Rc<Self>,
        l: glommio::net::UnixListener,
        route: usize,
        local: UnixRoute,
    ) {
        let mut backoff = Backoff::new();
        loop {
            match l.shared_accept().await {
                Ok(accepted) => {
                    backoff.reset();
                    let target = self.next_unix_shard.get();
                    self.next_unix_shard.set((target + 1) % self.shards);
                    if target == self.index {
                        local(accepted.bind_to_executor());
                    } else if let Err(back) = self.handoff.send(target, route, accepted) {
                        // That shard's box is full: serve it here rather than drop it.
                        local(back.bind_to_executor());
                    }
                }
                Err(e) => self.accept_failed(e.into(), &mut backoff).await,
            }
        }
    }

    async fn accept_failed(&self, e: std::io::Error, backoff: &mut Backoff) {
        match listener::classify(&e) {
            AcceptFailure::Exhausted => {
                let (pause, first) = backoff.step();
                if first {
                    tracing::warn!(
                        shard = self.index,
                        "could not accept a connection: {e}; backing off (up to {:?} between tries)",
                        Backoff::MAX
                    );
                }
                glommio::timer::sleep(pause).await;
            }
            AcceptFailure::Skip => tracing::debug!(shard = self.index, "accept: {e}"),
            AcceptFailure::Other => {
                tracing::error!(shard = self.index, "accept failed: {e}");
                glommio::timer::sleep(Backoff::FIRST).await;
            }
        }
    }

    /// Builds the protocol for an accepted stream and spawns its connection task.
    fn start_connection<F, S>(
        self: &Rc<Self>,
        factory: &Rc<RefCell<F>>,
        stream: S,
        peer: Address,
        host: Address,
    ) where
        F: Factory,
        S: connection::Socket,
    {
        ShardStats::add(&self.stats.accepted, 1);
        if self.stopping.get() {
            return;
        }
        match guarded(|| factory.borrow_mut().build_protocol(&peer)) {
            Ok(Some(p)) => {
                let s = Rc::clone(self);
                glommio::spawn_local(connection::run(s, stream, p, peer, host)).detach();
            }
            Ok(None) => {
                ShardStats::add(&self.stats.refused, 1);
                tracing::debug!(shard = self.index, %peer, "connection refused by the factory");
            }
            Err(msg) => {
                ShardStats::add(&self.stats.refused, 1);
                tracing::error!(shard = self.index, %peer, "build_protocol panicked: {msg}; connection closed");
            }
        }
    }

    /// Tells whether the shard is shutting down (new client connections are refused).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    pub(crate) fn register(&self, shared: &Rc<ConnShared>) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.conns.borrow_mut().insert(id, Rc::clone(shared));
        ShardStats::add(&self.stats.open, 1);
        if self.stopping.get() {
            shared.begin_shutdown();
        }
        id
    }

    pub(crate) fn unregister(&self, id: u64) {
        let empty = {
            let mut conns = self.conns.borrow_mut();
            conns.remove(&id);
            conns.is_empty()
        };
        ShardStats::sub(&self.stats.open, 1);
        if empty {
            if let Some(w) = self.drained.take() {
                w.wake();
            }
        }
    }

    async fn wait_drained(&self, deadline: Option<Instant>) -> bool {
        let mut timer = deadline
            .map(|d| glommio::timer::Timer::new(d.saturating_duration_since(Instant::now())));
        poll_fn(|cx| {
            if self.conns.borrow().is_empty() {
                return Poll::Ready(true);
            }
            self.drained.set(Some(cx.waker().clone()));
            if let Some(t) = timer.as_mut() {
                if Pin::new(t).poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Graceful shutdown: stop accepting, lose every connection, wait for them to
    /// drain up to the deadline, abort the rest, then stop the factories.
    async fn shutdown(&self) {
        self.stopping.set(true);
        // Stop listening now, deterministically: an io_uring accept still in flight
        // holds a reference to its socket, so closing the descriptor alone would
        // leave the port (and its SO_REUSEPORT share of new connections) alive until
        // the ring lets go. shutdown(2) takes a TCP socket out of LISTEN at once; a
        // UNIX socket file is unlinked so that no one can reach it.
        for fd in self.listen_fds.borrow_mut().drain(..) {
            // SAFETY: `fd` is a listening socket owned by an accept task that is
            // still alive (it is cancelled below); shutdown(2) does not release it.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        for path in self.unix_paths.borrow_mut().drain(..) {
            let _ = std::fs::remove_file(path);
        }
        let accepts: Vec<_> = self.accept_tasks.borrow_mut().drain(..).collect();
        for task in accepts {
            task.cancel().await;
        }
        self.quiesce().await;
        let conns: Vec<Rc<ConnShared>> = self.conns.borrow().values().cloned().collect();
        tracing::debug!(shard = self.index, open = conns.len(), "shutting down");
        for c in &conns {
            c.begin_shutdown();
        }
        drop(conns);
        let deadline = Instant::now() + self.config.drain_timeout;
        if !self.wait_drained(Some(deadline)).await {
            let left: Vec<Rc<ConnShared>> = self.conns.borrow().values().cloned().collect();
            tracing::warn!(
                shard = self.index,
                "{} connections did not drain within {:?}; aborting them",
                left.len(),
                self.config.drain_timeout
            );
            for c in &left {
                c.force_shutdown();
            }
            drop(left);
            self.wait_drained(None).await;
        }
        for stop in self.stop_factories.borrow_mut().drain(..) {
            stop();
        }
    }
}

// Shutdown hooks (used by the mesh inbox, runtime/inbox.rs).
impl Shard {
    /// Registers work to run at shutdown, before connections are closed.
    pub(crate) fn on_quiesce(&self, hook: QuiesceHook) {
        self.quiesce_hooks.borrow_mut().push(hook);
    }

    /// Runs every quiesce hook concurrently, each bounded by the drain timeout.
    async fn quiesce(&self) {
        let hooks: Vec<QuiesceHook> = self.quiesce_hooks.borrow_mut().drain(..).collect();
        if hooks.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.config.drain_timeout;
        let mut futs: Vec<_> = hooks.into_iter().map(|h| Some(h(deadline))).collect();
        poll_fn(|cx| {
            for slot in futs.iter_mut() {
                if let Some(f) = slot {
                    if f.as_mut().poll(cx).is_ready() {
                        *slot = None;
                    }
                }
            }
            if futs.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
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
