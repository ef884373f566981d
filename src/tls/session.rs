//! `TlsProtocol`: the wrapping protocol that runs TLS between the engine's bytes and
//! the user's protocol (Twisted's `TLSMemoryBIOProtocol`).
//!
//! The engine sees an ordinary [`Protocol`] that receives and writes ciphertext; the
//! inner protocol sees plaintext through an inner [`Transport`] of its own, which
//! this wrapper drains after every inner callback (and, for writes made later
//! through a `TransportHandle`, from a small pump task the inner transport wakes).
//! Everything the wrapper writes to the engine is ciphertext, so the engine's
//! watermarks and output cap count encrypted bytes, and the engine's
//! `pause_producing`/`resume_producing` are passed on to the inner protocol.
//!
//! ```text
//!             ┌────────────── Handshaking { slot, timer } ──────────────┐
//!   accepted ─┤  ciphertext ─► rustls ─► handshake bytes ─► engine      │
//!             │  timer fires ─► abort        TLS error ─► alert, close   │
//!             └──── handshake done: build the inner protocol ───────────┘
//!                         │ None: close_notify, close
//!                         ▼
//!                 Open { protocol, transport }
//!   ciphertext ─► rustls ─► plaintext ─► inner.data_received ─► inner writes
//!   ─► rustls ─► ciphertext ─► engine          (inner lose: close_notify, FIN;
//!                                               inner abort: RST, nothing else)
//!                         │ engine's connection_lost
//!                         ▼
//!                       Ended
//! ```
//!
//! How a close is reported to the inner protocol:
//!
//! | what happened | inner `connection_lost` |
//! |---|---|
//! | the peer sent close_notify, or we did (`lose_connection`) | `ConnectionDone` |
//! | the peer's FIN came without close_notify | `ConnectionLost(UnexpectedEof)`: truncation |
//! | a TLS error (bad record, bad certificate) | `ConnectionLost(InvalidData)` wrapping the rustls error |
//! | anything else (abort, reset, output cap, shutdown, panic) | the engine's reason |
//!
//! The inner protocol is built, and `connection_made` called, only once the
//! handshake is done, so `Transport::tls` already tells the ALPN protocol, version,
//! cipher suite, server name and peer certificates; a failed handshake builds no
//! protocol at all.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, BufRead, Write};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::address::Address;
use crate::clock::DelayedCall;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::{ConnShared, Transport, TransportHandle};

use super::info::TlsInfo;
use super::stats::{HandshakeEnd, TlsStats};

/// Builds the inner protocol for a peer (the wrapped factory's `build_protocol`).
pub(crate) type BuildInner<P> = Box<dyn Fn(&Address) -> Option<P>>;

/// Per shard and per wrapping factory: how to build the inner protocol, the
/// counters, the handshake timeout, and what the last connection ended with (for a
/// client factory's `client_connection_lost`).
pub(crate) struct ShardTls<P> {
    pub(crate) build: BuildInner<P>,
    pub(crate) stats: Arc<TlsStats>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) in_progress: Cell<usize>,
    pub(crate) last_ending: RefCell<Option<Ending>>,
}

/// One handshake counted in progress; dropping it ends the count.
struct Slot<P> {
    shard: Rc<ShardTls<P>>,
    how: HandshakeEnd,
}

impl<P> Drop for Slot<P> {
    fn drop(&mut self) {
        let n = self.shard.in_progress.get();
        self.shard.in_progress.set(n.saturating_sub(1));
        self.shard.stats.on_end(self.how);
    }
}

/// What the TLS layer learned about how a connection ended.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// A TLS error (ours or the peer's alert).
    Tls(rustls::Error),
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// close_notify went one way or the other: a clean end.
    Clean,
    /// Neither side sent close_notify.
    Unclean,
}

impl Ending {
    /// The reason the inner protocol (and a client factory) is given.
    pub(crate) fn reason(&self, outer: &Reason) -> Reason {
        match (self, outer) {
            (Ending::Tls(e), _) => Reason::ConnectionLost(io::Error::new(
                io::ErrorKind::InvalidData,
                TlsFailure(e.clone()),
            )),
            (Ending::HandshakeTimeout, _) => Reason::ConnectionLost(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake timed out",
            )),
            (Ending::Unclean, Reason::ConnectionDone) => Reason::ConnectionLost(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection without a TLS close_notify (possible truncation)",
            )),
            (_, other) => clone_reason(other),
        }
    }
}

/// A TLS failure, as the error inside `Reason::ConnectionLost`; `source()` is the
/// rustls error.
#[derive(Debug)]
pub struct TlsFailure(pub rustls::Error);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS error: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn clone_reason(r: &Reason) -> Reason {
    match r {
        Reason::ConnectionDone => Reason::ConnectionDone,
        Reason::ConnectionLost(e) => {
            Reason::ConnectionLost(io::Error::new(e.kind(), e.to_string()))
        }
        Reason::ConnectionAborted => Reason::ConnectionAborted,
        Reason::OutputLimitExceeded { buffered, limit } => Reason::OutputLimitExceeded {
            buffered: *buffered,
            limit: *limit,
        },
        Reason::Shutdown { drained } => Reason::Shutdown { drained: *drained },
        Reason::ProtocolFailure(m) => Reason::ProtocolFailure(m.clone()),
    }
}

/// Where ciphertext and close requests go: the engine's transport inside a
/// callback, or its handle from the pump task and timers.
enum Out<'a> {
    Now(&'a mut Transport),
    Later(&'a TransportHandle),
}

impl Out<'_> {
    fn lose(&mut self) {
        match self {
            Out::Now(t) => t.lose_connection(),
            Out::Later(h) => h.lose_connection(),
        }
    }
    fn abort(&mut self) {
        match self {
            Out::Now(t) => t.abort_connection(),
            Out::Later(h) => h.abort_connection(),
        }
    }
    fn pause_reading(&mut self) {
        match self {
            Out::Now(t) => t.pause_reading(),
            Out::Later(h) => h.pause_reading(),
        }
    }
    fn resume_reading(&mut self) {
        match self {
            Out::Now(t) => t.resume_reading(),
            Out::Later(h) => h.resume_reading(),
        }
    }
}

impl Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::Now(t) => t.write(buf),
            Out::Later(h) => h.write(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Inner<P> {
    protocol: P,
    transport: Transport,
}

enum Phase<P> {
    /// Waiting for `connection_made`.
    Fresh(Slot<P>),
    /// The handshake runs; the timer aborts it when it is late.
    Handshaking { slot: Slot<P>, timer: DelayedCall },
    /// The inner protocol runs.
    Open(Inner<P>),
    /// No inner protocol (refused by its factory, or the handshake failed), or the
    /// connection is lost.
    Ended,
}

/// What the wrapper keeps of the engine's transport: a handle for writes outside
/// callbacks, and what the inner transport is built with.
struct Outer {
    handle: TransportHandle,
    peer: Address,
    host: Address,
    reactor: crate::reactor::Reactor,
    limits: crate::transport::OutputLimits,
}

struct Core<P: Protocol> {
    conn: rustls::Connection,
    shard: Rc<ShardTls<P>>,
    phase: Phase<P>,
    /// The name a client verified (for `TlsInfo::server_name`).
    server_name: Option<String>,
    /// The engine's transport as seen from outside a callback; set by
    /// `connection_made`.
    outer: Option<Outer>,
    tls_error: Option<rustls::Error>,
    timed_out: bool,
    close_sent: bool,
    close_received: bool,
    close_handled: bool,
    aborted: bool,
    /// We paused the engine's reading (the inner protocol paused, or rustls's
    /// plaintext buffer is full).
    outer_paused: bool,
    /// Ciphertext read while rustls's plaintext buffer was full.
    pending_in: Vec<u8>,
    lost: bool,
}

/// The wrapping protocol: TLS on the outside, the user's protocol inside. Built by
/// [`TlsServerFactory`](super::TlsServerFactory) and
/// [`TlsClientFactory`](super::TlsClientFactory).
pub struct TlsProtocol<P: Protocol> {
    core: Rc<RefCell<Core<P>>>,
}

impl<P: Protocol> TlsProtocol<P> {
    /// Wraps a fresh rustls connection; counts a handshake in progress on `shard`.
    pub(crate) fn new(
        conn: rustls::Connection,
        shard: Rc<ShardTls<P>>,
        server_name: Option<String>,
    ) -> TlsProtocol<P> {
        shard.in_progress.set(shard.in_progress.get() + 1);
        shard.stats.on_start();
        let slot = Slot {
            shard: shard.clone(),
            how: HandshakeEnd::Failed,
        };
        TlsProtocol {
            core: Rc::new(RefCell::new(Core {
                conn,
                shard,
                phase: Phase::Fresh(slot),
                server_name,
                outer: None,
                tls_error: None,
                timed_out: false,
                close_sent: false,
                close_received: false,
                close_handled: false,
                aborted: false,
                outer_paused: false,
                pending_in: Vec::new(),
                lost: false,
            })),
        }
    }

    /// Tells whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.core.borrow().conn.is_handshaking()
    }

    /// Calls `f` with the inner protocol, if it exists (after the handshake, before
    /// the connection is lost).
    pub fn with_inner<R>(&self, f: impl FnOnce(&mut P, &mut Transport) -> R) -> Option<R> {
        match &mut self.core.borrow_mut().phase {
            Phase::Open(inner) => Some(f(&mut inner.protocol, &mut inner.transport)),
            _ => None,
        }
    }
}

impl<P: Protocol> Core<P> {
    /// Sends what rustls has queued (handshake messages, alerts, records).
    fn flush_tls(&mut self, out: &mut Out<'_>) {
        flush(&mut self.conn, out);
    }

    /// Leaves the handshake (if it still runs): stops its timer and counts how it
    /// ended. Returns false if there was no handshake to end.
    fn end_handshake(&mut self, how: HandshakeEnd) -> bool {
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::Handshaking { mut slot, timer } => {
                let _ = timer.cancel();
                slot.how = how;
                true
            }
            Phase::Fresh(mut slot) => {
                slot.how = how;
                true
            }
            other => {
                self.phase = other;
                false
            }
        }
    }

    /// A TLS error: send the alert rustls queued, close, remember why.
    fn fail(&mut self, e: rustls::Error, out: &mut Out<'_>) {
        tracing::debug!("tls: {e}");
        self.flush_tls(out);
        if self.tls_error.is_none() {
            self.tls_error = Some(e);
        }
        self.end_handshake(HandshakeEnd::Failed);
        out.lose();
    }

    /// Feeds ciphertext to rustls and runs everything it unblocks.
    fn receive(&mut self, data: &[u8], out: &mut Out<'_>) {
        if self.lost || self.tls_error.is_some() || self.aborted {
            return;
        }
        if !self.pending_in.is_empty() {
            self.pending_in.extend_from_slice(data);
        } else {
            self.feed(data, out);
        }
        self.run(out);
    }

    /// Moves `data` into rustls, processing and delivering as it goes; what does
    /// not fit (the plaintext buffer is full because the inner protocol paused)
    /// waits in `pending_in` with the engine's reading paused.
    fn feed(&mut self, data: &[u8], out: &mut Out<'_>) {
        let mut rest = data;
        while !rest.is_empty() {
            match self.conn.read_tls(&mut rest) {
                // After the peer's close_notify rustls reads nothing more: what
                // follows it is discarded (never loop on it).
                Ok(0) => return,
                Ok(_) => {}
                // The plaintext buffer is full: the inner protocol paused reading.
                Err(e) if e.kind() == io::ErrorKind::Other => {
                    self.pending_in.extend_from_slice(rest);
                    if !self.outer_paused {
                        out.pause_reading();
                        self.outer_paused = true;
                    }
                    return;
                }
                // A record too large to buffer (an oversized handshake message).
                Err(e) => {
                    self.fail(rustls::Error::General(e.to_string()), out);
                    return;
                }
            }
            if !self.process(out) {
                return;
            }
            self.deliver(out);
        }
    }

    /// Runs rustls on what it has read. Returns false after a TLS error.
    fn process(&mut self, out: &mut Out<'_>) -> bool {
        match self.conn.process_new_packets() {
            Err(e) => {
                self.fail(e, out);
                false
            }
            Ok(state) => {
                self.flush_tls(out);
                if state.peer_has_closed() {
                    self.close_received = true;
                }
                if matches!(self.phase, Phase::Handshaking { .. }) && !self.conn.is_handshaking() {
                    self.handshake_done(out);
                }
                true
            }
        }
    }

    fn handshake_done(&mut self, out: &mut Out<'_>) {
        if !self.end_handshake(HandshakeEnd::Completed) {
            return;
        }
        let Some(outer) = self.outer.take() else {
            return;
        };
        let (peer, host, reactor, limits) = (
            outer.peer.clone(),
            outer.host.clone(),
            outer.reactor.clone(),
            outer.limits,
        );
        self.outer = Some(outer);
        let Some(mut protocol) = (self.shard.build)(&peer) else {
            self.conn.send_close_notify();
            self.close_sent = true;
            self.flush_tls(out);
            out.lose();
            return;
        };
        let mut transport = Transport::new(ConnShared::new(limits), reactor, peer, host);
        transport.tls = Some(Rc::new(TlsInfo::of(&self.conn, self.server_name.clone())));
        protocol.connection_made(&mut transport);
        self.phase = Phase::Open(Inner {
            protocol,
            transport,
        });
        self.drain_inner(out);
    }

    /// Encrypts what the inner protocol wrote and carries out its close, abort and
    /// read-pause requests.
    fn drain_inner(&mut self, out: &mut Out<'_>) {
        let Phase::Open(inner) = &mut self.phase else {
            return;
        };
        let shared = &inner.transport.shared;
        if shared.machine.borrow().aborted() {
            if !self.aborted {
                self.aborted = true;
                out.abort();
            }
            return;
        }
        if self.close_sent {
            // Nothing can follow our close_notify.
            shared.out.borrow_mut().clear();
        } else {
            let mut buf = shared.out.borrow_mut();
            while !buf.is_empty() {
                let n = match self.conn.writer().write(buf.front()) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                buf.consume(n);
                flush(&mut self.conn, out);
            }
            drop(buf);
            if shared.machine.borrow().losing() {
                self.conn.send_close_notify();
                self.close_sent = true;
                flush(&mut self.conn, out);
                out.lose();
            }
        }
        let paused = shared.machine.borrow().reading_paused() || !self.pending_in.is_empty();
        if paused != self.outer_paused {
            self.outer_paused = paused;
            if paused {
                out.pause_reading();
            } else {
                out.resume_reading();
            }
        }
    }

    /// Hands buffered plaintext to the inner protocol, one rustls chunk at a time,
    /// while it reads. Returns true if anything was delivered.
    fn deliver(&mut self, out: &mut Out<'_>) -> bool {
        let mut any = false;
        loop {
            let Phase::Open(inner) = &mut self.phase else {
                return any;
            };
            if inner.transport.reading_paused() || inner.transport.disconnecting() {
                return any;
            }
            let mut reader = self.conn.reader();
            let chunk = match reader.fill_buf() {
                Ok(c) if !c.is_empty() => c,
                _ => break,
            };
            let n = chunk.len();
            inner.protocol.data_received(chunk, &mut inner.transport);
            reader.consume(n);
            any = true;
            self.drain_inner(out);
        }
        if self.close_received && !self.close_handled {
            self.close_handled = true;
            self.peer_closed(out);
        }
        any
    }

    /// The peer's close_notify, after every byte before it was delivered.
    fn peer_closed(&mut self, out: &mut Out<'_>) {
        match &mut self.phase {
            Phase::Open(inner) => {
                if inner.protocol.half_closeable() {
                    inner.protocol.read_connection_lost(&mut inner.transport);
                } else {
                    inner.transport.lose_connection();
                }
                self.drain_inner(out);
            }
            _ => {
                if !self.close_sent {
                    self.conn.send_close_notify();
                    self.close_sent = true;
                    self.flush_tls(out);
                }
                out.lose();
            }
        }
    }

    /// Makes every bit of progress there is: the inner output, buffered plaintext,
    /// ciphertext held back while the inner protocol paused.
    fn run(&mut self, out: &mut Out<'_>) {
        if self.tls_error.is_some() {
            return;
        }
        loop {
            self.drain_inner(out);
            let mut progressed = self.deliver(out);
            let reading = match &self.phase {
                Phase::Open(inner) => !inner.transport.reading_paused(),
                _ => true,
            };
            if reading && !self.pending_in.is_empty() && self.tls_error.is_none() {
                let held = std::mem::take(&mut self.pending_in);
                self.feed(&held, out);
                progressed = true;
                if self.pending_in.len() == held.len() {
                    break;
                }
            }
            if !progressed {
                break;
            }
        }
        self.drain_inner(out);
    }

    fn lost(&mut self, reason: &Reason) -> Option<(Inner<P>, Reason)> {
        self.lost = true;
        let ending = if let Some(e) = &self.tls_error {
            Ending::Tls(e.clone())
        } else if self.timed_out {
            Ending::HandshakeTimeout
        } else if self.close_received || self.close_sent {
            Ending::Clean
        } else {
            Ending::Unclean
        };
        let inner_reason = ending.reason(reason);
        *self.shard.last_ending.borrow_mut() = Some(ending);
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::Open(inner) => {
                inner.transport.shared.machine.borrow_mut().mark_lost();
                // Let the pump task see the end and finish.
                inner.transport.shared.wake();
                Some((inner, inner_reason))
            }
            Phase::Handshaking { timer, .. } => {
                let _ = timer.cancel();
                None
            }
            _ => None,
        }
    }
}

/// Moves what rustls has queued (handshake messages, alerts, records) to `out`.
fn flush(conn: &mut rustls::Connection, out: &mut Out<'_>) {
    while conn.wants_write() {
        match conn.write_tls(out) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Fires when the handshake is late: aborts it (the peer gets a reset).
fn handshake_timeout<P: Protocol>(core: Weak<RefCell<Core<P>>>) {
    let Some(core) = core.upgrade() else { return };
    let Ok(mut c) = core.try_borrow_mut() else {
        return;
    };
    if matches!(c.phase, Phase::Handshaking { .. }) {
        c.end_handshake(HandshakeEnd::TimedOut);
        c.timed_out = true;
        if let Some(o) = &c.outer {
            o.handle.abort_connection();
        }
    }
}

/// Drains writes made through the inner transport's handles outside callbacks
/// (a Deferred-style task, a timer): the inner transport wakes this task.
struct Pump<P: Protocol> {
    core: Rc<RefCell<Core<P>>>,
}

impl<P: Protocol> Future for Pump<P> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Ok(mut c) = self.core.try_borrow_mut() else {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let c = &mut *c;
        let Phase::Open(inner) = &c.phase else {
            return Poll::Ready(());
        };
        inner.transport.shared.set_waker(cx.waker());
        if let Some(h) = c.outer.as_ref().map(|o| o.handle.clone()) {
            c.run(&mut Out::Later(&h));
        }
        Poll::Pending
    }
}

impl<P: Protocol> Protocol for TlsProtocol<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        let weak = Rc::downgrade(&self.core);
        let mut c = self.core.borrow_mut();
        c.outer = Some(Outer {
            handle: t.handle(),
            peer: t.peer().clone(),
            host: t.host().clone(),
            reactor: t.reactor().clone(),
            limits: t.output_limits(),
        });
        let timeout = c.shard.handshake_timeout;
        if let Phase::Fresh(slot) = std::mem::replace(&mut c.phase, Phase::Ended) {
            let timer = t
                .reactor()
                .call_later(timeout, move || handshake_timeout(weak));
            c.phase = Phase::Handshaking { slot, timer };
        }
        // A client's ClientHello.
        c.flush_tls(&mut Out::Now(t));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let was_open = matches!(self.core.borrow().phase, Phase::Open(_));
        self.core.borrow_mut().receive(data, &mut Out::Now(t));
        let is_open = matches!(self.core.borrow().phase, Phase::Open(_));
        if is_open && !was_open {
            t.reactor().spawn_local(Pump {
                core: self.core.clone(),
            });
        }
    }

    fn connection_lost(&mut self, reason: Reason) {
        let ended = self.core.borrow_mut().lost(&reason);
        if let Some((mut inner, why)) = ended {
            inner.protocol.connection_lost(why);
        }
    }

    fn pause_producing(&mut self, t: &mut Transport) {
        let mut c = self.core.borrow_mut();
        if let Phase::Open(inner) = &mut c.phase {
            inner.protocol.pause_producing(&mut inner.transport);
        }
        c.run(&mut Out::Now(t));
    }

    fn resume_producing(&mut self, t: &mut Transport) {
        let mut c = self.core.borrow_mut();
        if let Phase::Open(inner) = &mut c.phase {
            inner.protocol.resume_producing(&mut inner.transport);
        }
        c.run(&mut Out::Now(t));
    }
}
