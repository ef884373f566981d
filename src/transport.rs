//! The `Transport` a protocol writes to, and the clonable `TransportHandle`.
//!
//! A `Transport` has no I/O of its own: `write` appends to the connection's output
//! buffer and close requests go to its connection machine (`src/connection/`). The
//! engine acts on them after the callback returns (one send for everything written
//! during a batch of reads), and the test transport in [`crate::testing`] is the very
//! same type, read back instead of sent. That is what lets every protocol be
//! unit-tested without a socket.
//!
//! ```text
//!   callback ──write──► OutBuf ──after return──► the ring sends from it (no copy)
//!   TransportHandle ──write──► same OutBuf ──marks the connection for service──►
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Waker;

use bytes::Bytes;

use crate::address::Address;
use crate::connection::machine::Machine;
use crate::connection::output::OutBuf;
use crate::reactor::Reactor;

/// Twisted's push-producer threshold: past this many buffered bytes the protocol is
/// told to `pause_producing` (and, by default, the connection stops being read).
pub const DEFAULT_HIGH_WATERMARK: usize = 64 * 1024;

/// Buffered bytes at or below which a connection held by its output is read again.
pub const DEFAULT_LOW_WATERMARK: usize = 16 * 1024;

/// The default hard cap on one connection's buffered output (16 MiB). Past it the
/// connection is aborted with [`Reason::OutputLimitExceeded`](crate::Reason).
pub const DEFAULT_MAX_OUTPUT_BUFFER: usize = 16 * 1024 * 1024;

/// Output flow-control limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Buffered bytes past which `pause_producing` is called and reading stops.
    pub high_watermark: usize,
    /// Buffered bytes at or below which reading resumes after the high watermark.
    pub low_watermark: usize,
    /// Buffered bytes past which the connection is aborted.
    pub max_buffer: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            high_watermark: DEFAULT_HIGH_WATERMARK,
            low_watermark: DEFAULT_LOW_WATERMARK,
            max_buffer: DEFAULT_MAX_OUTPUT_BUFFER,
        }
    }
}

/// The engine's list of connections to look at after this turn's callbacks.
pub(crate) type ServiceList = RefCell<Vec<usize>>;

/// How a connection tells the engine it has something to do (written from a task or
/// a timer, closed through a handle): its slot id on the shard's service list.
struct Notify {
    id: usize,
    queued: Cell<bool>,
    list: Rc<ServiceList>,
}

/// State one connection shares between the engine, its `Transport` and its handles.
pub(crate) struct ConnShared {
    pub(crate) out: RefCell<OutBuf>,
    pub(crate) machine: RefCell<Machine>,
    notify: Option<Notify>,
    /// For a connection no engine serves (a TLS wrapper's inner transport): the
    /// task to wake when a handle writes or closes.
    waker: Cell<Option<Waker>>,
}

impl ConnShared {
    /// A connection no engine serves (the test transport).
    pub(crate) fn new(limits: OutputLimits) -> Rc<ConnShared> {
        Rc::new(ConnShared {
            out: RefCell::new(OutBuf::default()),
            machine: RefCell::new(Machine::new(limits)),
            notify: None,
            waker: Cell::new(None),
        })
    }

    /// A connection of the engine: `id` goes on `list` when it needs service.
    pub(crate) fn served(limits: OutputLimits, id: usize, list: Rc<ServiceList>) -> Rc<ConnShared> {
        Rc::new(ConnShared {
            out: RefCell::new(OutBuf::default()),
            machine: RefCell::new(Machine::new(limits)),
            notify: Some(Notify {
                id,
                queued: Cell::new(false),
                list,
            }),
            waker: Cell::new(None),
        })
    }

    fn write(&self, data: &[u8]) {
        if !data.is_empty() && self.machine.borrow().accepts_writes() {
            self.out.borrow_mut().push_slice(data);
        }
    }

    fn write_bytes(&self, data: Bytes) {
        if !data.is_empty() && self.machine.borrow().accepts_writes() {
            self.out.borrow_mut().push_bytes(data);
        }
    }

    fn lose(&self) {
        self.machine.borrow_mut().lose();
    }

    fn abort(&self) {
        let mut m = self.machine.borrow_mut();
        if m.accepts_writes() {
            m.abort();
            self.out.borrow_mut().clear();
        }
    }

    /// Starts a shutdown close: flush, then close with `Reason::Shutdown`.
    pub(crate) fn begin_shutdown(&self) {
        self.machine.borrow_mut().shutdown();
        self.wake();
    }

    /// Ends a connection that did not drain in time: discard and reset.
    pub(crate) fn force_shutdown(&self) {
        let mut m = self.machine.borrow_mut();
        if m.accepts_writes() {
            m.force_shutdown();
            self.out.borrow_mut().clear();
        }
        drop(m);
        self.wake();
    }

    /// Puts the connection on the engine's service list (once until serviced), or
    /// wakes the task that drives a connection no engine serves.
    pub(crate) fn wake(&self) {
        if let Some(n) = &self.notify {
            if !n.queued.replace(true) {
                n.list.borrow_mut().push(n.id);
            }
        } else if let Some(w) = self.waker.take() {
            w.wake_by_ref();
            self.waker.set(Some(w));
        }
    }

    /// Sets the task [`wake`](Self::wake) wakes (connections no engine serves).
    pub(crate) fn set_waker(&self, w: &Waker) {
        self.waker.set(Some(w.clone()));
    }

    /// The engine took the connection off its service list.
    pub(crate) fn serviced(&self) {
        if let Some(n) = &self.notify {
            n.queued.set(false);
        }
    }

    fn buffered(&self) -> usize {
        self.out.borrow().len()
    }
}

/// What a protocol writes to and closes through: Twisted's `ITransport`.
///
/// Every method only records: writes are appended, close requests are flagged, and the
/// engine acts on them when the callback returns.
pub struct Transport {
    pub(crate) shared: Rc<ConnShared>,
    reactor: Reactor,
    peer: Address,
    host: Address,
    /// What the TLS handshake negotiated, when a `weft::tls` wrapper runs this
    /// connection (set once, by the wrapper, before `connection_made`).
    pub(crate) tls: Option<Rc<crate::tls::TlsInfo>>,
}

impl Transport {
    pub(crate) fn new(
        shared: Rc<ConnShared>,
        reactor: Reactor,
        peer: Address,
        host: Address,
    ) -> Transport {
        Transport {
            shared,
            reactor,
            peer,
            host,
            tls: None,
        }
    }

    /// Appends `data` to the output. Never blocks, never sends inline; an empty slice
    /// is a no-op, and so is a write after `abort_connection` or `connection_lost`.
    ///
    /// # Examples
    /// ```
    /// let mut t = weft::testing::StringTransport::new();
    /// t.write(b"hello ");
    /// t.write(b"world");
    /// assert_eq!(t.value(), b"hello world");
    /// ```
    pub fn write(&mut self, data: &[u8]) {
        self.shared.write(data);
    }

    /// Appends a shared buffer. Large buffers are queued without copying, so one
    /// broadcast payload can be written to many connections.
    pub fn write_bytes(&mut self, data: Bytes) {
        self.shared.write_bytes(data);
    }

    /// Appends every item in order: one logical write (Twisted's `writeSequence`).
    pub fn write_sequence<I>(&mut self, items: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        for item in items {
            self.shared.write(item.as_ref());
        }
    }

    /// Closes gracefully: reading stops at once, everything written (also after this
    /// call, while the close is pending) is sent, then the socket is shut down and
    /// closed, and `connection_lost(ConnectionDone)` follows. Idempotent.
    pub fn lose_connection(&mut self) {
        self.shared.lose();
    }

    /// Closes at once: unsent output is discarded and the peer gets a reset (RST);
    /// `connection_lost(ConnectionAborted)` follows. Idempotent.
    pub fn abort_connection(&mut self) {
        self.shared.abort();
    }

    /// Tells whether a close is pending (Twisted's `transport.disconnecting`).
    pub fn disconnecting(&self) -> bool {
        self.shared.machine.borrow().disconnecting()
    }

    /// Tells whether the connection is still up (not yet lost).
    pub fn connected(&self) -> bool {
        self.shared.machine.borrow().connected()
    }

    /// Stops reading from the peer until `resume_reading` (Twisted's
    /// `transport.pauseProducing`): read-side back-pressure.
    pub fn pause_reading(&mut self) {
        self.shared.machine.borrow_mut().pause_reading();
    }

    /// Resumes reading after `pause_reading`.
    pub fn resume_reading(&mut self) {
        self.shared.machine.borrow_mut().resume_reading();
    }

    /// Tells whether the protocol paused reading (`pause_reading`).
    pub fn reading_paused(&self) -> bool {
        self.shared.machine.borrow().reading_paused()
    }

    /// Returns the number of bytes written but not yet taken by the kernel.
    pub fn buffered(&self) -> usize {
        self.shared.buffered()
    }

    /// Returns this connection's output limits (watermarks and hard cap).
    pub fn output_limits(&self) -> OutputLimits {
        self.shared.machine.borrow().limits()
    }

    /// Returns the remote address (Twisted's `getPeer()`).
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// Returns the local address (Twisted's `getHost()`).
    pub fn host(&self) -> &Address {
        &self.host
    }

    /// Returns the index of the shard (core) that runs this connection.
    pub fn shard(&self) -> usize {
        self.reactor.shard()
    }

    /// Returns the shard's reactor: timers (`call_later`) and `spawn_local`.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Returns what the TLS handshake negotiated (ALPN protocol, version, cipher
    /// suite, server name, peer certificates), or `None` on a plain connection:
    /// Twisted's `negotiatedProtocol` and `getPeerCertificate`.
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.tls.as_deref()
    }

    /// Holds the producer for a write-rate policy (see the connection machine):
    /// returns `true` when the protocol was producing and must be told
    /// `pause_producing` by the caller.
    pub(crate) fn throttle_producer(&mut self) -> bool {
        self.shared.machine.borrow_mut().throttle_producer()
    }

    /// Returns a clonable handle for writing to this connection later, from a task
    /// spawned on the same shard (the Deferred pattern).
    pub fn handle(&self) -> TransportHandle {
        TransportHandle {
            shared: Rc::clone(&self.shared),
        }
    }
}

/// A clonable, shard-local handle to a connection's transport, for writing later
/// (Twisted: writing from a Deferred's callback). After `connection_lost` every call
/// is a harmless no-op.
///
/// # Examples
/// ```
/// let mut t = weft::testing::StringTransport::new();
/// let h = t.handle();
/// h.write(b"later");
/// assert_eq!(t.value(), b"later");
/// ```
#[derive(Clone)]
pub struct TransportHandle {
    shared: Rc<ConnShared>,
}

impl TransportHandle {
    /// Appends `data` to the output and wakes the connection to send it.
    pub fn write(&self, data: &[u8]) {
        self.shared.write(data);
        self.shared.wake();
    }

    /// Appends a shared buffer and wakes the connection to send it.
    pub fn write_bytes(&self, data: Bytes) {
        self.shared.write_bytes(data);
        self.shared.wake();
    }

    /// Closes gracefully, as [`Transport::lose_connection`].
    pub fn lose_connection(&self) {
        self.shared.lose();
        self.shared.wake();
    }

    /// Closes at once, as [`Transport::abort_connection`].
    pub fn abort_connection(&self) {
        self.shared.abort();
        self.shared.wake();
    }

    /// Tells whether the connection is still up.
    pub fn connected(&self) -> bool {
        self.shared.machine.borrow().connected()
    }

    /// Stops reading from the peer, as [`Transport::pause_reading`].
    pub fn pause_reading(&self) {
        self.shared.machine.borrow_mut().pause_reading();
    }

    /// Resumes reading and wakes the connection, as [`Transport::resume_reading`].
    pub fn resume_reading(&self) {
        self.shared.machine.borrow_mut().resume_reading();
        self.shared.wake();
    }

    /// Tells whether a close is pending.
    pub fn disconnecting(&self) -> bool {
        self.shared.machine.borrow().disconnecting()
    }

    /// Returns the number of bytes written but not yet taken by the kernel.
    pub fn buffered(&self) -> usize {
        self.shared.buffered()
    }

    /// Ends a write-rate policy's hold on the producer and wakes the connection, so
    /// that `resume_producing` comes once its output is empty.
    pub(crate) fn release_producer(&self) {
        self.shared.machine.borrow_mut().release_producer();
        self.shared.wake();
    }
}
