//! The `Connector`: one client endpoint plus a factory, connected again on demand
//! (Twisted's `IConnector`).
//!
//! ```text
//!            connect()                       socket connected
//!  Disconnected ─────────► Connecting ─────────────────────────► Connected
//!       ▲                      │ failed / timed out / stop_connecting   │ connection_lost
//!       └──────────────────────┴────────────────────────────────────────┘
//! ```
//!
//! `connect()` only flips the state and spawns the attempt on the shard; the
//! attempt calls the factory. The factory is kept in an `Rc<RefCell<_>>` owned by
//! the connector's attempt launcher, and is borrowed only for the length of one
//! callback, so every callback may call back into the connector.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use crate::client::wait::Signal;
use crate::client::{dial, ClientFactory, ConnectError, ConnectOptions};
use crate::endpoints::ClientEndpoint;
use crate::protocol::Protocol;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::runtime::{self, guarded};
use crate::transport::{Transport, TransportHandle};

/// Where a connector is in its cycle (Twisted's `connector.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    /// No attempt under way and no connection.
    Disconnected,
    /// An attempt is under way.
    Connecting,
    /// A connection is up.
    Connected,
}

/// A connector method called in the wrong state (Twisted raises `RuntimeError`
/// and `NotConnectingError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectorError {
    /// `connect()` while an attempt is under way.
    AlreadyConnecting,
    /// `connect()` while connected.
    AlreadyConnected,
    /// `stop_connecting()` with no attempt under way.
    NotConnecting,
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectorError::AlreadyConnecting => "can't connect: an attempt is under way",
            ConnectorError::AlreadyConnected => "can't connect: already connected",
            ConnectorError::NotConnecting => "not connecting",
        })
    }
}

impl std::error::Error for ConnectorError {}

type Launch = Rc<dyn Fn(&Connector)>;

struct Inner {
    reactor: Reactor,
    endpoint: ClientEndpoint,
    state: Cell<ConnectorState>,
    attempts: Cell<u64>,
    /// Starts one attempt; `None` for a detached (test) connector.
    launch: Option<Launch>,
    /// Raised by `stop_connecting` to abandon the attempt under way.
    cancel: RefCell<Option<Rc<Signal>>>,
    transport: RefCell<Option<TransportHandle>>,
    /// `disconnect()` came after the socket connected but before `connection_made`.
    lose_when_made: Cell<bool>,
    factory_started: Cell<bool>,
}

/// A client endpoint with its factory: Twisted's `IConnector`. Cloning gives
/// another handle to the same connector.
#[derive(Clone)]
pub struct Connector {
    inner: Rc<Inner>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("destination", &self.inner.endpoint)
            .field("state", &self.state())
            .finish()
    }
}

impl fmt::Display for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connector to {}", self.inner.endpoint)
    }
}

impl Connector {
    fn with(reactor: &Reactor, endpoint: ClientEndpoint, launch: Option<Launch>) -> Connector {
        Connector {
            inner: Rc::new(Inner {
                reactor: reactor.clone(),
                endpoint,
                state: Cell::new(ConnectorState::Disconnected),
                attempts: Cell::new(0),
                launch,
                cancel: RefCell::new(None),
                transport: RefCell::new(None),
                lose_when_made: Cell::new(false),
                factory_started: Cell::new(false),
            }),
        }
    }

    pub(crate) fn for_factory<F: ClientFactory>(
        reactor: &Reactor,
        endpoint: ClientEndpoint,
        factory: F,
        options: ConnectOptions,
    ) -> Connector {
        let factory = Rc::new(RefCell::new(factory));
        let launch: Launch = Rc::new(move |c: &Connector| {
            let task = attempt(c.clone(), Rc::clone(&factory), options.clone());
            c.inner.reactor.spawn_local(task);
        });
        Connector::with(reactor, endpoint, Some(launch))
    }

    /// Returns a connector that makes no connections: `connect()` only counts the
    /// call (see [`attempts`](Self::attempts)) and the state stays disconnected.
    /// For unit tests of factories on a manual clock, as Twisted's
    /// `MemoryReactor` hands out fake connectors.
    pub fn detached(reactor: &Reactor, endpoint: ClientEndpoint) -> Connector {
        Connector::with(reactor, endpoint, None)
    }

    /// Starts a connection attempt (Twisted's `connector.connect()`); the attempt
    /// runs on the shard's next turn.
    ///
    /// # Errors
    /// [`ConnectorError`] unless the connector is disconnected.
    pub fn connect(&self) -> Result<(), ConnectorError> {
        match self.state() {
            ConnectorState::Connecting => return Err(ConnectorError::AlreadyConnecting),
            ConnectorState::Connected => return Err(ConnectorError::AlreadyConnected),
            ConnectorState::Disconnected => {}
        }
        self.inner.attempts.set(self.inner.attempts.get() + 1);
        let Some(launch) = &self.inner.launch else {
            return Ok(());
        };
        self.inner.state.set(ConnectorState::Connecting);
        *self.inner.cancel.borrow_mut() = Some(Rc::new(Signal::default()));
        self.inner.lose_when_made.set(false);
        launch(self);
        Ok(())
    }

    /// Abandons the attempt under way; the factory's `client_connection_failed`
    /// follows with [`ConnectError::Cancelled`].
    ///
    /// # Errors
    /// [`ConnectorError::NotConnecting`] if no attempt is under way.
    pub fn stop_connecting(&self) -> Result<(), ConnectorError> {
        if self.state() != ConnectorState::Connecting {
            return Err(ConnectorError::NotConnecting);
        }
        if let Some(c) = self.inner.cancel.borrow().as_ref() {
            c.raise();
        }
        Ok(())
    }

    /// Stops connecting, or closes the connection gracefully if connected
    /// (Twisted's `connector.disconnect()`).
    pub fn disconnect(&self) {
        match self.state() {
            ConnectorState::Connecting => {
                let _ = self.stop_connecting();
            }
            ConnectorState::Connected => match self.inner.transport.borrow().as_ref() {
                Some(t) => t.lose_connection(),
                None => self.inner.lose_when_made.set(true),
            },
            ConnectorState::Disconnected => {}
        }
    }

    /// Returns the current state.
    pub fn state(&self) -> ConnectorState {
        self.inner.state.get()
    }

    /// Returns the endpoint this connector connects to (Twisted's
    /// `getDestination()`).
    pub fn destination(&self) -> &ClientEndpoint {
        &self.inner.endpoint
    }

    /// Returns the reactor of the shard the connector lives on.
    pub fn reactor(&self) -> &Reactor {
        &self.inner.reactor
    }

    /// Returns how many times `connect()` started an attempt.
    pub fn attempts(&self) -> u64 {
        self.inner.attempts.get()
    }

    /// Returns the transport of the current connection, if connected.
    pub fn transport(&self) -> Option<TransportHandle> {
        self.inner.transport.borrow().clone()
    }

    pub(crate) fn downgrade(&self) -> WeakConnector {
        WeakConnector(Rc::downgrade(&self.inner))
    }

    /// Runs `stop_factory` if nothing more is under way on this connector.
    fn stop_factory_if_idle<F: ClientFactory>(&self, factory: &RefCell<F>) {
        if self.state() == ConnectorState::Disconnected && self.inner.factory_started.get() {
            self.inner.factory_started.set(false);
            call(factory, "stop_factory", |f| f.stop_factory());
        }
    }
}

/// A connector reference that does not keep it alive.
#[derive(Clone)]
pub(crate) struct WeakConnector(Weak<Inner>);

impl WeakConnector {
    pub(crate) fn upgrade(&self) -> Option<Connector> {
        self.0.upgrade().map(|inner| Connector { inner })
    }
}

/// Runs one factory callback; a panic is logged and the attempt carries on.
fn call<F>(factory: &RefCell<F>, what: &str, f: impl FnOnce(&mut F)) {
    let Ok(mut fac) = factory.try_borrow_mut() else {
        tracing::error!("{what} skipped: the client factory is already borrowed");
        return;
    };
    if let Err(msg) = guarded(|| f(&mut fac)) {
        tracing::error!("client factory {what} panicked: {msg}");
    }
}

/// One connection attempt, run as a task on the connector's shard.
async fn attempt<F: ClientFactory>(c: Connector, factory: Rc<RefCell<F>>, options: ConnectOptions) {
    if !c.inner.factory_started.replace(true) {
        call(&factory, "start_factory", |f| f.start_factory());
    }
    call(&factory, "started_connecting", |f| f.started_connecting(&c));
    let cancel = c.inner.cancel.borrow().clone();
    let result = match &cancel {
        Some(s) if s.is_raised() => Err(ConnectError::Cancelled),
        _ => dial(&c.inner.reactor, &c.inner.endpoint, &options, cancel).await,
    };
    c.inner.cancel.borrow_mut().take();
    let dialed = match result {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!("{c}: {e}");
            c.inner.state.set(ConnectorState::Disconnected);
            call(&factory, "client_connection_failed", |f| {
                f.client_connection_failed(&c, &e)
            });
            c.stop_factory_if_idle(&factory);
            return;
        }
    };
    let server = dialed.peer().clone();
    let mut protocol = None;
    call(&factory, "build_protocol", |f| {
        protocol = f.build_protocol(&server)
    });
    c.inner.state.set(ConnectorState::Connected);
    let client = ClientProtocol {
        inner: protocol,
        factory,
        connector: c.clone(),
    };
    if let Err(e) = runtime::dial::start(dialed, client) {
        // Unreachable in practice: the dial just succeeded on this very shard.
        tracing::error!("{c}: {e:?}");
        c.inner.state.set(ConnectorState::Disconnected);
    }
}

/// Wraps the factory's protocol to tell the connector and the factory how the
/// connection went. It only forwards the per-message callbacks.
struct ClientProtocol<F: ClientFactory> {
    inner: Option<F::Protocol>,
    factory: Rc<RefCell<F>>,
    connector: Connector,
}

impl<F: ClientFactory> Protocol for ClientProtocol<F> {
    fn connection_made(&mut self, t: &mut Transport) {
        *self.connector.inner.transport.borrow_mut() = Some(t.handle());
        match &mut self.inner {
            Some(p) => p.connection_made(t),
            // Twisted: a factory that builds no protocol gets its connection closed.
            None => t.lose_connection(),
        }
        if self.connector.inner.lose_when_made.take() {
            t.lose_connection();
        }
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if let Some(p) = &mut self.inner {
            p.data_received(data, t);
        }
    }

    fn connection_lost(&mut self, reason: Reason) {
        let copy = duplicate(&reason);
        if let Some(p) = &mut self.inner {
            if let Err(msg) = guarded(|| p.connection_lost(reason)) {
                tracing::error!("connection_lost panicked: {msg}");
            }
        }
        let c = &self.connector;
        c.inner.transport.borrow_mut().take();
        c.inner.state.set(ConnectorState::Disconnected);
        call(&self.factory, "client_connection_lost", |f| {
            f.client_connection_lost(c, &copy)
        });
        c.stop_factory_if_idle(&self.factory);
    }

    fn pause_producing(&mut self, t: &mut Transport) {
        if let Some(p) = &mut self.inner {
            p.pause_producing(t);
        }
    }

    fn resume_producing(&mut self, t: &mut Transport) {
        if let Some(p) = &mut self.inner {
            p.resume_producing(t);
        }
    }

    fn half_closeable(&self) -> bool {
        self.inner.as_ref().is_some_and(|p| p.half_closeable())
    }

    fn read_connection_lost(&mut self, t: &mut Transport) {
        match &mut self.inner {
            Some(p) => p.read_connection_lost(t),
            None => t.lose_connection(),
        }
    }
}

/// Copies a reason so that the protocol and the factory each get one (`Reason`
/// holds an `io::Error`, which is not `Clone`).
fn duplicate(r: &Reason) -> Reason {
    match r {
        Reason::ConnectionDone => Reason::ConnectionDone,
        Reason::ConnectionLost(e) => Reason::ConnectionLost(match e.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(e.kind(), e.to_string()),
        }),
        Reason::ConnectionAborted => Reason::ConnectionAborted,
        Reason::OutputLimitExceeded { buffered, limit } => Reason::OutputLimitExceeded {
            buffered: *buffered,
            limit: *limit,
        },
        Reason::Shutdown { drained } => Reason::Shutdown { drained: *drained },
        Reason::ProtocolFailure(m) => Reason::ProtocolFailure(m.clone()),
    }
}
