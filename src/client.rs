//! Client connections: Twisted's `ClientFactory`, `ReconnectingClientFactory`,
//! `connectProtocol` and `task.react`, on the shard that makes them.
//!
//! A client connection is an ordinary weft connection: once the socket is
//! connected it runs on the same driver, with the same [`Protocol`] callbacks and
//! [`Transport`] semantics, as an accepted one. It lives on the
//! shard (thread) that started it, like everything else a shard owns, and a
//! graceful shutdown drains it like a server connection.
//!
//! ```text
//!  connect(reactor, endpoint, factory) ─► Connector (state: disconnected │ connecting │ connected)
//!    attempt, on the next turn of the shard:
//!      factory.started_connecting(connector)
//!      resolve the host off the shard thread ─► connect ─┬─ fails / times out / stop_connecting
//!      │                                                   └─► factory.client_connection_failed(connector, err)
//!      factory.build_protocol(server address)
//!      protocol.connection_made … data_received … connection_lost(reason)
//!      factory.client_connection_lost(connector, reason)
//!  A callback may call connector.connect() again: that is how reconnecting works
//!  (ReconnectingClientFactory schedules it on the reactor clock with back-off).
//! ```
//!
//! Without a factory, [`connect_protocol`] is Twisted's `connectProtocol` /
//! `ClientCreator`: a future that resolves to a [`ProtocolHandle`] once the
//! protocol's `connection_made` has run, or to a [`ConnectError`].
//!
//! A program that is only a client runs its main future on a reactor with
//! [`react`] (Twisted's `task.react`); inside a server, start clients from
//! [`ServerBuilder::on_shard`] or from any protocol callback, with the
//! [`Reactor`] the transport gives.
//!
//! # Examples
//! ```no_run
//! use weft::client::{connect_protocol, react};
//! use weft::{Protocol, Transport};
//!
//! struct Hello;
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, t: &mut Transport) {
//!         t.write(b"hello\r\n");
//!     }
//!     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
//!         print!("{}", String::from_utf8_lossy(data));
//!         t.lose_connection();
//!     }
//! }
//!
//! let done = react(|reactor| async move {
//!     let endpoint = "tcp:localhost:8000".parse().expect("endpoint");
//!     let handle = connect_protocol(&reactor, endpoint, Hello).await?;
//!     handle.closed().await;
//!     Ok::<(), weft::client::ConnectError>(())
//! });
//! ```
//!
//! # Twisted
//! * `started_connecting` runs when the attempt starts, on the shard's next turn,
//!   not synchronously inside `connect()`: so `connect()` may be called from any
//!   factory callback, which holds the factory borrowed.
//! * The connect timeout covers name resolution too, as in Twisted's connector,
//!   and is measured on the shard's clock.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use futures_lite::future;

use crate::address::Address;
use crate::endpoints::ClientEndpoint;
use crate::protocol::Protocol;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::runtime::{self, ServerBuilder, ServerError};
use crate::transport::{Transport, TransportHandle};

mod connector;
mod dialer;
mod reconnecting;
mod resolver;
mod wait;

pub use connector::{Connector, ConnectorError, ConnectorState};
pub use reconnecting::{
    Reconnect, ReconnectingClientFactory, SeededNormal, DEFAULT_FACTOR, DEFAULT_INITIAL_DELAY,
    DEFAULT_JITTER, DEFAULT_MAX_DELAY,
};
pub use resolver::Resolver;

use wait::{Oneshot, Signal};

/// Builds the protocol of each client connection and hears how each attempt went:
/// Twisted's `ClientFactory`.
///
/// Call order for one attempt (one [`Connector::connect`]):
///
/// ```text
/// [start_factory] ─► started_connecting ─┬─► client_connection_failed ─► [stop_factory]
///                                         └─► build_protocol ─► (protocol callbacks)
///                                             ─► client_connection_lost ─► [stop_factory]
/// ```
///
/// `start_factory` runs before a connector's first attempt and `stop_factory` after
/// an attempt ends with nothing more scheduled on the connector (no `connect()`
/// from inside the callback), as Twisted's `doStart`/`doStop` do per connector.
pub trait ClientFactory: 'static {
    /// The protocol this factory builds.
    type Protocol: Protocol;

    /// Builds the protocol for a connection to `addr`, the *server's* address.
    /// `None` closes the new connection at once (`client_connection_lost` follows
    /// with a clean reason), as Twisted does.
    fn build_protocol(&mut self, addr: &Address) -> Option<Self::Protocol>;

    /// Called when an attempt starts. `connector.stop_connecting()` may be called
    /// from here.
    fn started_connecting(&mut self, connector: &Connector) {
        let _ = connector;
    }

    /// Called when an attempt failed: refused, timed out, name not found, bind
    /// error, cancelled by `stop_connecting`. Call `connector.connect()` to retry.
    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        let _ = (connector, reason);
    }

    /// Called after the protocol's `connection_lost`, with the same reason. Call
    /// `connector.connect()` to reconnect.
    fn client_connection_lost(&mut self, connector: &Connector, reason: &Reason) {
        let _ = (connector, reason);
    }

    /// Called before a connector's first attempt (Twisted's `startFactory`).
    fn start_factory(&mut self) {}

    /// Called once a connector is done (Twisted's `stopFactory`).
    fn stop_factory(&mut self) {}
}

/// Why a connection attempt failed (Twisted's `ConnectError` family).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing listens there (`ECONNREFUSED`; Twisted's `ConnectionRefusedError`).
    Refused,
    /// The endpoint's `timeout` passed first (Twisted's `TimeoutError`).
    TimedOut,
    /// The host name could not be resolved (Twisted's `DNSLookupError`).
    DnsLookup {
        /// The name looked up.
        host: String,
        /// What the resolver said.
        error: io::Error,
    },
    /// The local `bindAddress` could not be bound (Twisted's `ConnectBindError`).
    Bind {
        /// The address.
        address: IpAddr,
        /// The OS error.
        error: io::Error,
    },
    /// `stop_connecting` was called (Twisted's `UserError`).
    Cancelled,
    /// The calling thread runs no weft shard (use [`react`] or a server).
    NoRuntime,
    /// The shard is shutting down.
    ShuttingDown,
    /// Any other OS error (unreachable network, no such socket file, …).
    Io(io::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::TimedOut => f.write_str("connection attempt timed out"),
            ConnectError::DnsLookup { host, error } => {
                write!(f, "cannot resolve {host:?}: {error}")
            }
            ConnectError::Bind { address, error } => write!(f, "cannot bind {address}: {error}"),
            ConnectError::Cancelled => f.write_str("connection attempt cancelled"),
            ConnectError::NoRuntime => {
                f.write_str("no weft shard runs on this thread (use weft::client::react)")
            }
            ConnectError::ShuttingDown => f.write_str("the shard is shutting down"),
            ConnectError::Io(e) => write!(f, "cannot connect: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::DnsLookup { error, .. }
            | ConnectError::Bind { error, .. }
            | ConnectError::Io(error) => Some(error),
            _ => None,
        }
    }
}

/// Settings of a connection attempt that an endpoint string does not carry.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    resolver: Resolver,
}

impl ConnectOptions {
    /// Returns the defaults: the system resolver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves host names with `resolver` (for tests: a slow or fixed one).
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }
}

/// Connects `factory` to `endpoint` from this shard, as Twisted's `connectTCP` /
/// `endpoint.connect(factory)`; returns the connector at once, the attempt runs on
/// the shard.
///
/// # Examples
/// ```no_run
/// # use weft::{Address, Protocol, Reactor, Transport};
/// use weft::client::{connect, ClientFactory, ConnectError, Connector};
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
/// }
/// struct Once;
/// impl ClientFactory for Once {
///     type Protocol = Quiet;
///     fn build_protocol(&mut self, _server: &Address) -> Option<Quiet> {
///         Some(Quiet)
///     }
///     fn client_connection_failed(&mut self, _: &Connector, why: &ConnectError) {
///         eprintln!("failed: {why}");
///     }
/// }
/// # fn demo(reactor: &Reactor) {
/// let connector = connect(reactor, "tcp:127.0.0.1:8000".parse().unwrap(), Once);
/// # let _ = connector; }
/// ```
pub fn connect<F: ClientFactory>(
    reactor: &Reactor,
    endpoint: ClientEndpoint,
    factory: F,
) -> Connector {
    connect_with(reactor, endpoint, factory, ConnectOptions::default())
}

/// [`connect`] with options (a resolver).
pub fn connect_with<F: ClientFactory>(
    reactor: &Reactor,
    endpoint: ClientEndpoint,
    factory: F,
    options: ConnectOptions,
) -> Connector {
    let connector = Connector::for_factory(reactor, endpoint, factory, options);
    // A fresh connector is disconnected, so this cannot fail.
    let _ = connector.connect();
    connector
}

/// A connected protocol, returned by [`connect_protocol`]: the protocol (shared
/// with its connection) and a handle to write to and close its transport.
///
/// The protocol sits in a `RefCell` that the connection borrows during each
/// callback: do not hold a borrow (through [`with`](Self::with)) across an
/// `.await`, or the next callback finds it borrowed and the connection ends with
/// [`Reason::ProtocolFailure`].
pub struct ProtocolHandle<P> {
    shared: Rc<SharedState<P>>,
    transport: TransportHandle,
    peer: Address,
}

impl<P> ProtocolHandle<P> {
    /// Runs `f` with the protocol.
    ///
    /// # Panics
    /// If called from inside one of this protocol's own callbacks.
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        f(&mut self.shared.protocol.borrow_mut())
    }

    /// Returns the transport handle: write, `lose_connection`, `connected`.
    pub fn transport(&self) -> &TransportHandle {
        &self.transport
    }

    /// Returns the server's address.
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// Completes once the protocol's `connection_lost` has run.
    pub fn closed(&self) -> impl Future<Output = ()> + 'static {
        self.shared.lost.wait()
    }
}

struct SharedState<P> {
    protocol: RefCell<P>,
    made: Rc<Oneshot<TransportHandle>>,
    lost: Rc<Signal>,
}

/// Runs a protocol shared with its [`ProtocolHandle`].
struct SharedProtocol<P>(Rc<SharedState<P>>);

impl<P: Protocol> Protocol for SharedProtocol<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.0.made.send(t.handle());
        self.0.protocol.borrow_mut().connection_made(t);
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.0.protocol.borrow_mut().data_received(data, t);
    }

    fn connection_lost(&mut self, reason: Reason) {
        self.0.made.close();
        let r = self
            .0
            .protocol
            .try_borrow_mut()
            .map(|mut p| p.connection_lost(reason));
        self.0.lost.raise();
        if r.is_err() {
            tracing::error!("connection_lost skipped: the protocol was borrowed by its handle");
        }
    }

    fn pause_producing(&mut self, t: &mut Transport) {
        self.0.protocol.borrow_mut().pause_producing(t);
    }

    fn resume_producing(&mut self, t: &mut Transport) {
        self.0.protocol.borrow_mut().resume_producing(t);
    }

    fn half_closeable(&self) -> bool {
        self.0.protocol.borrow().half_closeable()
    }

    fn read_connection_lost(&mut self, t: &mut Transport) {
        self.0.protocol.borrow_mut().read_connection_lost(t);
    }
}

/// Connects `protocol` to `endpoint` (Twisted's `connectProtocol` and
/// `ClientCreator`): resolves once its `connection_made` has run.
///
/// Dropping the future before it resolves abandons the attempt and closes the
/// half-open socket (Twisted: cancelling the Deferred).
///
/// # Errors
/// [`ConnectError`] if the connection cannot be made within the endpoint's timeout.
pub fn connect_protocol<P: Protocol>(
    reactor: &Reactor,
    endpoint: ClientEndpoint,
    protocol: P,
) -> impl Future<Output = Result<ProtocolHandle<P>, ConnectError>> + 'static {
    connect_protocol_with(reactor, endpoint, protocol, ConnectOptions::default())
}

/// [`connect_protocol`] with options (a resolver).
///
/// # Errors
/// As [`connect_protocol`].
pub fn connect_protocol_with<P: Protocol>(
    reactor: &Reactor,
    endpoint: ClientEndpoint,
    protocol: P,
    options: ConnectOptions,
) -> impl Future<Output = Result<ProtocolHandle<P>, ConnectError>> + 'static {
    let reactor = reactor.clone();
    async move {
        let dialed = dial(&reactor, &endpoint, &options, None).await?;
        let peer = dialed.peer().clone();
        let shared = Rc::new(SharedState {
            protocol: RefCell::new(protocol),
            made: Oneshot::new(),
            lost: Rc::new(Signal::default()),
        });
        let made = Rc::clone(&shared.made);
        runtime::dial::start(dialed, SharedProtocol(Rc::clone(&shared)))?;
        let transport = made.recv().await.ok_or(ConnectError::ShuttingDown)?;
        Ok(ProtocolHandle {
            shared,
            transport,
            peer,
        })
    }
}

/// Resolves and connects within the endpoint's timeout (on the reactor clock),
/// giving up early if `cancel` is raised.
async fn dial(
    reactor: &Reactor,
    endpoint: &ClientEndpoint,
    options: &ConnectOptions,
    cancel: Option<Rc<Signal>>,
) -> Result<runtime::dial::Dialed, ConnectError> {
    let attempt = dialer::dial(endpoint, &options.resolver);
    let timeout = async {
        wait::sleep(reactor, endpoint.timeout()).await;
        Err(ConnectError::TimedOut)
    };
    let cancelled = async {
        match cancel {
            Some(c) => c.wait().await,
            None => future::pending().await,
        }
        Err(ConnectError::Cancelled)
    };
    future::or(future::or(attempt, timeout), cancelled).await
}

/// Runs `main` on a fresh one-shard reactor until its future completes, then
/// stops the reactor gracefully (draining the connections still open) and returns
/// the future's output: Twisted's `task.react`, for programs that are only
/// clients.
///
/// # Errors
/// [`ServerError::Runtime`] if the reactor cannot start (no io_uring, memlock).
/// `Ok(None)` means the reactor was stopped (a signal) before `main` finished.
pub fn react<M, Fut, T>(main: M) -> Result<Option<T>, ServerError>
where
    M: FnOnce(Reactor) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    react_with(runtime::Server::builder().cores(1).pin(false), main)
}

/// [`react`] on a configured builder (for example with `handle_signals(true)`, or
/// with endpoints to serve as well); `main` runs on shard 0.
///
/// # Errors
/// As [`react`], plus whatever [`ServerBuilder::start`] reports.
pub fn react_with<M, Fut, T>(builder: ServerBuilder, main: M) -> Result<Option<T>, ServerError>
where
    M: FnOnce(Reactor) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let main = Mutex::new(Some(main));
    let out: Arc<Mutex<Option<T>>> = Arc::default();
    let result = Arc::clone(&out);
    let server = builder
        .on_shard(move |reactor, stop| {
            if reactor.shard() != 0 {
                return;
            }
            let Some(main) = main.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                return;
            };
            let (stop, result) = (stop.clone(), Arc::clone(&result));
            let fut = main(reactor.clone());
            reactor.spawn_local(async move {
                let v = fut.await;
                *result.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
                stop.stop();
            });
        })
        .start()?;
    server.join()?;
    let v = out.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(v)
}
