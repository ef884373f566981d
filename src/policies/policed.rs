//! The wrapping factory and protocol that apply a service's policies.
//!
//! [`PolicyFactory`] is Twisted's `WrappingFactory` and [`Policed`] its
//! `ProtocolWrapper`: admission happens in `build_protocol` (the caps, counted
//! across shards), and the admitted connection carries its own idle timer and rate
//! buckets, which are shard-local. A refused connection is told why in one line and
//! closed, and one log line (rate-limited per shard) names the peer and the reason.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::counts::{Admission, ConnectionCounts, Refusal};
use super::log_limit::LogLimiter;
use super::settings::{PolicySettings, PolicyStats};
use super::throttle::RateLimit;
use super::timeout::{IdleTimeout, OnTimeout};
use crate::address::Address;
use crate::factory::Factory;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::Transport;

/// What a connection over the total cap is told (the seeds' overflow message).
pub const TOO_MANY_CONNECTIONS: &[u8] = b"Too many connections, try later\r\n";
/// What a connection over its peer's cap is told.
pub const TOO_MANY_FROM_PEER: &[u8] = b"Too many connections from your address, try later\r\n";

/// Shard-local state shared by a factory and its connections.
struct ShardState {
    stats: Arc<PolicyStats>,
    log: RefCell<LogLimiter>,
    epoch: Instant,
}

impl ShardState {
    fn log_line(&self, line: impl FnOnce(u64)) {
        let now = self.epoch.elapsed().as_secs_f64();
        if let Some(suppressed) = self.log.borrow_mut().admit(now) {
            line(suppressed);
        }
    }
}

/// Wraps a factory with the policies of [`PolicySettings`]; one per shard, all
/// sharing the same settings, counts and stats.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use weft::policies::{ConnectionCounts, PolicyFactory, PolicySettings, PolicyStats};
/// use weft::services::wire::{Echo, SimpleFactory};
/// let settings = Arc::new(PolicySettings::default());
/// settings.set_max_connections_per_peer(Some(5));
/// let counts = Arc::new(ConnectionCounts::default());
/// let stats = Arc::new(PolicyStats::default());
/// let build = move |_shard: usize| {
///     PolicyFactory::new(SimpleFactory::new(|| Echo), settings.clone(), counts.clone(), stats.clone())
/// };
/// # let _ = build;
/// ```
pub struct PolicyFactory<F> {
    inner: F,
    settings: Arc<PolicySettings>,
    counts: Arc<ConnectionCounts>,
    shard: Rc<ShardState>,
}

impl<F> PolicyFactory<F> {
    /// Wraps `inner`; `settings`, `counts` and `stats` are shared by every shard.
    pub fn new(
        inner: F,
        settings: Arc<PolicySettings>,
        counts: Arc<ConnectionCounts>,
        stats: Arc<PolicyStats>,
    ) -> Self {
        PolicyFactory {
            inner,
            settings,
            counts,
            shard: Rc::new(ShardState {
                stats,
                log: RefCell::new(LogLimiter::default()),
                epoch: Instant::now(),
            }),
        }
    }
}

/// A connection under a [`PolicyFactory`].
pub enum Policed<P> {
    /// Admitted: the wrapped protocol with its timer and buckets.
    Admitted(Box<Admitted<P>>),
    /// Refused: told why, then closed.
    Refused(Refusal),
}

/// An admitted connection's wrapped protocol and per-connection policies.
pub struct Admitted<P> {
    inner: P,
    _admission: Admission,
    shard: Rc<ShardState>,
    idle_period: Option<std::time::Duration>,
    idle: Option<IdleTimeout>,
    /// The rates, read at admission; their buckets start at `connection_made`,
    /// where the shard's clock is at hand.
    rates: (Option<u64>, Option<u64>),
    read: Option<RateLimit>,
    write: Option<RateLimit>,
    /// Set while reading is paused by a bucket, so that one pause has one resume.
    throttled: Rc<Cell<bool>>,
    /// Set while the producer is held by a write bucket, so that one hold has one
    /// release.
    producer_held: Rc<Cell<bool>>,
    /// The settings, for the total rates, when one was set at admission.
    totals: Option<Arc<PolicySettings>>,
}

impl<F: Factory> Factory for PolicyFactory<F> {
    type Protocol = Policed<F::Protocol>;

    fn build_protocol(&mut self, peer: &Address) -> Option<Self::Protocol> {
        let s = &self.settings;
        let ip = peer.socket_addr().map(|a| a.ip());
        let admission =
            match self
                .counts
                .admit(ip, s.max_connections(), s.max_connections_per_peer())
            {
                Ok(a) => a,
                Err(why) => {
                    let stats = &self.shard.stats;
                    PolicyStats::count(match why {
                        Refusal::TooManyConnections => &stats.refused_total,
                        Refusal::TooManyFromPeer => &stats.refused_peer,
                    });
                    self.shard.log_line(|suppressed| {
                        tracing::info!(%peer, suppressed, "refusing connection: {why}");
                    });
                    return Some(Policed::Refused(why));
                }
            };
        let inner = self.inner.build_protocol(peer)?;
        Some(Policed::Admitted(Box::new(Admitted {
            inner,
            _admission: admission,
            shard: Rc::clone(&self.shard),
            idle_period: s.idle_timeout(),
            idle: None,
            rates: (s.read_rate(), s.write_rate()),
            read: None,
            write: None,
            throttled: Rc::new(Cell::new(false)),
            producer_held: Rc::new(Cell::new(false)),
            totals: (s.total_read_rate().is_some() || s.total_write_rate().is_some())
                .then(|| Arc::clone(s)),
        })))
    }

    fn start_factory(&mut self) {
        self.inner.start_factory();
    }

    fn stop_factory(&mut self) {
        self.inner.stop_factory();
    }
}

impl<P: Protocol> Admitted<P> {
    /// Runs one callback of the wrapped protocol, then charges what it wrote to the
    /// write bucket.
    fn call(&mut self, t: &mut Transport, f: impl FnOnce(&mut P, &mut Transport)) {
        if self.write.is_none() && self.idle.is_none() && self.totals.is_none() {
            return f(&mut self.inner, t);
        }
        let before = t.buffered();
        f(&mut self.inner, t);
        let written = t.buffered().saturating_sub(before);
        if written > 0 {
            if let Some(idle) = &mut self.idle {
                idle.reset_timeout();
            }
            let now = t.reactor().seconds();
            if let Some(wait) = self.write.as_mut().and_then(|b| b.spend(written, now)) {
                self.hold_writes(t, wait);
            }
            if let Some(wait) = self
                .totals
                .as_ref()
                .and_then(|s| s.spend_total_write(written))
            {
                self.hold_writes(t, wait);
            }
        }
    }

    /// Over a write rate: pauses the protocol as a producer until `wait` has passed
    /// (Twisted's `throttleWrites`, which pauses the registered producer), so a pure
    /// producer such as chargen slows down, and pauses reading, so a protocol that
    /// writes in answer to reads (echo) slows down too. After `wait` the producer
    /// is released and resumed once its output is empty, as after a watermark pause.
    fn hold_writes(&mut self, t: &mut Transport, wait: std::time::Duration) {
        if t.throttle_producer() {
            self.inner.pause_producing(t);
        }
        if !self.producer_held.replace(true) {
            let handle = t.handle();
            let held = Rc::clone(&self.producer_held);
            t.reactor().call_later(wait, move || {
                held.set(false);
                handle.release_producer();
            });
        }
        self.pause_for(t, wait);
    }

    /// Pauses reading for `wait` (unless already paused by a bucket or by the
    /// protocol itself), then resumes it.
    fn pause_for(&mut self, t: &mut Transport, wait: std::time::Duration) {
        if self.throttled.get() || t.reading_paused() {
            return;
        }
        PolicyStats::count(&self.shard.stats.throttled);
        tracing::debug!(shard = t.shard(), peer = %t.peer(), ?wait, "throttling: reading paused");
        self.throttled.set(true);
        t.pause_reading();
        let handle = t.handle();
        let throttled = Rc::clone(&self.throttled);
        t.reactor().call_later(wait, move || {
            throttled.set(false);
            handle.resume_reading();
        });
    }
}

impl<P: Protocol> Protocol for Policed<P> {
    fn connection_made(&mut self, t: &mut Transport) {
        let a = match self {
            Policed::Admitted(a) => a,
            Policed::Refused(why) => {
                t.write(match why {
                    Refusal::TooManyConnections => TOO_MANY_CONNECTIONS,
                    Refusal::TooManyFromPeer => TOO_MANY_FROM_PEER,
                });
                t.lose_connection();
                return;
            }
        };
        let now = t.reactor().seconds();
        a.read = a.rates.0.map(|r| RateLimit::new(r, now));
        a.write = a.rates.1.map(|r| RateLimit::new(r, now));
        if let Some(period) = a.idle_period {
            let shard = Rc::clone(&a.shard);
            let peer = t.peer().clone();
            let index = t.shard();
            let mut idle = IdleTimeout::new(t, OnTimeout::Abort, move || {
                PolicyStats::count(&shard.stats.timed_out);
                shard.log_line(|suppressed| {
                    tracing::info!(shard = index, %peer, suppressed, "closing connection: idle timeout");
                });
            });
            idle.set_timeout(Some(period));
            a.idle = Some(idle);
        }
        a.call(t, |p, t| p.connection_made(t));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let Policed::Admitted(a) = self else { return };
        if let Some(idle) = &mut a.idle {
            idle.reset_timeout();
        }
        if let Some(b) = &mut a.read {
            if let Some(wait) = b.spend(data.len(), t.reactor().seconds()) {
                a.pause_for(t, wait);
            }
        }
        if let Some(wait) = a
            .totals
            .as_ref()
            .and_then(|s| s.spend_total_read(data.len()))
        {
            a.pause_for(t, wait);
        }
        a.call(t, |p, t| p.data_received(data, t));
    }

    fn connection_lost(&mut self, reason: Reason) {
        if let Policed::Admitted(a) = self {
            a.idle = None;
            a.inner.connection_lost(reason);
        }
    }

    fn pause_producing(&mut self, t: &mut Transport) {
        if let Policed::Admitted(a) = self {
            a.call(t, |p, t| p.pause_producing(t));
        }
    }

    fn resume_producing(&mut self, t: &mut Transport) {
        if let Policed::Admitted(a) = self {
            a.call(t, |p, t| p.resume_producing(t));
        }
    }

    fn half_closeable(&self) -> bool {
        match self {
            Policed::Admitted(a) => a.inner.half_closeable(),
            Policed::Refused(_) => false,
        }
    }

    fn read_connection_lost(&mut self, t: &mut Transport) {
        match self {
            Policed::Admitted(a) => a.call(t, |p, t| p.read_connection_lost(t)),
            Policed::Refused(_) => t.lose_connection(),
        }
    }

    fn server_stopping(&mut self, t: &mut Transport) {
        match self {
            Policed::Admitted(a) => a.call(t, |p, t| p.server_stopping(t)),
            Policed::Refused(_) => t.lose_connection(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::wire::{Echo, SimpleFactory};
    use crate::testing::StringTransport;
    use std::time::Duration;

    fn factory(settings: PolicySettings) -> PolicyFactory<impl Factory<Protocol = Echo>> {
        PolicyFactory::new(
            SimpleFactory::new(|| Echo),
            Arc::new(settings),
            Arc::default(),
            Arc::default(),
        )
    }

    fn peer() -> Address {
        Address::Tcp("192.168.1.1:54321".parse().unwrap())
    }

    #[test]
    fn idle_timeout_aborts_a_silent_connection_and_spares_a_chatty_one() {
        let s = PolicySettings::default();
        s.set_idle_timeout(Some(Duration::from_secs(10)));
        let mut f = factory(s);
        let (mut silent, mut chatty) = (
            f.build_protocol(&peer()).unwrap(),
            f.build_protocol(&peer()).unwrap(),
        );
        let (mut ts, mut tc) = (StringTransport::new(), StringTransport::new());
        silent.connection_made(&mut ts);
        chatty.connection_made(&mut tc);
        for _ in 0..5 {
            ts.clock().advance(Duration::from_secs(4));
            tc.clock().advance(Duration::from_secs(4));
            chatty.data_received(b"x", &mut tc);
        }
        assert!(ts.aborted(), "silent for 20 s with a 10 s timeout");
        assert!(!tc.aborted() && !tc.disconnecting());
        assert_eq!(f.shard.stats.timed_out(), 1);
    }

    #[test]
    fn a_producer_over_the_write_rate_is_paused_and_resumed_only_after_the_wait() {
        use crate::connection::machine::Flow;
        use std::cell::RefCell;
        /// Writes 1500 bytes at connection_made and records its flow calls.
        struct Producer(Rc<RefCell<Vec<&'static str>>>);
        impl Protocol for Producer {
            fn connection_made(&mut self, t: &mut Transport) {
                t.write(&[b'x'; 1500]);
            }
            fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
            fn pause_producing(&mut self, _: &mut Transport) {
                self.0.borrow_mut().push("pause");
            }
        }
        let calls = Rc::new(RefCell::new(Vec::new()));
        let s = PolicySettings::default();
        s.set_write_rate(Some(1000));
        let c = Rc::clone(&calls);
        let mut f = PolicyFactory::new(
            SimpleFactory::new(move || Producer(Rc::clone(&c))),
            Arc::new(s),
            Arc::default(),
            Arc::default(),
        );
        let mut p = f.build_protocol(&peer()).unwrap();
        let mut t = StringTransport::new();
        p.connection_made(&mut t);
        assert_eq!(
            *calls.borrow(),
            ["pause"],
            "500 bytes over one second's burst"
        );
        let flow = |t: &mut StringTransport| t.shared.machine.borrow_mut().poll_flow(0, false);
        assert_eq!(flow(&mut t), None, "held although the output is empty");
        t.clock().advance(Duration::from_millis(499));
        assert_eq!(flow(&mut t), None);
        t.clock().advance(Duration::from_millis(2));
        assert_eq!(
            flow(&mut t),
            Some(Flow::ResumeProducing),
            "released after 0.5 s"
        );
        assert_eq!(f.shard.stats.throttled(), 1);
    }

    #[test]
    fn a_read_over_the_rate_pauses_reading_until_the_bucket_refills() {
        let s = PolicySettings::default();
        s.set_read_rate(Some(1000));
        let mut f = factory(s);
        let mut p = f.build_protocol(&peer()).unwrap();
        let mut t = StringTransport::new();
        p.connection_made(&mut t);
        p.data_received(&[0; 1000], &mut t);
        assert!(!t.reading_paused(), "one second of burst");
        p.data_received(&[0; 500], &mut t);
        assert!(t.reading_paused());
        t.clock().advance(Duration::from_millis(499));
        assert!(t.reading_paused());
        t.clock().advance(Duration::from_millis(2));
        assert!(!t.reading_paused());
        assert_eq!(f.shard.stats.throttled(), 1);
    }

    #[test]
    fn the_total_read_rate_is_shared_by_every_connection() {
        let s = PolicySettings::default();
        s.set_total_read_rate(Some(1000));
        let mut f = factory(s);
        let (mut a, mut b) = (
            f.build_protocol(&peer()).unwrap(),
            f.build_protocol(&peer()).unwrap(),
        );
        let (mut ta, mut tb) = (StringTransport::new(), StringTransport::new());
        a.connection_made(&mut ta);
        b.connection_made(&mut tb);
        a.data_received(&[0; 900], &mut ta);
        assert!(!ta.reading_paused(), "within the shared second of burst");
        b.data_received(&[0; 900], &mut tb);
        assert!(tb.reading_paused(), "the other connection used the total");
        assert!(!ta.reading_paused());
    }

    #[test]
    fn over_the_total_cap_the_connection_is_told_and_closed() {
        let s = PolicySettings::default();
        s.set_max_connections(Some(1));
        let mut f = factory(s);
        let _first = f.build_protocol(&peer()).unwrap();
        let mut second = f.build_protocol(&peer()).unwrap();
        let mut t = StringTransport::new();
        second.connection_made(&mut t);
        assert_eq!(t.value(), TOO_MANY_CONNECTIONS);
        assert!(t.disconnecting());
    }
}
