//! Connection limits that hold across every shard (Twisted's
//! `LimitTotalConnectionsFactory` with an overflow protocol).
//!
//! The count is one atomic shared by the shards, touched once per accepted and once
//! per closed connection, never per message. Over the limit the connection gets the
//! overflow protocol, which writes `Too many connections, try later` and CRLF and
//! closes (the seeds' example).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::address::Address;
use crate::factory::Factory;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::Transport;

/// What an over-the-limit connection is told before it is closed.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"Too many connections, try later\r\n";

/// A connection count shared by every shard's [`LimitTotalConnections`].
#[derive(Debug, Default)]
pub struct ConnectionCounter {
    open: AtomicUsize,
}

impl ConnectionCounter {
    /// Returns the connections counted now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// One counted connection; its slot is given back when this is dropped.
pub struct Slot(Arc<ConnectionCounter>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Wraps a factory so that at most `max` connections are open across all shards.
pub struct LimitTotalConnections<F> {
    inner: F,
    max: usize,
    counter: Arc<ConnectionCounter>,
}

impl<F> LimitTotalConnections<F> {
    /// Wraps `inner`; `counter` must be the same for every shard.
    pub fn new(inner: F, max: usize, counter: Arc<ConnectionCounter>) -> Self {
        LimitTotalConnections {
            inner,
            max,
            counter,
        }
    }
}

/// The protocol of a limited factory: the wrapped one, or the overflow reply.
pub enum Limited<P> {
    /// Within the limit.
    Admitted(P, Slot),
    /// Over the limit: replies and closes.
    Overflow,
}

impl<F: Factory> Factory for LimitTotalConnections<F> {
    type Protocol = Limited<F::Protocol>;

    fn build_protocol(&mut self, peer: &Address) -> Option<Self::Protocol> {
        let before = self.counter.open.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(Arc::clone(&self.counter));
        if before >= self.max {
            tracing::info!(%peer, max = self.max, "refusing connection: too many connections");
            return Some(Limited::Overflow);
        }
        self.inner
            .build_protocol(peer)
            .map(|p| Limited::Admitted(p, slot))
    }

    fn start_factory(&mut self) {
        self.inner.start_factory();
    }

    fn stop_factory(&mut self) {
        self.inner.stop_factory();
    }
}

impl<P: Protocol> Protocol for Limited<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        match self {
            Limited::Admitted(p, _) => p.connection_made(t),
            Limited::Overflow => {
                t.write(TOO_MANY_CONNECTIONS);
                t.lose_connection();
            }
        }
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if let Limited::Admitted(p, _) = self {
            p.data_received(data, t);
        }
    }

    fn connection_lost(&mut self, reason: Reason) {
        if let Limited::Admitted(p, _) = self {
            p.connection_lost(reason);
        }
    }

    fn pause_producing(&mut self, t: &mut Transport) {
        if let Limited::Admitted(p, _) = self {
            p.pause_producing(t);
        }
    }

    fn resume_producing(&mut self, t: &mut Transport) {
        if let Limited::Admitted(p, _) = self {
            p.resume_producing(t);
        }
    }

    fn half_closeable(&self) -> bool {
        match self {
            Limited::Admitted(p, _) => p.half_closeable(),
            Limited::Overflow => false,
        }
    }

    fn read_connection_lost(&mut self, t: &mut Transport) {
        match self {
            Limited::Admitted(p, _) => p.read_connection_lost(t),
            Limited::Overflow => t.lose_connection(),
        }
    }

    fn server_stopping(&mut self, t: &mut Transport) {
        match self {
            Limited::Admitted(p, _) => p.server_stopping(t),
            Limited::Overflow => t.lose_connection(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::wire::{Echo, SimpleFactory};
    use crate::testing::StringTransport;

    #[test]
    fn the_connection_over_the_limit_is_told_and_closed_and_slots_free_on_drop() {
        let counter = Arc::new(ConnectionCounter::default());
        let mut f = LimitTotalConnections::new(SimpleFactory::new(|| Echo), 1, counter.clone());
        let peer = Address::Unix(None);
        let first = f.build_protocol(&peer).unwrap();
        let mut second = f.build_protocol(&peer).unwrap();
        let mut t = StringTransport::new();
        second.connection_made(&mut t);
        assert_eq!(t.value(), TOO_MANY_CONNECTIONS);
        assert!(t.disconnecting());
        drop(second);
        assert_eq!(counter.open(), 1);
        drop(first);
        assert_eq!(counter.open(), 0);
        assert!(matches!(
            f.build_protocol(&peer),
            Some(Limited::Admitted(..))
        ));
    }
}
