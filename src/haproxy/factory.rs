//! `HaproxyServerFactory`: wraps a server factory so that each connection reads a
//! PROXY header before its protocol is built (Twisted's `HAProxyWrappingFactory`).
//!
//! One per shard, like the factory it wraps. The wrapped factory's
//! `build_protocol` is called with the client's address from the header, once the
//! header is in, so a factory that decides by peer (limits, policies) sees the
//! client, not the balancer.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::address::Address;
use crate::factory::Factory;

use super::header::DEFAULT_MAX_V2_LENGTH;
use super::protocol::{HaproxyProtocol, ShardProxy};
use super::stats::HaproxyStats;

/// How long a connection may take to send its whole PROXY header. Twisted has no
/// such limit; without one a peer that connects and says nothing holds a
/// connection forever, and a balancer sends its header at once.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A factory whose connections start with a PROXY header, v1 or v2, that `F`'s
/// protocols never see: they see its addresses as `peer()` and `host()`.
///
/// # Examples
/// ```no_run
/// use weft::haproxy::HaproxyServerFactory;
/// use weft::services::wire::Echo;
/// use weft::{Address, Factory, Server};
/// struct EchoFactory;
/// impl Factory for EchoFactory {
///     type Protocol = Echo;
///     fn build_protocol(&mut self, _: &Address) -> Option<Echo> {
///         Some(Echo)
///     }
/// }
/// let server = Server::builder()
///     .listen("tcp:8080", |_| HaproxyServerFactory::new(EchoFactory))
///     .start()
///     .expect("listening");
/// # drop(server);
/// ```
///
/// # Security
/// A connection that does not start with a valid header within
/// [`DEFAULT_HEADER_TIMEOUT`] and the size bounds of
/// [`ProxyHeaderDecoder`](super::ProxyHeaderDecoder) is closed with a reset, logged
/// and counted in [`HaproxyStats`]; its protocol is never built. Only a balancer
/// may reach such a port: anyone who can connect to it can claim any address.
pub struct HaproxyServerFactory<F: Factory> {
    inner: Rc<RefCell<F>>,
    shard: Rc<ShardProxy<F::Protocol>>,
    index: Option<usize>,
}

impl<F: Factory> HaproxyServerFactory<F> {
    /// Wraps `inner` (this shard's factory), with counters of its own.
    pub fn new(inner: F) -> HaproxyServerFactory<F> {
        Self::with_stats(inner, Arc::new(HaproxyStats::default()))
    }

    /// Wraps `inner`, counting in `stats` (share one between the shards of a service).
    pub fn with_stats(inner: F, stats: Arc<HaproxyStats>) -> HaproxyServerFactory<F> {
        super::stats::register(&stats);
        let inner = Rc::new(RefCell::new(inner));
        let build_from = Rc::clone(&inner);
        HaproxyServerFactory {
            shard: Rc::new(ShardProxy {
                build: Rc::new(move |peer: &Address| build_from.borrow_mut().build_protocol(peer)),
                stats,
                counts: OnceCell::new(),
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                max_v2_length: DEFAULT_MAX_V2_LENGTH,
            }),
            inner,
            index: None,
        }
    }

    /// Sets how long a connection may take to send its header.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.shard_mut().header_timeout = timeout;
        self
    }

    /// Sets the cap on a v2 header's LEN field.
    pub fn max_v2_length(mut self, max: usize) -> Self {
        self.shard_mut().max_v2_length = max;
        self
    }

    /// Names the shard in the summary logged when the factory stops.
    pub fn shard_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        // Take this shard's cells now, so the metrics page lists it from the start.
        let counts = self.shard.stats.shard(index);
        let _ = self.shard_mut().counts.set(counts);
        self
    }

    /// Returns the counters.
    pub fn stats(&self) -> Arc<HaproxyStats> {
        Arc::clone(&self.shard.stats)
    }

    /// Returns the wrapped factory.
    pub fn inner(&self) -> &Rc<RefCell<F>> {
        &self.inner
    }

    fn shard_mut(&mut self) -> &mut ShardProxy<F::Protocol> {
        Rc::get_mut(&mut self.shard).expect("configured before any connection")
    }
}

impl<F: Factory> Factory for HaproxyServerFactory<F> {
    type Protocol = HaproxyProtocol<F::Protocol>;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        Some(HaproxyProtocol::new(Rc::clone(&self.shard)))
    }

    fn start_factory(&mut self) {
        self.inner.borrow_mut().start_factory();
    }

    fn stop_factory(&mut self) {
        self.inner.borrow_mut().stop_factory();
        if let Some(i) = self.index {
            let s = &self.shard.stats;
            tracing::info!(
                "haproxy shard {i}: service totals: {} headers read, {} refused, {} timed out",
                s.accepted(),
                s.refused(),
                s.timed_out()
            );
        }
    }
}
