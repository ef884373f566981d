//! The `Transport` a protocol writes to, and the clonable `TransportHandle`.
//!
//! A `Transport` has no I/O of its own: `write` appends to the connection's output
//! buffer and close requests set flags. The engine acts on them after the callback
//! returns (one `send` for everything written during a batch of reads), and the test
//! transport in [`crate::testing`] is the very same type, read back instead of sent.
//! That is what lets every protocol be unit-tested without a socket.
//!
//! ```text
//!   callback ──write──► OutBuf (tail Vec + queued Bytes) ──after return──► send()
//!   TransportHandle ──write──► same OutBuf ──wakes the connection task──► send()
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Waker;

use bytes::{Buf, Bytes};

use crate::address::Address;
use crate::reactor::Reactor;

/// Twisted's push-producer threshold: past this many buffered bytes the protocol is
/// told to `pause_producing`.
pub const DEFAULT_HIGH_WATERMARK: usize = 64 * 1024;

/// The default hard cap on one connection's buffered output (16 MiB). Past it the
/// connection is aborted with [`Reason::OutputLimitExceeded`](crate::Reason).
pub const DEFAULT_MAX_OUTPUT_BUFFER: usize = 16 * 1024 * 1024;

/// `write_bytes` copies payloads smaller than this into the output buffer (so many
/// small writes still leave in one `send`) and queues larger ones without copying.
const COPY_THRESHOLD: usize = 4096;

/// An output buffer larger than this is freed once it drains, so that an idle
/// connection does not keep the capacity of its largest burst.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Output flow-control limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Buffered bytes past which `pause_producing` is called.
    pub high_watermark: usize,
    /// Buffered bytes past which the connection is aborted.
    pub max_buffer: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            high_watermark: DEFAULT_HIGH_WATERMARK,
            max_buffer: DEFAULT_MAX_OUTPUT_BUFFER,
        }
    }
}

/// Unsent output, in order: queued `Bytes` chunks first, then the copy buffer `tail`.
#[derive(Default)]
pub(crate) struct OutBuf {
    chunks: VecDeque<Bytes>,
    tail: Vec<u8>,
    tail_sent: usize,
    len: usize,
}

impl OutBuf {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push_slice(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    fn push_bytes(&mut self, data: Bytes) {
        if data.len() < COPY_THRESHOLD {
            self.push_slice(&data);
            return;
        }
        if self.tail.len() > self.tail_sent {
            // Keep order: what was copied so far goes before this chunk.
            let pending = Bytes::copy_from_slice(&self.tail[self.tail_sent..]);
            self.reset_tail();
            self.chunks.push_back(pending);
        }
        self.len += data.len();
        self.chunks.push_back(data);
    }

    /// Returns the next contiguous run of unsent bytes.
    pub(crate) fn front(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail[self.tail_sent..],
        }
    }

    /// Marks `n` bytes of [`front`](Self::front) as sent.
    pub(crate) fn consume(&mut self, n: usize) {
        self.len -= n;
        if let Some(c) = self.chunks.front_mut() {
            c.advance(n);
            if c.is_empty() {
                self.chunks.pop_front();
            }
        } else {
            self.tail_sent += n;
            if self.tail_sent == self.tail.len() {
                self.reset_tail();
            }
        }
    }

    fn reset_tail(&mut self) {
        if self.tail.capacity() > KEEP_CAPACITY {
            self.tail = Vec::new();
        } else {
            self.tail.clear();
        }
        self.tail_sent = 0;
    }

    /// Discards everything unsent (abort, or a panicking callback).
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.reset_tail();
        self.len = 0;
    }

    /// Copies out everything unsent (the test transport's `value()`).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        v.extend_from_slice(&self.tail[self.tail_sent..]);
        v
    }
}

pub(crate) mod flags {
    /// `lose_connection` was called: stop reading, flush, close.
    pub const LOSING: u8 = 1;
    /// `abort_connection` was called: discard, reset.
    pub const ABORTING: u8 = 2;
    /// The protocol paused reading (`pause_reading`).
    pub const READ_PAUSED: u8 = 4;
    /// `connection_lost` has been (or is being) delivered: the transport is dead.
    pub const LOST: u8 = 8;
    /// The protocol was told to pause producing and not yet to resume.
    pub const PRODUCER_PAUSED: u8 = 16;
    /// The server is shutting down: the close that follows is a shutdown.
    pub const SHUTDOWN: u8 = 32;
}

/// State one connection shares between its task, its `Transport` and its handles.
pub(crate) struct ConnShared {
    pub(crate) out: RefCell<OutBuf>,
    pub(crate) flags: Cell<u8>,
    pub(crate) waker: Cell<Option<Waker>>,
    pub(crate) limits: OutputLimits,
}

impl ConnShared {
    pub(crate) fn new(limits: OutputLimits) -> Rc<ConnShared> {
        Rc::new(ConnShared {
            out: RefCell::new(OutBuf::default()),
            flags: Cell::new(0),
            waker: Cell::new(None),
            limits,
        })
    }

    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }

    pub(crate) fn set(&self, f: u8) {
        self.flags.set(self.flags.get() | f);
    }

    pub(crate) fn unset(&self, f: u8) {
        self.flags.set(self.flags.get() & !f);
    }

    fn accepts_writes(&self) -> bool {
        !self.has(flags::LOST | flags::ABORTING)
    }

    fn write(&self, data: &[u8]) {
        if !data.is_empty() && self.accepts_writes() {
            self.out.borrow_mut().push_slice(data);
        }
    }

    fn write_bytes(&self, data: Bytes) {
        if !data.is_empty() && self.accepts_writes() {
            self.out.borrow_mut().push_bytes(data);
        }
    }

    fn lose(&self) {
        if !self.has(flags::LOST) {
            self.set(flags::LOSING);
        }
    }

    fn abort(&self) {
        if !self.has(flags::LOST) {
            self.set(flags::ABORTING);
            self.out.borrow_mut().clear();
        }
    }

    /// Starts a shutdown close: flush, then close with `Reason::Shutdown`.
    pub(crate) fn begin_shutdown(&self) {
        self.set(flags::SHUTDOWN);
        self.lose();
        self.wake();
    }

    /// Ends a connection that did not drain in time: discard and reset.
    pub(crate) fn force_shutdown(&self) {
        self.set(flags::SHUTDOWN);
        self.abort();
        self.wake();
    }

    /// Wakes the connection task (used by handles, never inside a callback).
    pub(crate) fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake_by_ref();
            self.waker.set(Some(w));
        }
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
        self.shared.has(flags::LOSING | flags::ABORTING)
    }

    /// Tells whether the connection is still up (not yet lost).
    pub fn connected(&self) -> bool {
        !self.shared.has(flags::LOST)
    }

    /// Stops reading from the peer until `resume_reading` (Twisted's
    /// `transport.pauseProducing`): read-side back-pressure.
    pub fn pause_reading(&mut self) {
        self.shared.set(flags::READ_PAUSED);
    }

    /// Resumes reading after `pause_reading`.
    pub fn resume_reading(&mut self) {
        self.shared.unset(flags::READ_PAUSED);
    }

    /// Tells whether reading is paused.
    pub fn reading_paused(&self) -> bool {
        self.shared.has(flags::READ_PAUSED)
    }

    /// Returns the number of bytes written but not yet sent.
    pub fn buffered(&self) -> usize {
        self.shared.out.borrow().len()
    }

    /// Returns this connection's output limits (watermark and hard cap).
    pub fn output_limits(&self) -> OutputLimits {
        self.shared.limits
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
        !self.shared.has(flags::LOST)
    }

    /// Stops reading from the peer, as [`Transport::pause_reading`].
    pub fn pause_reading(&self) {
        self.shared.set(flags::READ_PAUSED);
    }

    /// Resumes reading and wakes the connection, as [`Transport::resume_reading`].
    pub fn resume_reading(&self) {
        self.shared.unset(flags::READ_PAUSED);
        self.shared.wake();
    }

    /// Tells whether a close is pending.
    pub fn disconnecting(&self) -> bool {
        self.shared.has(flags::LOSING | flags::ABORTING)
    }

    /// Returns the number of bytes written but not yet sent.
    pub fn buffered(&self) -> usize {
        self.shared.out.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbuf_keeps_order_across_copied_and_queued_writes() {
        let mut b = OutBuf::default();
        b.push_slice(b"ab");
        b.push_bytes(Bytes::from(vec![b'x'; COPY_THRESHOLD]));
        b.push_slice(b"cd");
        let mut got = Vec::new();
        while !b.is_empty() {
            let n = b.front().len().min(3);
            got.extend_from_slice(&b.front()[..n]);
            b.consume(n);
        }
        let mut want = b"ab".to_vec();
        want.extend(std::iter::repeat_n(b'x', COPY_THRESHOLD));
        want.extend_from_slice(b"cd");
        assert_eq!(got, want);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn outbuf_frees_large_capacity_once_drained() {
        let mut b = OutBuf::default();
        b.push_slice(&vec![0u8; KEEP_CAPACITY * 2]);
        let n = b.front().len();
        b.consume(n);
        assert!(b.tail.capacity() <= KEEP_CAPACITY);
    }
}
