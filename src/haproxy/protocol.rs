//! `HaproxyProtocol`: the wrapping protocol that reads the PROXY header before the
//! user's protocol exists, then steps aside (Twisted's `HAProxyProtocolWrapper`).
//!
//! ```text
//!   accepted ─► Reading { decoder, timer }
//!                 │ header ─► build the inner protocol for the header's source
//!                 │           address; connection_made, then the bytes after the
//!                 │           header, on an inner Transport whose peer() and host()
//!                 │           are the header's addresses
//!                 │ junk, malformed, oversized, timer fired ─► close, log, count
//!                 ▼
//!               Open { protocol, transport } ─► every callback passed straight on
//!                 │ engine's connection_lost
//!                 ▼
//!               Ended
//! ```
//!
//! Unlike the TLS wrapper, nothing is transformed after the header: the inner
//! [`Transport`] shares the engine's connection state (output buffer, close
//! machine, wake-ups), so the inner protocol's writes, closes and handles go to the
//! engine directly and no pump task is needed. Only `peer()` and `host()` differ.

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::address::Address;
use crate::clock::DelayedCall;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::Transport;

use super::header::{ProxyHeaderDecoder, ProxyHeaderEvent};
use super::reject::RejectReason;
use super::stats::{HaproxyStats, ShardCounts};

/// Builds the inner protocol for the client's address (the wrapped factory's
/// `build_protocol`).
pub(crate) type BuildInner<P> = Rc<dyn Fn(&Address) -> Option<P>>;

/// What every connection of one shard's wrapping factory shares.
pub(crate) struct ShardProxy<P> {
    pub(crate) build: BuildInner<P>,
    pub(crate) stats: Arc<HaproxyStats>,
    /// This shard's cells of `stats`, taken on the first connection.
    pub(crate) counts: OnceCell<Arc<ShardCounts>>,
    pub(crate) header_timeout: Duration,
    pub(crate) max_v2_length: usize,
}

impl<P> ShardProxy<P> {
    /// Returns this shard's counters (the factory, and so this, lives on one shard).
    fn counts(&self, shard: usize) -> &Arc<ShardCounts> {
        self.counts.get_or_init(|| self.stats.shard(shard))
    }
}

enum Phase<P> {
    /// Before `connection_made`.
    Fresh,
    /// The header is being read; the timer closes a connection that is too slow.
    Reading {
        decoder: ProxyHeaderDecoder,
        timer: Option<DelayedCall>,
    },
    /// The user's protocol runs.
    Open { protocol: P, transport: Transport },
    /// Refused, or lost.
    Ended,
}

/// The wrapping protocol: the PROXY header first, then the user's protocol `P`.
/// Built by [`HaproxyServerFactory`](super::HaproxyServerFactory).
pub struct HaproxyProtocol<P: Protocol> {
    shard: Rc<ShardProxy<P>>,
    phase: Phase<P>,
}

impl<P: Protocol> HaproxyProtocol<P> {
    pub(crate) fn new(shard: Rc<ShardProxy<P>>) -> HaproxyProtocol<P> {
        HaproxyProtocol {
            shard,
            phase: Phase::Fresh,
        }
    }

    /// Calls `f` with the inner protocol and its transport, once the header is read
    /// (and before the connection is lost).
    pub fn with_inner<R>(&mut self, f: impl FnOnce(&mut P, &mut Transport) -> R) -> Option<R> {
        match &mut self.phase {
            Phase::Open {
                protocol,
                transport,
            } => Some(f(protocol, transport)),
            _ => None,
        }
    }

    /// Ends the header phase: refuses the connection with `why`.
    fn refuse(&mut self, t: &mut Transport, why: &super::ProxyHeaderError) {
        if let Phase::Reading {
            timer: Some(timer), ..
        } = &self.phase
        {
            let _ = timer.cancel();
        }
        self.phase = Phase::Ended;
        self.shard
            .counts(t.shard())
            .on_rejected(RejectReason::from(why));
        tracing::info!(shard = t.shard(), peer = %t.peer(), "haproxy: closing the connection: {why}");
        t.abort_connection();
    }

    /// The header is in: builds the inner protocol and hands it the rest.
    fn open(
        &mut self,
        header: super::ProxyHeader,
        rest: Vec<u8>,
        timer: Option<DelayedCall>,
        t: &mut Transport,
    ) {
        if let Some(timer) = timer {
            let _ = timer.cancel();
        }
        self.shard.counts(t.shard()).on_accepted();
        let (peer, host) = match header.addresses {
            Some(a) => (a.source, a.destination),
            // LOCAL, UNKNOWN, UNSPEC: the balancer speaks for itself.
            None => (t.peer().clone(), t.host().clone()),
        };
        let Some(mut protocol) = (self.shard.build)(&peer) else {
            self.phase = Phase::Ended;
            t.lose_connection();
            return;
        };
        let mut transport = Transport::new(Rc::clone(&t.shared), t.reactor().clone(), peer, host);
        transport.tls = t.tls.clone();
        t.shared
            .machine
            .borrow_mut()
            .set_backpressure(protocol.backpressure());
        protocol.connection_made(&mut transport);
        // The bytes that came with the header were read already: they are delivered
        // even if connection_made paused reading (as bytes of one read are), but not
        // after it asked to close (nothing is parsed after a close request).
        if !rest.is_empty() && !transport.disconnecting() {
            protocol.data_received(&rest, &mut transport);
        }
        self.phase = Phase::Open {
            protocol,
            transport,
        };
    }
}

impl<P: Protocol> Protocol for HaproxyProtocol<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        let handle = t.handle();
        let (shard, peer) = (t.shard(), t.peer().clone());
        let counts = Arc::clone(self.shard.counts(shard));
        let timer = t.reactor().call_later(self.shard.header_timeout, move || {
            if handle.connected() {
                counts.on_rejected(RejectReason::Timeout);
                tracing::info!(shard, %peer, "haproxy: closing the connection: no PROXY header in time");
                handle.abort_connection();
            }
        });
        self.phase = Phase::Reading {
            decoder: ProxyHeaderDecoder::with_max_v2_length(self.shard.max_v2_length),
            timer: Some(timer),
        };
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        match &mut self.phase {
            Phase::Open {
                protocol,
                transport,
            } => protocol.data_received(data, transport),
            Phase::Reading { decoder, timer } => {
                decoder.feed(data);
                match decoder.next_event() {
                    ProxyHeaderEvent::Incomplete => {}
                    ProxyHeaderEvent::Failed(e) => self.refuse(t, &e),
                    ProxyHeaderEvent::Header(header, rest) => {
                        let timer = timer.take();
                        self.open(header, rest, timer, t);
                    }
                }
            }
            Phase::Fresh | Phase::Ended => {}
        }
    }

    fn connection_lost(&mut self, reason: Reason) {
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::Open { mut protocol, .. } => protocol.connection_lost(reason),
            Phase::Reading {
                timer: Some(timer), ..
            } => {
                let _ = timer.cancel();
            }
            _ => {}
        }
    }

    fn pause_producing(&mut self, _t: &mut Transport) {
        if let Phase::Open {
            protocol,
            transport,
        } = &mut self.phase
        {
            protocol.pause_producing(transport);
        }
    }

    fn resume_producing(&mut self, _t: &mut Transport) {
        if let Phase::Open {
            protocol,
            transport,
        } = &mut self.phase
        {
            protocol.resume_producing(transport);
        }
    }

    fn half_closeable(&self) -> bool {
        match &self.phase {
            Phase::Open { protocol, .. } => protocol.half_closeable(),
            _ => false,
        }
    }

    fn read_connection_lost(&mut self, t: &mut Transport) {
        match &mut self.phase {
            Phase::Open {
                protocol,
                transport,
            } => protocol.read_connection_lost(transport),
            _ => t.lose_connection(),
        }
    }

    fn server_stopping(&mut self, t: &mut Transport) {
        match &mut self.phase {
            Phase::Open {
                protocol,
                transport,
            } => protocol.server_stopping(transport),
            _ => t.lose_connection(),
        }
    }
}
