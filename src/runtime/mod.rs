//! The engine: the only code that knows glommio and io_uring.
//!
//! ```text
//! ServerBuilder::start()
//!   ├─ binds every listening socket up front (socket2: SO_REUSEPORT, SO_REUSEADDR,
//!   │  backlog), one per shard per TCP endpoint, so a bind error is reported at once
//!   ├─ spawns one glommio executor per shard, pinned to its core
//!   │    shard.rs      factories, accept loops, the connection registry, shutdown
//!   │    listener.rs   sockets, accept with back-off on EMFILE, UNIX hand-off
//!   │    connection.rs one task per connection: recv ─► callbacks ─► one send
//!   │    timer.rs      drives the shard's Clock on glommio timers
//!   └─ waits until every shard reports "listening" (or an error), then returns
//! ```
//!
//! Above this module nothing names glommio: protocols see a [`Transport`] and a
//! [`Reactor`], so the data path can be replaced (for example by a native io_uring
//! ring with multishot receive) without touching a protocol.
//!
//! [`Transport`]: crate::Transport
//! [`Reactor`]: crate::Reactor

pub(crate) mod client;
mod connection;
pub(crate) mod inbox;
mod listener;
mod shard;
mod signal;
mod timer;
mod uring;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::Waker;
use std::thread;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::address::Address;
use crate::endpoints::{EndpointError, ServerEndpoint};
use crate::factory::Factory;
use crate::reactor::Reactor;
use crate::transport::OutputLimits;

pub(crate) use shard::guarded;
pub use signal::block_stop_signals;

/// The default time a graceful shutdown waits for connections to drain.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads one connection may do per turn before yielding to the others.
pub const DEFAULT_READ_BUDGET: usize = 16;
/// The size of each shard's read buffer (Twisted reads at most 65536 bytes per recv).
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

/// Why a server could not start or did not stop cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// An endpoint string did not parse.
    Endpoint(EndpointError),
    /// A listening socket could not be set up.
    Bind {
        /// The endpoint.
        endpoint: String,
        /// The OS error.
        error: io::Error,
    },
    /// A shard's executor could not start (no io_uring, or too low a memlock limit).
    Runtime(String),
    /// The builder was given no endpoint.
    NoEndpoints,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Endpoint(e) => write!(f, "bad endpoint: {e}"),
            ServerError::Bind { endpoint, error } => {
                write!(f, "cannot listen on {endpoint}: {error}")
            }
            ServerError::Runtime(msg) => f.write_str(msg),
            ServerError::NoEndpoints => f.write_str("no endpoint to listen on"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<EndpointError> for ServerError {
    fn from(e: EndpointError) -> Self {
        ServerError::Endpoint(e)
    }
}

/// Engine settings shared by every shard.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) limits: OutputLimits,
    pub(crate) drain_timeout: Duration,
    pub(crate) read_budget: usize,
    pub(crate) nodelay: bool,
    /// Serve TCP connections on the shard's native io_uring ring (`uring/`).
    pub(crate) native_io: bool,
}

/// Counters one shard publishes for other threads to read.
///
/// Each counter has a single writer (its shard) that updates it with a plain load
/// and store, so the hot path pays no atomic read-modify-write; readers see values
/// at most one batch old.
#[derive(Debug, Default)]
pub struct ShardStats {
    accepted: AtomicU64,
    refused: AtomicU64,
    open: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl ShardStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed) - n, Ordering::Relaxed);
    }

    /// Returns the connections this shard accepted (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Returns the connections the factory refused (`build_protocol` gave `None`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Returns the connections open on this shard now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Returns the bytes read from peers.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Returns the bytes sent to peers.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
}

/// A shard's totals at the end of its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSummary {
    /// The shard's index.
    pub shard: usize,
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes read from peers.
    pub bytes_in: u64,
    /// Bytes sent to peers.
    pub bytes_out: u64,
}

impl fmt::Display for ShardSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shard {}: {} connections accepted, {} bytes in, {} bytes out",
            self.shard, self.accepted, self.bytes_in, self.bytes_out
        )
    }
}

struct StopInner {
    stopping: AtomicBool,
    wakers: Mutex<Vec<Option<Waker>>>,
}

/// Stops a server gracefully; usable from any thread, clonable.
#[derive(Clone)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

impl StopHandle {
    fn new(shards: usize) -> StopHandle {
        StopHandle {
            inner: Arc::new(StopInner {
                stopping: AtomicBool::new(false),
                wakers: Mutex::new(vec![None; shards]),
            }),
        }
    }

    /// Starts a graceful shutdown: every shard stops accepting, calls
    /// `lose_connection` on its connections, waits for them to drain (up to the
    /// drain timeout, then aborts the rest), runs `stop_factory` and ends.
    /// Idempotent.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let wakers = self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
        for w in wakers.iter().flatten() {
            w.wake_by_ref();
        }
    }

    /// Tells whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn register(&self, shard: usize, w: &Waker) {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
        wakers[shard] = Some(w.clone());
    }
}

/// Type-erased per-shard installer of one service (a factory and its endpoints).
pub(crate) trait ServiceInstaller: Send + Sync {
    fn install(
        &self,
        shard: &std::rc::Rc<shard::Shard>,
        listeners: Vec<listener::Bound>,
    ) -> Result<(), String>;
}

pub(crate) struct TypedService<B> {
    pub(crate) build: B,
}

impl<F, B> ServiceInstaller for TypedService<B>
where
    F: Factory,
    B: Fn(usize) -> F + Send + Sync + 'static,
{
    fn install(
        &self,
        shard: &std::rc::Rc<shard::Shard>,
        listeners: Vec<listener::Bound>,
    ) -> Result<(), String> {
        let factory = shard::guarded(|| (self.build)(shard.index)).map_err(|msg| {
            format!(
                "the factory closure panicked on shard {}: {msg}",
                shard.index
            )
        })?;
        shard::Shard::serve(shard, factory, listeners)
    }
}

/// A hook run once on every shard after it started (see [`ServerBuilder::on_shard`]).
pub(crate) type OnShard = dyn Fn(&Reactor, &StopHandle) + Send + Sync;

struct Service {
    endpoints: Vec<ServerEndpoint>,
    installer: Arc<dyn ServiceInstaller>,
}

/// Configures and starts a server: Twisted's `listenTCP`/`serverFromString` plus
/// `reactor.run`, over one reactor per core.
pub struct ServerBuilder {
    cores: Option<usize>,
    pin: bool,
    services: Vec<Service>,
    on_shard: Vec<Arc<OnShard>>,
    error: Option<ServerError>,
    config: Config,
    handle_signals: bool,
}

/// A weft server: see [`Server::builder`].
pub struct Server;

/// The data path a builder starts with: the native ring, unless the environment
/// variable `WEFT_IO` says `glommio` (so a deployment, or a test run, can switch every
/// server of a program without touching its code). `ServerBuilder::native_io`
/// overrides it.
fn default_native_io() -> bool {
    match std::env::var("WEFT_IO") {
        Ok(v) if v.eq_ignore_ascii_case("glommio") => false,
        Ok(v) if v.is_empty() || v.eq_ignore_ascii_case("native") => true,
        Ok(v) => {
            tracing::warn!("WEFT_IO={v:?} is neither `native` nor `glommio`; using native");
            true
        }
        Err(_) => true,
    }
}

impl Server {
    /// Returns a builder with the defaults: one shard per available core, pinned.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            cores: None,
            pin: true,
            services: Vec::new(),
            on_shard: Vec::new(),
            error: None,
            config: Config {
                limits: OutputLimits::default(),
                drain_timeout: DEFAULT_DRAIN_TIMEOUT,
                read_budget: DEFAULT_READ_BUDGET,
                nodelay: true,
                native_io: default_native_io(),
            },
            handle_signals: false,
        }
    }
}

impl ServerBuilder {
    /// Sets the number of shards (default: every core this process may run on).
    pub fn cores(mut self, n: usize) -> Self {
        self.cores = Some(n.max(1));
        self
    }

    /// Returns the number of shards `start` will run: the `cores` setting, or every
    /// core this process may run on. Size a [`Mesh`](crate::mesh::Mesh) with it.
    pub fn shard_count(&self) -> usize {
        self.cores.unwrap_or_else(|| available_cpus().len())
    }

    /// Pins each shard to its own core (default true).
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// Serves the factory built by `build` (called once per shard with the shard
    /// index) on the endpoint `desc` (Twisted's `serverFromString` syntax).
    pub fn listen<F, B>(self, desc: &str, build: B) -> Self
    where
        F: Factory,
        B: Fn(usize) -> F + Send + Sync + 'static,
    {
        self.listen_all(&[desc], build)
    }

    /// Serves one factory per shard on several endpoints at once (the factory is
    /// shared by the endpoints, as one Twisted factory listening on several ports).
    pub fn listen_all<F, B, S>(mut self, descs: &[S], build: B) -> Self
    where
        F: Factory,
        B: Fn(usize) -> F + Send + Sync + 'static,
        S: AsRef<str>,
    {
        let mut endpoints = Vec::new();
        // `ssl:` endpoints (weft::tls): each gets its own service whose factory
        // wraps this one in a TlsServerFactory.
        let build = Arc::new(build);
        let mut ssl = 0;
        for d in descs {
            if crate::tls::is_ssl(d.as_ref()) {
                ssl += 1;
                match crate::tls::ssl_service(d.as_ref(), Arc::clone(&build)) {
                    Ok((endpoint, installer)) => self.services.push(Service {
                        endpoints: vec![endpoint],
                        installer,
                    }),
                    Err(e) => {
                        self.error.get_or_insert(e);
                        return self;
                    }
                }
                continue;
            }
            match d.as_ref().parse::<ServerEndpoint>() {
                Ok(e) => endpoints.push(e),
                Err(e) => {
                    self.error.get_or_insert(ServerError::Endpoint(e));
                    return self;
                }
            }
        }
        if !endpoints.is_empty() || ssl == 0 {
            self.services.push(Service {
                endpoints,
                installer: Arc::new(TypedService {
                    build: move |shard| build(shard),
                }),
            });
        }
        self
    }

    /// Runs `hook` once on every shard, on the shard's thread, after its listeners
    /// are up: the place to start client connections or timers (Twisted's
    /// `callWhenRunning`). A builder with hooks may have no endpoint at all, which
    /// is how a program that is only a client runs (see `weft::client::react`).
    pub fn on_shard<H>(mut self, hook: H) -> Self
    where
        H: Fn(&Reactor, &StopHandle) + Send + Sync + 'static,
    {
        self.on_shard.push(Arc::new(hook));
        self
    }

    /// Sets the output buffer size past which protocols are told to pause producing
    /// (default 64 KiB).
    pub fn high_watermark(mut self, bytes: usize) -> Self {
        self.config.limits.high_watermark = bytes;
        self
    }

    /// Sets the hard cap on one connection's buffered output (default 16 MiB); past
    /// it the connection is aborted with a logged reason.
    pub fn max_output_buffer(mut self, bytes: usize) -> Self {
        self.config.limits.max_buffer = bytes;
        self
    }

    /// Sets how long a graceful shutdown waits for connections to drain (default 5 s).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.config.drain_timeout = d;
        self
    }

    /// Sets TCP_NODELAY on accepted connections (default true: weft already
    /// coalesces each batch of writes into one send, which is Nagle's job).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.config.nodelay = on;
        self
    }

    /// Serves accepted TCP connections on a weft-owned io_uring ring per shard
    /// (multishot receive into provided buffers, sends batched into one
    /// `io_uring_enter` per turn) instead of glommio's streams. Protocols do not
    /// notice. Falls back to glommio's streams if the ring cannot be set up.
    pub fn native_io(mut self, on: bool) -> Self {
        self.config.native_io = on;
        self
    }

    /// Makes SIGINT and SIGTERM stop the server gracefully (off by default for
    /// embedding; the `weft` binary turns it on).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Binds every endpoint, starts one executor per shard and returns once every
    /// shard is listening.
    ///
    /// # Errors
    /// [`ServerError`] if an endpoint is malformed, a socket cannot be bound, or an
    /// executor cannot start (io_uring unavailable or memlock limit too low).
    pub fn start(self) -> Result<ServerHandle, ServerError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.services.is_empty() && self.on_shard.is_empty() {
            return Err(ServerError::NoEndpoints);
        }
        check_io_uring()?;
        let cpus = available_cpus();
        let shards = self.cores.unwrap_or(cpus.len());

        // Bind everything before any thread starts: errors surface here, at once.
        let mut per_shard: Vec<Vec<Vec<listener::Bound>>> = (0..shards)
            .map(|_| Vec::with_capacity(self.services.len()))
            .collect();
        let mut addresses = Vec::new();
        for service in &self.services {
            let mut bound: Vec<Vec<listener::Bound>> = (0..shards).map(|_| Vec::new()).collect();
            for ep in &service.endpoints {
                let (sockets, addr) = listener::bind(ep, shards)?;
                addresses.push(addr);
                for (i, s) in sockets.into_iter().enumerate() {
                    bound[i].push(s);
                }
            }
            for (i, b) in bound.into_iter().enumerate() {
                per_shard[i].push(b);
            }
        }

        if self.handle_signals {
            block_stop_signals();
        }
        let stop = StopHandle::new(shards);
        let stats: Vec<Arc<ShardStats>> = (0..shards).map(|_| Arc::default()).collect();
        let handoff = listener::Handoff::new(shards);
        let config = Arc::new(self.config);
        let installers: Vec<Arc<dyn ServiceInstaller>> = self
            .services
            .iter()
            .map(|s| Arc::clone(&s.installer))
            .collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
        let mut joins = Vec::with_capacity(shards);
        for (index, listeners) in per_shard.into_iter().enumerate() {
            let placement = if self.pin {
                Placement::Fixed(cpus[index % cpus.len()])
            } else {
                Placement::Unbound
            };
            let ctx = shard::ShardInit {
                index,
                shards,
                config: Arc::clone(&config),
                stats: Arc::clone(&stats[index]),
                stop: stop.clone(),
                handoff: handoff.clone(),
                installers: installers.clone(),
                listeners,
                ready: ready_tx.clone(),
                on_shard: self.on_shard.clone(),
            };
            let spawned = LocalExecutorBuilder::new(placement)
                .name(&format!("weft-shard-{index}"))
                .io_memory(64 * 1024)
                .ring_depth(1024)
                // glommio's default. A short timer (design.md suggested a few ms) makes
                // glommio 0.9 hang: when its preemption timer has already fired as a
                // scheduling round starts, `run_task_queues` reports "ran nothing" and
                // the executor parks with runnable tasks, sleeping until some unrelated
                // event. Under CPU contention 2 ms fired often enough to hang 1 ping-pong
                // test in 20; 100 ms showed no hang in 108 stressed runs.
                .preempt_timer(Duration::from_millis(100))
                .spawn(move || shard::run(ctx));
            match spawned {
                Ok(j) => joins.push(j),
                Err(e) => {
                    stop.stop();
                    return Err(ServerError::Runtime(format!(
                        "cannot start shard {index}: {e}"
                    )));
                }
            }
        }
        drop(ready_tx);
        let mut ready = 0;
        while ready < shards {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(_)) => ready += 1,
                Ok(Err(msg)) => {
                    stop.stop();
                    return Err(ServerError::Runtime(msg));
                }
                Err(_) => {
                    stop.stop();
                    let detail = joins
                        .into_iter()
                        .filter_map(|j| j.join().err())
                        .map(|e| e.to_string())
                        .next()
                        .unwrap_or_else(|| "a shard did not report in 30 s".into());
                    return Err(ServerError::Runtime(format!(
                        "a shard failed to start: {detail} (io_uring needs Linux >= 5.8 and a memlock limit of at least 8 MiB: see `ulimit -l`)"
                    )));
                }
            }
        }
        if self.handle_signals {
            signal::spawn_signal_thread(stop.clone());
        }
        Ok(ServerHandle {
            shards,
            addresses,
            stop,
            stats,
            joins,
        })
    }
}

/// The cores this process may run on (at least one).
fn available_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![0])
}

/// Fails with a clear message when this kernel or process cannot use io_uring.
///
/// # Errors
/// [`ServerError::Runtime`] naming the cause (no io_uring, disabled by sysctl,
/// memlock limit).
pub fn check_io_uring() -> Result<(), ServerError> {
    // Probe on a throw-away thread: tearing a ring down queues kernel task work on
    // the thread that made it, which interrupts that thread's blocking socket calls
    // that have a timeout set (EINTR). The caller's thread is left alone.
    thread::spawn(probe_io_uring)
        .join()
        .unwrap_or_else(|_| Err(ServerError::Runtime("the io_uring probe panicked".into())))
}

fn probe_io_uring() -> Result<(), ServerError> {
    // io_uring_params is 120 bytes of plain data; all-zero is its documented initial
    // state for io_uring_setup.
    let mut params: [u8; 120] = [0; 120];
    // SAFETY: io_uring_setup(2) takes an entry count and a pointer to a 120-byte
    // io_uring_params that it reads and writes; `params` lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let hint = match err.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no io_uring (Linux >= 5.8 is required)",
            Some(libc::EPERM) => {
                "io_uring is disabled for this process (sysctl kernel.io_uring_disabled, or a seccomp filter such as a container's)"
            }
            Some(libc::ENOMEM) => "the memlock limit is too low: raise `ulimit -l` (8 MiB or more)",
            _ => "io_uring cannot be set up",
        };
        return Err(ServerError::Runtime(format!("{hint}: {err}")));
    }
    // SAFETY: `fd` is a descriptor io_uring_setup just returned to us and nothing
    // else owns it.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// A running server: its addresses, counters, and the means to stop and join it.
pub struct ServerHandle {
    shards: usize,
    addresses: Vec<Address>,
    stop: StopHandle,
    stats: Vec<Arc<ShardStats>>,
    joins: Vec<glommio::ExecutorJoinHandle<Result<ShardSummary, String>>>,
}

impl ServerHandle {
    /// Returns the number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Returns the bound address of every endpoint, in the order given (port 0 is
    /// replaced by the real port).
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// Returns the first TCP endpoint's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.addresses.iter().find_map(Address::socket_addr)
    }

    /// Returns a handle that stops the server from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Returns each shard's live counters.
    pub fn stats(&self) -> &[Arc<ShardStats>] {
        &self.stats
    }

    /// Starts a graceful shutdown (see [`StopHandle::stop`]).
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Waits until every shard has ended and returns their totals.
    ///
    /// # Errors
    /// [`ServerError::Runtime`] if a shard's thread failed.
    pub fn join(self) -> Result<Vec<ShardSummary>, ServerError> {
        let mut out = Vec::with_capacity(self.joins.len());
        for j in self.joins {
            match j.join() {
                Ok(Ok(summary)) => out.push(summary),
                Ok(Err(msg)) => return Err(ServerError::Runtime(msg)),
                Err(e) => return Err(ServerError::Runtime(format!("shard failed: {e}"))),
            }
        }
        Ok(out)
    }

    /// Stops the server gracefully and waits for it.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn shutdown(self) -> Result<Vec<ShardSummary>, ServerError> {
        self.stop();
        self.join()
    }
}

/// Runs `f` on a fresh thread: used by the signal thread and tests.
pub(crate) fn spawn_named<F: FnOnce() + Send + 'static>(name: &str, f: F) {
    let _ = thread::Builder::new().name(name.into()).spawn(f);
}
