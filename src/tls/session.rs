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
//! rustls runs the handshake through its unbuffered API (`records.rs`). Once it is
//! done and rustls has nothing left to send, the session is handed over to weft's
//! own record layer (`traffic.rs`), which allocates nothing per record. Either way
//! each `data_received` decrypts whole records in place in the shard's scratch
//! buffer and hands each record's plaintext to the inner protocol; what the inner
//! protocol wrote is encrypted, 16 KiB at most per record. Only a record split
//! across reads stays with the session, in `incoming`, until it is whole.
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
use std::io;
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

use rustls::unbuffered::{ConnectionState, UnbufferedStatus, WriteTraffic};
use rustls::CommonState;

use super::info::TlsInfo;
use super::records::{self, Records, Scratch, Session, MAX_PLAINTEXT};
use super::stats::{HandshakeEnd, TlsStats};
use super::traffic::{Content, Failure, Traffic};

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
    /// The shard's buffers that records are decrypted in and encrypted into.
    pub(crate) scratch: Scratch,
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

impl Out<'_> {
    /// Queues ciphertext on the engine's connection.
    fn send(&mut self, data: &[u8]) {
        match self {
            Out::Now(t) => t.write(data),
            Out::Later(h) => h.write(data),
        }
    }
}

/// When a session goes over from rustls's record layer to weft's (`traffic.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// Never: the rustls config does not let the keys out
    /// (`enable_secret_extraction`; weft's own configs do, a user's may not).
    Never,
    /// Once the session carries its first application data. Setting up the
    /// record layer costs about as much as 4 % of a full handshake (the keys are
    /// derived again and expanded for ring), which a session that ends without a
    /// record (a health check, a scanner) would pay for nothing.
    OnFirstData,
    /// Application data moved: hand over when rustls next waits.
    Due,
}

impl Handover {
    fn data_moved(&mut self) {
        if *self == Handover::OnFirstData {
            *self = Handover::Due;
        }
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

/// What one step of rustls's state machine leaves to do.
enum Next {
    /// Call rustls again: it may have more to report.
    Again,
    /// rustls waits for the peer (or has nothing to say): stop until an event.
    Stop,
    /// The handshake is done, the inner protocol runs and rustls has nothing left
    /// to send: hand the session over to weft's record layer.
    HandOver,
}

struct Core<P: Protocol> {
    session: Session,
    st: State<P>,
}

/// Everything of a session but rustls's connection (so that the two can be
/// borrowed apart while rustls hands out decrypted records).
struct State<P: Protocol> {
    shard: Rc<ShardTls<P>>,
    phase: Phase<P>,
    /// On a client, the name it verified; on a server, the name the client asked
    /// for (SNI), caught by the certificate resolver.
    server_name: Option<String>,
    /// The engine's transport as seen from outside a callback; set by
    /// `connection_made`.
    outer: Option<Outer>,
    tls_error: Option<rustls::Error>,
    timed_out: bool,
    close_sent: bool,
    close_received: bool,
    close_handled: bool,
    /// close_notify is owed with no inner protocol to ask for it (its factory
    /// refused, or the peer closed before it existed).
    close_wanted: bool,
    aborted: bool,
    /// We paused the engine's reading (the inner protocol paused, or plaintext
    /// waits for it).
    outer_paused: bool,
    /// Ciphertext rustls has not finished with: a record split across reads, or
    /// the fragments of a handshake message split across records. Empty and
    /// without capacity otherwise: whole records are decrypted in the shard's
    /// scratch buffer.
    incoming: Vec<u8>,
    /// When the session goes over to weft's record layer.
    handover: Handover,
    /// Plaintext the inner protocol cannot take yet: it paused reading, or it
    /// does not exist yet (data in the handshake's last flight).
    held: Vec<u8>,
    lost: bool,
}

/// The wrapping protocol: TLS on the outside, the user's protocol inside. Built by
/// [`TlsServerFactory`](super::TlsServerFactory) and
/// [`TlsClientFactory`](super::TlsClientFactory).
pub struct TlsProtocol<P: Protocol> {
    core: Rc<RefCell<Core<P>>>,
}

impl<P: Protocol> TlsProtocol<P> {
    /// Wraps a fresh rustls session; counts a handshake in progress on `shard`.
    pub(crate) fn new(
        session: Session,
        shard: Rc<ShardTls<P>>,
        server_name: Option<String>,
        own_records: bool,
    ) -> TlsProtocol<P> {
        shard.in_progress.set(shard.in_progress.get() + 1);
        shard.stats.on_start();
        let slot = Slot {
            shard: shard.clone(),
            how: HandshakeEnd::Failed,
        };
        TlsProtocol {
            core: Rc::new(RefCell::new(Core {
                session,
                st: State {
                    shard,
                    phase: Phase::Fresh(slot),
                    server_name,
                    outer: None,
                    tls_error: None,
                    timed_out: false,
                    close_sent: false,
                    close_received: false,
                    close_handled: false,
                    close_wanted: false,
                    aborted: false,
                    outer_paused: false,
                    incoming: Vec::new(),
                    handover: if own_records {
                        Handover::OnFirstData
                    } else {
                        Handover::Never
                    },
                    held: Vec::new(),
                    lost: false,
                },
            })),
        }
    }

    /// Tells whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.core.borrow().session.is_handshaking()
    }

    /// Tells whether weft's record layer runs the session (the handshake is done
    /// and rustls handed the keys over).
    #[cfg(test)]
    pub(crate) fn uses_own_records(&self) -> bool {
        matches!(self.core.borrow().session, Session::Traffic(_))
    }

    /// Makes the record layer renew its send keys (or, in TLS 1.2, give up) after
    /// `records` more records instead of near the cipher's limit.
    #[cfg(test)]
    pub(crate) fn set_rekey_at(&self, records: u64) {
        if let Session::Traffic(t) = &mut self.core.borrow_mut().session {
            t.set_rekey_after(records);
        }
    }

    /// Calls `f` with the inner protocol, if it exists (after the handshake, before
    /// the connection is lost).
    pub fn with_inner<R>(&self, f: impl FnOnce(&mut P, &mut Transport) -> R) -> Option<R> {
        match &mut self.core.borrow_mut().st.phase {
            Phase::Open(inner) => Some(f(&mut inner.protocol, &mut inner.transport)),
            _ => None,
        }
    }
}

impl<P: Protocol> Core<P> {
    /// Runs rustls over `buf` (the connection's unfinished ciphertext followed by
    /// what just arrived) until it waits for the peer: decrypted records go to the
    /// inner protocol, handshake records and the inner protocol's output go to
    /// the engine. Returns how many bytes of `buf` rustls is done with.
    fn process(&mut self, buf: &mut [u8], out: &mut Out<'_>) -> usize {
        let mut used = 0;
        loop {
            if self.st.tls_error.is_some() || self.st.lost {
                return buf.len();
            }
            let (discard, next) = match &mut self.session {
                Session::Traffic(t) => return used + self.st.traffic(t, &mut buf[used..], out),
                Session::HandoverFailed => return buf.len(),
                Session::Server(c) => {
                    let (d, n) = step(&mut **c, &mut buf[used..], &mut self.st, out);
                    if self.st.handshaking() {
                        if let Some(name) = super::sni::take_requested_name() {
                            self.st.server_name = Some(name);
                        }
                    }
                    (d, n)
                }
                Session::Client(c) => step(&mut **c, &mut buf[used..], &mut self.st, out),
            };
            used += discard;
            match next {
                Next::Again => {}
                Next::Stop => return used,
                Next::HandOver => {
                    if let Err(e) = self.session.hand_over() {
                        // No keys to send an alert with.
                        self.st.fail(e, out);
                    }
                }
            }
        }
    }

    /// Feeds ciphertext from the engine to rustls and runs everything it unblocks.
    fn receive(&mut self, data: &[u8], out: &mut Out<'_>) {
        if self.st.lost || self.st.tls_error.is_some() || self.st.aborted {
            return;
        }
        // After the peer's close_notify nothing more is read: what follows it is
        // discarded.
        if !self.st.close_received {
            if self.st.incoming.is_empty() {
                // The usual case: whole records, decrypted in the shard's buffer.
                let mut buf = self.st.shard.scratch.take_input();
                buf.extend_from_slice(data);
                let used = self.process(&mut buf, out);
                if used < buf.len() && self.st.keeps_input() {
                    self.st.incoming = buf[used..].to_vec();
                }
                self.st.shard.scratch.put_input(buf);
            } else {
                let mut buf = std::mem::take(&mut self.st.incoming);
                buf.extend_from_slice(data);
                let used = self.process(&mut buf, out);
                self.st.keep_incoming(buf, used);
            }
        }
        self.run(out);
    }

    /// Lets rustls write what it can now: the inner protocol's output, a
    /// close_notify, a client's first flight.
    fn flush(&mut self, out: &mut Out<'_>) {
        if self.st.lost || self.st.tls_error.is_some() {
            return;
        }
        let mut buf = std::mem::take(&mut self.st.incoming);
        if self.st.close_received {
            // rustls reads no more records; hand it nothing.
            buf = Vec::new();
        }
        let used = self.process(&mut buf, out);
        self.st.keep_incoming(buf, used);
    }

    /// Makes every bit of progress there is: plaintext held back while the inner
    /// protocol paused, the peer's close, the inner protocol's output and close.
    fn run(&mut self, out: &mut Out<'_>) {
        loop {
            if self.st.tls_error.is_some() || self.st.lost {
                return;
            }
            let mut progressed = self.st.deliver_held();
            if self.st.close_received && !self.st.close_handled && self.st.held.is_empty() {
                self.st.close_handled = true;
                self.st.peer_closed();
                progressed = true;
            }
            self.flush(out);
            if self.st.close_wanted && !self.st.close_sent {
                // No point in the handshake to send close_notify from: just close.
                self.st.close_wanted = false;
                out.lose();
            }
            self.st.sync_pause(out);
            if !progressed {
                return;
            }
        }
    }
}

/// One step of rustls's state machine over `buf`: returns how many bytes of `buf`
/// it is done with and whether to call it again.
fn step<C: Records, P: Protocol>(
    conn: &mut C,
    buf: &mut [u8],
    st: &mut State<P>,
    out: &mut Out<'_>,
) -> (usize, Next) {
    let UnbufferedStatus { mut discard, state } = conn.records(buf);
    let result = match state {
        Err(e) => Err(e),
        Ok(ConnectionState::ReadTraffic(mut r)) => {
            let mut result = Ok(Next::Again);
            while let Some(record) = r.next_record() {
                match record {
                    Ok(record) => {
                        discard += record.discard;
                        st.plaintext(record.payload);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result
        }
        Ok(ConnectionState::EncodeTlsData(mut e)) => {
            let mut b = st.shard.scratch.take_output();
            let n = records::encode(&mut e, &mut b);
            out.send(&b[..n]);
            st.shard.scratch.put_output(b);
            Ok(Next::Again)
        }
        // Encoded records went to the engine as they were encoded.
        Ok(ConnectionState::TransmitTlsData(t)) => {
            t.done();
            Ok(Next::Again)
        }
        Ok(ConnectionState::PeerClosed) => {
            st.close_received = true;
            Ok(Next::Again)
        }
        Ok(ConnectionState::WriteTraffic(mut w)) => {
            st.write_out(&mut w, out);
            if st.hands_over() {
                Ok(Next::HandOver)
            } else {
                Ok(Next::Stop)
            }
        }
        // BlockedHandshake (more input needed), Closed, ReadEarlyData (never: no
        // config enables early data), and states of later rustls versions: wait
        // for the peer.
        Ok(_) => Ok(Next::Stop),
    };
    match result {
        Err(e) => {
            flush_alert(conn, st, out);
            st.fail(e, out);
            (buf.len(), Next::Stop)
        }
        Ok(next) => {
            if st.handshaking() && !conn.is_handshaking() {
                st.handshake_done(conn, out);
                return (discard, Next::Again);
            }
            (discard, next)
        }
    }
}

/// Sends the alert rustls queued when it failed. rustls hands out queued records
/// before it looks at any input, so it is given none (the input that failed must
/// not be read again: that would be a second fatal alert).
fn flush_alert<C: Records, P: Protocol>(conn: &mut C, st: &mut State<P>, out: &mut Out<'_>) {
    while conn.wants_write() {
        match conn.records(&mut []).state {
            Ok(ConnectionState::EncodeTlsData(mut e)) => {
                let mut b = st.shard.scratch.take_output();
                let n = records::encode(&mut e, &mut b);
                out.send(&b[..n]);
                st.shard.scratch.put_output(b);
            }
            _ => return,
        }
    }
}

impl<P: Protocol> State<P> {
    fn handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshaking { .. } | Phase::Fresh(_))
    }

    /// Whether rustls should hand the session over now that it waits: only a
    /// session in plain traffic (the inner protocol runs, no close either way).
    fn hands_over(&self) -> bool {
        self.handover == Handover::Due
            && matches!(self.phase, Phase::Open(_))
            && self.tls_error.is_none()
            && !self.close_sent
            && !self.close_received
            && !self.aborted
            && !self.lost
    }

    /// Opens the records in `buf` with weft's record layer, hands their plaintext
    /// to the inner protocol, then seals what it wrote. Returns how many bytes of
    /// `buf` are done with.
    fn traffic(&mut self, t: &mut Traffic, buf: &mut [u8], out: &mut Out<'_>) -> usize {
        let mut used = 0;
        while !self.close_received && !self.lost && self.tls_error.is_none() {
            match t.open(&mut buf[used..]) {
                Ok(None) => break,
                Ok(Some(opened)) => {
                    match opened.content {
                        Content::Data(r) => self.plaintext(&buf[used..][r]),
                        Content::Nothing => {}
                        Content::Close => self.close_received = true,
                    }
                    used += opened.len;
                }
                Err(f) => {
                    self.fail_traffic(t, f, out);
                    return buf.len();
                }
            }
        }
        // The key update the peer asked for goes out even with nothing to send.
        let mut b = self.shard.scratch.take_output();
        let owed = t.seal_key_update(&mut b);
        if let Ok(n) = owed {
            out.send(&b[..n]);
        }
        self.shard.scratch.put_output(b);
        if let Err(f) = owed {
            self.fail_traffic(t, f, out);
            return buf.len();
        }
        self.write_out(t, out);
        if self.close_received || self.tls_error.is_some() || self.lost {
            // Nothing after the peer's close_notify (or a failure) is read.
            return buf.len();
        }
        used
    }

    /// A failure in the record layer: the alert it calls for, then the close.
    fn fail_traffic(&mut self, t: &mut Traffic, f: Failure, out: &mut Out<'_>) {
        if let Some(alert) = f.alert {
            let mut b = self.shard.scratch.take_output();
            if let Ok(n) = t.seal_alert(alert, &mut b) {
                out.send(&b[..n]);
            }
            self.shard.scratch.put_output(b);
        }
        self.fail(f.error, out);
    }

    /// Whether ciphertext left over after processing is worth keeping.
    fn keeps_input(&self) -> bool {
        self.tls_error.is_none() && !self.close_received && !self.lost
    }

    /// Keeps what rustls is not done with of `buf`, or frees `buf`.
    fn keep_incoming(&mut self, mut buf: Vec<u8>, used: usize) {
        if used < buf.len() && self.keeps_input() {
            buf.drain(..used);
            self.incoming = buf;
        }
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

    /// A TLS error (the alert is sent): close, remember why.
    fn fail(&mut self, e: rustls::Error, out: &mut Out<'_>) {
        tracing::debug!("tls: {e}");
        if self.tls_error.is_none() {
            self.tls_error = Some(e);
        }
        self.end_handshake(HandshakeEnd::Failed);
        self.incoming = Vec::new();
        self.held = Vec::new();
        out.lose();
    }

    /// The handshake finished: build the inner protocol and call its
    /// `connection_made`.
    fn handshake_done(&mut self, common: &CommonState, out: &mut Out<'_>) {
        if !self.end_handshake(HandshakeEnd::Completed) {
            return;
        }
        let Some(outer) = &self.outer else {
            return;
        };
        let (peer, host, reactor, limits) = (
            outer.peer.clone(),
            outer.host.clone(),
            outer.reactor.clone(),
            outer.limits,
        );
        let Some(mut protocol) = (self.shard.build)(&peer) else {
            self.close_wanted = true;
            return;
        };
        let mut transport = Transport::new(ConnShared::new(limits), reactor, peer, host);
        transport.tls = Some(Rc::new(TlsInfo::of(common, self.server_name.clone())));
        protocol.connection_made(&mut transport);
        self.phase = Phase::Open(Inner {
            protocol,
            transport,
        });
        self.sync_pause(out);
    }

    /// A decrypted record: to the inner protocol if it reads, else held for it.
    fn plaintext(&mut self, data: &[u8]) {
        self.handover.data_moved();
        match &mut self.phase {
            Phase::Open(inner) if self.held.is_empty() && !inner.transport.reading_paused() => {
                if !inner.transport.disconnecting() {
                    inner.protocol.data_received(data, &mut inner.transport);
                }
            }
            // No inner protocol will ever read it.
            Phase::Ended => {}
            _ => self.held.extend_from_slice(data),
        }
    }

    /// Hands held plaintext to the inner protocol if it reads now. Returns true if
    /// anything was delivered.
    fn deliver_held(&mut self) -> bool {
        let Phase::Open(inner) = &mut self.phase else {
            return false;
        };
        if self.held.is_empty() || inner.transport.reading_paused() {
            return false;
        }
        let held = std::mem::take(&mut self.held);
        if !inner.transport.disconnecting() {
            inner.protocol.data_received(&held, &mut inner.transport);
        }
        true
    }

    /// The peer's close_notify, after every byte before it was delivered.
    fn peer_closed(&mut self) {
        match &mut self.phase {
            Phase::Open(inner) => {
                if inner.protocol.half_closeable() {
                    inner.protocol.read_connection_lost(&mut inner.transport);
                } else {
                    inner.transport.lose_connection();
                }
            }
            _ => self.close_wanted = true,
        }
    }

    /// Encrypts what the inner protocol wrote, in records of at most 16 KiB, and
    /// carries out its close and abort (or the close owed with no inner protocol).
    fn write_out(&mut self, w: &mut impl Sealer, out: &mut Out<'_>) {
        let losing = match &self.phase {
            Phase::Open(inner) => {
                let shared = Rc::clone(&inner.transport.shared);
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
                    return;
                }
                if !shared.out.borrow().is_empty() {
                    self.encrypt_all(w, &shared, out);
                }
                let losing = shared.machine.borrow().losing();
                losing
            }
            _ => self.close_wanted && !self.close_sent,
        };
        if losing && self.tls_error.is_none() && !self.close_sent {
            let mut b = self.shard.scratch.take_output();
            let n = w.seal_close_notify(&mut b);
            out.send(&b[..n]);
            self.shard.scratch.put_output(b);
            self.close_sent = true;
            out.lose();
        }
    }

    fn encrypt_all(&mut self, w: &mut impl Sealer, shared: &ConnShared, out: &mut Out<'_>) {
        self.handover.data_moved();
        let mut b = self.shard.scratch.take_output();
        let mut plain = shared.out.borrow_mut();
        while !plain.is_empty() {
            let front = plain.front();
            let n = front.len().min(MAX_PLAINTEXT);
            match w.seal_data(&front[..n], &mut b) {
                Ok(len) => {
                    out.send(&b[..len]);
                    plain.consume(n);
                }
                // The keys are used up (TLS 1.2 only; TLS 1.3 renews them).
                Err(e) => {
                    plain.clear();
                    drop(plain);
                    self.shard.scratch.put_output(b);
                    self.fail(e, out);
                    return;
                }
            }
        }
        drop(plain);
        self.shard.scratch.put_output(b);
    }

    /// Pauses the engine's reading while the inner protocol does not read or
    /// plaintext waits for it; resumes it otherwise.
    fn sync_pause(&mut self, out: &mut Out<'_>) {
        let paused = match &self.phase {
            Phase::Open(inner) => inner.transport.reading_paused() || !self.held.is_empty(),
            _ => false,
        };
        if paused != self.outer_paused {
            self.outer_paused = paused;
            if paused {
                out.pause_reading();
            } else {
                out.resume_reading();
            }
        }
    }

    fn lost(&mut self, reason: &Reason) -> Option<(Inner<P>, Reason)> {
        self.lost = true;
        self.incoming = Vec::new();
        self.held = Vec::new();
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

/// What encrypts the inner protocol's output: rustls while it runs the session,
/// weft's record layer after the handover.
trait Sealer {
    /// Encrypts `plain` (at most one record's worth) into `buf`; returns the length.
    fn seal_data(&mut self, plain: &[u8], buf: &mut Vec<u8>) -> Result<usize, rustls::Error>;
    /// Encrypts a close_notify alert into `buf`; returns the length.
    fn seal_close_notify(&mut self, buf: &mut Vec<u8>) -> usize;
}

impl<S> Sealer for WriteTraffic<'_, S> {
    fn seal_data(&mut self, plain: &[u8], buf: &mut Vec<u8>) -> Result<usize, rustls::Error> {
        records::encrypt(self, plain, buf).map_err(|e| rustls::Error::General(e.to_string()))
    }
    fn seal_close_notify(&mut self, buf: &mut Vec<u8>) -> usize {
        records::close_notify(self, buf)
    }
}

impl Sealer for Traffic {
    fn seal_data(&mut self, plain: &[u8], buf: &mut Vec<u8>) -> Result<usize, rustls::Error> {
        Traffic::seal_data(self, plain, buf).map_err(|f| f.error)
    }
    fn seal_close_notify(&mut self, buf: &mut Vec<u8>) -> usize {
        let pending = self.seal_key_update(buf).unwrap_or(0);
        pending
            + self
                .seal_alert(rustls::AlertDescription::CloseNotify, &mut buf[pending..])
                .unwrap_or(0)
    }
}

/// Fires when the handshake is late: aborts it (the peer gets a reset).
fn handshake_timeout<P: Protocol>(core: Weak<RefCell<Core<P>>>) {
    let Some(core) = core.upgrade() else { return };
    let Ok(mut c) = core.try_borrow_mut() else {
        return;
    };
    let st = &mut c.st;
    if matches!(st.phase, Phase::Handshaking { .. }) {
        st.end_handshake(HandshakeEnd::TimedOut);
        st.timed_out = true;
        st.incoming = Vec::new();
        if let Some(o) = &st.outer {
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
        let Phase::Open(inner) = &c.st.phase else {
            return Poll::Ready(());
        };
        inner.transport.shared.set_waker(cx.waker());
        if let Some(h) = c.st.outer.as_ref().map(|o| o.handle.clone()) {
            c.run(&mut Out::Later(&h));
        }
        Poll::Pending
    }
}

impl<P: Protocol> Protocol for TlsProtocol<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        let weak = Rc::downgrade(&self.core);
        let mut c = self.core.borrow_mut();
        c.st.outer = Some(Outer {
            handle: t.handle(),
            peer: t.peer().clone(),
            host: t.host().clone(),
            reactor: t.reactor().clone(),
            limits: t.output_limits(),
        });
        let timeout = c.st.shard.handshake_timeout;
        if let Phase::Fresh(slot) = std::mem::replace(&mut c.st.phase, Phase::Ended) {
            let timer = t
                .reactor()
                .call_later(timeout, move || handshake_timeout(weak));
            c.st.phase = Phase::Handshaking { slot, timer };
        }
        // A client's ClientHello.
        c.flush(&mut Out::Now(t));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let was_open = matches!(self.core.borrow().st.phase, Phase::Open(_));
        self.core.borrow_mut().receive(data, &mut Out::Now(t));
        let is_open = matches!(self.core.borrow().st.phase, Phase::Open(_));
        if is_open && !was_open {
            t.reactor().spawn_local(Pump {
                core: self.core.clone(),
            });
        }
    }

    fn connection_lost(&mut self, reason: Reason) {
        let ended = self.core.borrow_mut().st.lost(&reason);
        if let Some((mut inner, why)) = ended {
            inner.protocol.connection_lost(why);
        }
    }

    fn pause_producing(&mut self, t: &mut Transport) {
        let mut c = self.core.borrow_mut();
        if let Phase::Open(inner) = &mut c.st.phase {
            inner.protocol.pause_producing(&mut inner.transport);
        }
        c.run(&mut Out::Now(t));
    }

    fn resume_producing(&mut self, t: &mut Transport) {
        let mut c = self.core.borrow_mut();
        if let Phase::Open(inner) = &mut c.st.phase {
            inner.protocol.resume_producing(&mut inner.transport);
        }
        c.run(&mut Out::Now(t));
    }

    /// The server is stopping: the inner protocol is told, and its close (by
    /// default `lose_connection`) sends close_notify after what it wrote, then the
    /// FIN, so the peer sees a clean TLS close rather than a truncation. A session
    /// still in its handshake has no protocol to ask: it is closed as by default.
    fn server_stopping(&mut self, t: &mut Transport) {
        let mut c = self.core.borrow_mut();
        match &mut c.st.phase {
            Phase::Open(inner) => inner.protocol.server_stopping(&mut inner.transport),
            _ => {
                drop(c);
                t.lose_connection();
                return;
            }
        }
        c.run(&mut Out::Now(t));
    }
}
