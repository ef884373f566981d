//! `TlsServerFactory`: wraps a server factory so that its protocols run over TLS
//! (Twisted's `TLSMemoryBIOFactory` with `isClient=False`).
//!
//! One per shard, like the factory it wraps. It refuses a connection (closes it at
//! once, counted in [`TlsStats::refused`]) when the shard already has
//! `maxHandshakes` handshakes in progress, so a flood of half-open handshakes costs
//! a bounded amount of memory per shard: at most `maxHandshakes` rustls
//! connections, each until its handshake timeout.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use rustls::ServerConfig;

use crate::address::Address;
use crate::factory::Factory;

use super::records::Session;
use super::server_config::ServerTls;
use super::session::{ShardTls, TlsProtocol};
use super::stats::TlsStats;

/// A factory whose protocols speak TLS to the peer and plaintext to `F`'s protocols.
///
/// # Examples
/// ```no_run
/// use std::sync::Arc;
/// use weft::services::wire::Echo;
/// use weft::tls::{ServerTls, ServerTlsOptions, TlsServerFactory};
/// use weft::{Address, Factory, Server};
/// struct EchoFactory;
/// impl Factory for EchoFactory {
///     type Protocol = Echo;
///     fn build_protocol(&mut self, _: &Address) -> Option<Echo> {
///         Some(Echo)
///     }
/// }
/// let tls = ServerTls::load(ServerTlsOptions::new("server.pem")).expect("certificate");
/// let server = Server::builder()
///     .listen("tcp:8443", move |_| TlsServerFactory::new(Arc::clone(&tls), EchoFactory))
///     .start()
///     .expect("listening");
/// # drop(server);
/// ```
pub struct TlsServerFactory<F: Factory> {
    inner: Rc<RefCell<F>>,
    tls: Arc<ServerTls>,
    cached: RefCell<(u64, Arc<ServerConfig>)>,
    shard: Rc<ShardTls<F::Protocol>>,
    max_handshakes: usize,
    /// The shard index, when known, for the summary logged at `stop_factory`.
    index: Option<usize>,
}

impl<F: Factory> TlsServerFactory<F> {
    /// Wraps `inner` (this shard's factory) with the TLS config `tls`.
    pub fn new(tls: Arc<ServerTls>, inner: F) -> TlsServerFactory<F> {
        let inner = Rc::new(RefCell::new(inner));
        let build_from = Rc::clone(&inner);
        let shard = Rc::new(ShardTls {
            build: Box::new(move |peer: &Address| build_from.borrow_mut().build_protocol(peer)),
            stats: Arc::new(TlsStats::default()),
            handshake_timeout: tls.options().handshake_timeout,
            in_progress: Cell::new(0),
            last_ending: RefCell::new(None),
            scratch: Default::default(),
        });
        TlsServerFactory {
            cached: RefCell::new((tls.generation(), tls.config())),
            max_handshakes: tls.options().max_handshakes,
            index: None,
            inner,
            tls,
            shard,
        }
    }

    /// Returns this shard's TLS counters (readable from any thread).
    pub fn stats(&self) -> Arc<TlsStats> {
        Arc::clone(&self.shard.stats)
    }

    /// Returns the wrapped factory.
    pub fn inner(&self) -> &Rc<RefCell<F>> {
        &self.inner
    }

    /// The config for a new handshake: the cached one, unless a reload moved the
    /// generation (one atomic load per accept).
    fn config(&self) -> Arc<ServerConfig> {
        let generation = self.tls.generation();
        let mut cached = self.cached.borrow_mut();
        if cached.0 != generation {
            *cached = (generation, self.tls.config());
        }
        Arc::clone(&cached.1)
    }
}

impl<F: Factory> Factory for TlsServerFactory<F> {
    type Protocol = TlsProtocol<F::Protocol>;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        if self.shard.in_progress.get() >= self.max_handshakes {
            self.shard.stats.on_refused();
            return None;
        }
        let config = self.config();
        let own_records = config.enable_secret_extraction;
        let conn = match rustls::server::UnbufferedServerConnection::new(config) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("tls: cannot start a server session: {e}");
                return None;
            }
        };
        Some(TlsProtocol::new(
            Session::Server(conn),
            Rc::clone(&self.shard),
            None,
            own_records,
        ))
    }

    fn start_factory(&mut self) {
        self.inner.borrow_mut().start_factory();
    }

    fn stop_factory(&mut self) {
        self.inner.borrow_mut().stop_factory();
        let s = &self.shard.stats;
        let shard = self
            .index
            .map(|i| format!(" shard {i}:"))
            .unwrap_or_default();
        tracing::info!(
            "tls{shard} {} handshakes completed, {} failed, {} timed out, {} refused over the cap",
            s.completed(),
            s.failed(),
            s.timed_out(),
            s.refused()
        );
    }
}

/// Builds the service for one `ssl:` endpoint of `ServerBuilder::listen_all`: the
/// TCP endpoint to bind and an installer whose per-shard factory is `build`'s
/// wrapped in a [`TlsServerFactory`]. The config is loaded now, so a bad file fails
/// `start` before any thread runs, and registered for [`reload_all`](super::reload_all).
pub(crate) fn ssl_service<F, B>(
    desc: &str,
    build: Arc<B>,
) -> Result<
    (
        crate::endpoints::ServerEndpoint,
        Arc<dyn crate::runtime::ServiceInstaller>,
    ),
    crate::runtime::ServerError,
>
where
    F: Factory,
    B: Fn(usize) -> F + Send + Sync + 'static,
{
    use crate::runtime::{ServerError, TypedService};
    let (endpoint, options) = super::parse_ssl_endpoint(desc)?;
    let tls = ServerTls::load(options)
        .map_err(|e| ServerError::Runtime(format!("ssl endpoint {desc}: {e}")))?;
    super::register(&tls);
    let installer = TypedService {
        build: move |shard| {
            let mut f = TlsServerFactory::new(Arc::clone(&tls), build(shard));
            f.index = Some(shard);
            f
        },
    };
    Ok((endpoint, Arc::new(installer)))
}
