//! Configuring and starting a server: Twisted's `listenTCP`/`serverFromString` plus
//! `reactor.run`, over one reactor per core.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::datagram::DatagramProtocol;
use crate::endpoints::{EndpointError, ServerEndpoint};
use crate::factory::Factory;
use crate::reactor::Reactor;
use crate::runtime::config::Config;
use crate::runtime::doorbell::Doorbell;
use crate::runtime::handle::ServerHandle;
use crate::runtime::listener::{self, Handoff};
use crate::runtime::shard::{self, guarded};
use crate::runtime::{
    block_stop_signals, check_io_uring, signal, ServerError, ShardStats, StopHandle,
};

/// Type-erased per-shard installer of one service (a factory and its endpoints).
pub(crate) trait ServiceInstaller: Send + Sync {
    fn install(
        &self,
        shard: &std::rc::Rc<shard::Shard>,
        listeners: Vec<listener::Bound>,
    ) -> Result<(), String>;
}

pub(crate) struct TypedService<B> {
    pub(crate) build: B,
}

impl<F, B> ServiceInstaller for TypedService<B>
where
    F: Factory,
    B: Fn(usize) -> F + Send + Sync + 'static,
{
    fn install(
        &self,
        shard: &std::rc::Rc<shard::Shard>,
        listeners: Vec<listener::Bound>,
    ) -> Result<(), String> {
        let factory = guarded(|| (self.build)(shard.index)).map_err(|msg| {
            format!(
                "the factory closure panicked on shard {}: {msg}",
                shard.index
            )
        })?;
        shard::Shard::serve(shard, factory, listeners)
    }
}

/// The per-shard installer of a datagram service: one protocol per bound socket.
pub(crate) struct DatagramService<B> {
    pub(crate) build: B,
}

impl<P, B> ServiceInstaller for DatagramService<B>
where
    P: DatagramProtocol,
    B: Fn(usize) -> P + Send + Sync + 'static,
{
    fn install(
        &self,
        shard: &std::rc::Rc<shard::Shard>,
        listeners: Vec<listener::Bound>,
    ) -> Result<(), String> {
        for b in listeners {
            let listener::Bound::Datagram {
                sock,
                max_packet_size,
                unlink,
            } = b
            else {
                return Err("a stream endpoint given to a DatagramProtocol".into());
            };
            let Some(sock) = sock else { continue };
            let protocol = guarded(|| (self.build)(shard.index)).map_err(|msg| {
                format!(
                    "the protocol closure panicked on shard {}: {msg}",
                    shard.index
                )
            })?;
            shard.serve_datagram(Box::new(protocol), sock, max_packet_size, unlink)?;
        }
        Ok(())
    }
}

/// A hook run once on every shard after it started (see [`ServerBuilder::on_shard`]).
pub(crate) type OnShard = dyn Fn(&Reactor, &StopHandle) + Send + Sync;

struct Service {
    endpoints: Vec<ServerEndpoint>,
    installer: Arc<dyn ServiceInstaller>,
}

/// Configures and starts a server: Twisted's `listenTCP`/`serverFromString` plus
/// `reactor.run`, over one reactor per core.
pub struct ServerBuilder {
    cores: Option<usize>,
    pin: bool,
    services: Vec<Service>,
    on_shard: Vec<Arc<OnShard>>,
    error: Option<ServerError>,
    config: Config,
    handle_signals: bool,
    after_bind: Option<AfterBind>,
    /// The Prometheus endpoint, if any, and the user metrics it adds.
    metrics: Option<String>,
    metrics_registry: crate::metrics::Registry,
}

/// A hook run once after every endpoint is bound (see [`ServerBuilder::after_bind`]).
type AfterBind = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// A weft server: see [`Server::builder`].
pub struct Server;

impl Server {
    /// Returns a builder with the defaults: one shard per available core, pinned.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            cores: None,
            pin: true,
            services: Vec::new(),
            on_shard: Vec::new(),
            error: None,
            config: Config::default(),
            handle_signals: false,
            after_bind: None,
            metrics: None,
            metrics_registry: crate::metrics::Registry::default(),
        }
    }
}

impl ServerBuilder {
    /// Sets the number of shards (default: every core this process may run on).
    pub fn cores(mut self, n: usize) -> Self {
        self.cores = Some(n.max(1));
        self
    }

    /// Returns the number of shards `start` will run: the `cores` setting, or every
    /// core this process may run on. Size a [`Mesh`](crate::mesh::Mesh) with it.
    pub fn shard_count(&self) -> usize {
        self.cores.unwrap_or_else(|| available_cpus().len())
    }

    /// Pins each shard to its own core (default true).
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// Serves the factory built by `build` (called once per shard with the shard
    /// index) on the endpoint `desc` (Twisted's `serverFromString` syntax).
    pub fn listen<F, B>(self, desc: &str, build: B) -> Self
    where
        F: Factory,
        B: Fn(usize) -> F + Send + Sync + 'static,
    {
        self.listen_all(&[desc], build)
    }

    /// Serves one factory per shard on several endpoints at once (the factory is
    /// shared by the endpoints, as one Twisted factory listening on several ports).
    pub fn listen_all<F, B, S>(self, descs: &[S], build: B) -> Self
    where
        F: Factory,
        B: Fn(usize) -> F + Send + Sync + 'static,
        S: AsRef<str>,
    {
        // `haproxy:` endpoints (weft::haproxy): the factory wrapped, the rest
        // handed back here without the prefix.
        if descs
            .iter()
            .any(|d| crate::haproxy::inner_endpoint(d.as_ref()).is_some())
        {
            return crate::haproxy::listen::listen_all(self, descs, build);
        }
        self.listen_plain(descs, build)
    }

    /// `listen_all` for endpoints without the `haproxy:` prefix.
    pub(crate) fn listen_plain<F, B, S>(mut self, descs: &[S], build: B) -> Self
    where
        F: Factory,
        B: Fn(usize) -> F + Send + Sync + 'static,
        S: AsRef<str>,
    {
        let mut endpoints = Vec::new();
        // `ssl:` endpoints (weft::tls): each gets its own service whose factory
        // wraps this one in a TlsServerFactory.
        let build = Arc::new(build);
        let mut ssl = 0;
        for d in descs {
            if crate::tls::is_ssl(d.as_ref()) {
                ssl += 1;
                match crate::tls::ssl_service(d.as_ref(), Arc::clone(&build)) {
                    Ok((endpoint, installer)) => self.services.push(Service {
                        endpoints: vec![endpoint],
                        installer,
                    }),
                    Err(e) => {
                        self.error.get_or_insert(e);
                        return self;
                    }
                }
                continue;
            }
            match d.as_ref().parse::<ServerEndpoint>() {
                Ok(e) if e.is_datagram() => {
                    self.error
                        .get_or_insert(ServerError::Endpoint(EndpointError::WrongKind {
                            endpoint: d.as_ref().to_string(),
                            expected: "a stream endpoint (a datagram one needs listen_datagram)",
                        }));
                    return self;
                }
                Ok(e) => endpoints.push(e),
                Err(e) => {
                    self.error.get_or_insert(ServerError::Endpoint(e));
                    return self;
                }
            }
        }
        if !endpoints.is_empty() || ssl == 0 {
            self.services.push(Service {
                endpoints,
                installer: Arc::new(TypedService {
                    build: move |shard| build(shard),
                }),
            });
        }
        self
    }

    /// Serves datagrams on the endpoints `descs` (`udp:`, `udp6:`, `unixgram:`; see
    /// [`crate::endpoints`]) with a protocol built by `build`, called with the
    /// shard index once per endpoint on every shard that has a socket for it
    /// (every shard for UDP, shard 0 for UNIX datagrams): Twisted's `listenUDP` /
    /// `listenUNIXDatagram`, on every core. See [`crate::datagram`].
    ///
    /// # Examples
    /// ```no_run
    /// use weft::datagram::{DatagramAddress, DatagramProtocol, DatagramTransport};
    /// struct Echo;
    /// impl DatagramProtocol for Echo {
    ///     fn datagram_received(&mut self, d: &[u8], a: &DatagramAddress, t: &mut DatagramTransport) {
    ///         let _ = t.write(d, a);
    ///     }
    /// }
    /// let server = weft::Server::builder()
    ///     .listen_datagram(&["udp:9999:interface=127.0.0.1"], |_shard| Echo)
    ///     .start()
    ///     .unwrap();
    /// println!("{:?}", server.udp_addr());
    /// ```
    pub fn listen_datagram<P, B, S>(mut self, descs: &[S], build: B) -> Self
    where
        P: DatagramProtocol,
        B: Fn(usize) -> P + Send + Sync + 'static,
        S: AsRef<str>,
    {
        let mut endpoints = Vec::new();
        for d in descs {
            match d.as_ref().parse::<ServerEndpoint>() {
                Ok(e) if e.is_datagram() => endpoints.push(e),
                Ok(_) => {
                    self.error
                        .get_or_insert(ServerError::Endpoint(EndpointError::WrongKind {
                            endpoint: d.as_ref().to_string(),
                            expected: "a datagram endpoint (udp:, udp6: or unixgram:)",
                        }));
                    return self;
                }
                Err(e) => {
                    self.error.get_or_insert(ServerError::Endpoint(e));
                    return self;
                }
            }
        }
        self.services.push(Service {
            endpoints,
            installer: Arc::new(DatagramService { build }),
        });
        self
    }

    /// Runs `hook` once on every shard, on the shard's thread, after its listeners
    /// are up: the place to start client connections or timers (Twisted's
    /// `callWhenRunning`). A builder with hooks may have no endpoint at all, which
    /// is how a program that is only a client runs (see `weft::client::react`).
    pub fn on_shard<H>(mut self, hook: H) -> Self
    where
        H: Fn(&Reactor, &StopHandle) + Send + Sync + 'static,
    {
        self.on_shard.push(Arc::new(hook));
        self
    }

    /// Sets the output buffer size past which protocols are told to pause producing
    /// (default 64 KiB).
    pub fn high_watermark(mut self, bytes: usize) -> Self {
        self.config.limits.high_watermark = bytes;
        self
    }

    /// Sets the hard cap on one connection's buffered output (default 16 MiB); past
    /// it the connection is aborted with a logged reason.
    pub fn max_output_buffer(mut self, bytes: usize) -> Self {
        self.config.limits.max_buffer = bytes;
        self
    }

    /// Sets how long a graceful shutdown waits for connections to drain (default 5 s).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.config.drain_timeout = d;
        self
    }

    /// Sets TCP_NODELAY on accepted connections (default true: weft already
    /// coalesces each batch of writes into one send, which is Nagle's job).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.config.nodelay = on;
        self
    }

    /// Sets the output buffer size at or below which a connection held by its
    /// output is read again (default 16 KiB).
    pub fn low_watermark(mut self, bytes: usize) -> Self {
        self.config.limits.low_watermark = bytes;
        self
    }

    /// Sets the per-shard budget for the output buffered by all of a shard's
    /// connections (default 64 MiB): past it, the connections holding the most are
    /// aborted (logged and counted), so that many peers that stop reading cannot
    /// exhaust the process even when their protocols ignore `pause_producing`.
    pub fn shard_output_budget(mut self, bytes: usize) -> Self {
        self.config.shard_output_budget = bytes;
        self
    }

    /// Sets how many 8 KiB buffers each shard's receive pool has (a power of two
    /// from 16 to 32768; default 512, 4 MiB). Multishot receives fill them; each is
    /// given back as soon as `data_received` returns, or copied out when its
    /// connection stops reading. A burst larger than the pool (many connections
    /// receiving at once) is not lost: the receives that found it empty are armed
    /// again as buffers come back (`ShardStats::ring_no_buffers` counts them). Raise
    /// it for many connections receiving large bursts together. A count outside the
    /// range fails `start`.
    pub fn receive_buffers(mut self, count: usize) -> Self {
        self.config.receive_buffers = count;
        self
    }

    /// Makes SIGINT and SIGTERM stop the server gracefully (off by default for
    /// embedding; the `weft` binary turns it on).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Serves Prometheus' text format on `endpoint` (`tcp:` or `tcp6:`, Twisted's
    /// syntax) at `/metrics`, from one thread outside the shards: see
    /// [`crate::metrics`]. The socket is bound by `start` with the others.
    pub fn metrics(mut self, endpoint: &str) -> Self {
        self.metrics = Some(endpoint.to_string());
        self
    }

    /// Adds `registry`'s user counters and meshes to the metrics page.
    pub fn metrics_registry(mut self, registry: &crate::metrics::Registry) -> Self {
        self.metrics_registry = registry.clone();
        self
    }

    /// Runs `hook` once on the starting thread after every endpoint is bound and
    /// before any shard thread exists: the place to drop privileges (Twisted's
    /// `shedPrivileges` between `privilegedStartService` and `startService`), so no
    /// shard ever accepts with them. An error ends `start` with
    /// [`ServerError::Runtime`] and nothing is left bound.
    pub fn after_bind<H>(mut self, hook: H) -> Self
    where
        H: FnOnce() -> Result<(), String> + Send + 'static,
    {
        self.after_bind = Some(Box::new(hook));
        self
    }

    /// Binds every endpoint, starts one executor per shard and returns once every
    /// shard is listening.
    ///
    /// # Errors
    /// [`ServerError`] if an endpoint is malformed, a socket cannot be bound, or an
    /// executor cannot start (io_uring unavailable or memlock limit too low).
    pub fn start(self) -> Result<ServerHandle, ServerError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.services.is_empty() && self.on_shard.is_empty() {
            return Err(ServerError::NoEndpoints);
        }
        check_io_uring()?;
        let cpus = available_cpus();
        let shards = self.cores.unwrap_or(cpus.len());

        // Bind everything before any thread starts: errors surface here, at once.
        let mut per_shard: Vec<Vec<Vec<listener::Bound>>> = (0..shards)
            .map(|_| Vec::with_capacity(self.services.len()))
            .collect();
        let mut addresses = Vec::new();
        for service in &self.services {
            let mut bound: Vec<Vec<listener::Bound>> = (0..shards).map(|_| Vec::new()).collect();
            for ep in &service.endpoints {
                let (sockets, addr) = listener::bind(ep, shards)?;
                addresses.push(addr);
                for (i, s) in sockets.into_iter().enumerate() {
                    bound[i].push(s);
                }
            }
            for (i, b) in bound.into_iter().enumerate() {
                per_shard[i].push(b);
            }
        }

        let metrics = self
            .metrics
            .as_deref()
            .map(crate::metrics::bind)
            .transpose()?;
        if let Some(hook) = self.after_bind {
            hook().map_err(ServerError::Runtime)?;
        }
        if self.handle_signals {
            block_stop_signals();
        }
        let bells = (0..shards)
            .map(|_| Doorbell::new().map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServerError::Runtime(format!("cannot create a doorbell: {e}")))?;
        let stop = StopHandle::new(bells.clone());
        let stats: Vec<Arc<ShardStats>> = (0..shards).map(|_| Arc::default()).collect();
        let handoff = Handoff::new(bells.clone());
        let config = Arc::new(self.config);
        let installers: Vec<Arc<dyn ServiceInstaller>> = self
            .services
            .iter()
            .map(|s| Arc::clone(&s.installer))
            .collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
        let mut joins = Vec::with_capacity(shards);
        for (index, listeners) in per_shard.into_iter().enumerate() {
            let placement = if self.pin {
                Placement::Fixed(cpus[index % cpus.len()])
            } else {
                Placement::Unbound
            };
            let ctx = shard::ShardInit {
                index,
                shards,
                config: Arc::clone(&config),
                stats: Arc::clone(&stats[index]),
                stop: stop.clone(),
                bell: Arc::clone(&bells[index]),
                handoff: handoff.clone(),
                installers: installers.clone(),
                listeners,
                ready: ready_tx.clone(),
                on_shard: self.on_shard.clone(),
            };
            // glommio places and runs the shard's thread; the shard's own loop
            // (shard.rs) does all its I/O, timers and tasks on weft's ring and
            // sleeps there, so glommio's rings stay idle: a small io_memory keeps
            // them from charging the memlock limit.
            let spawned = LocalExecutorBuilder::new(placement)
                .name(&format!("weft-shard-{index}"))
                .io_memory(64 * 1024)
                .ring_depth(32)
                .spawn(move || async move { shard::run(ctx) });
            match spawned {
                Ok(j) => joins.push(j),
                Err(e) => {
                    stop.stop();
                    return Err(ServerError::Runtime(format!(
                        "cannot start shard {index}: {e}"
                    )));
                }
            }
        }
        drop(ready_tx);
        let mut ready = 0;
        while ready < shards {
            match ready_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(_)) => ready += 1,
                Ok(Err(msg)) => {
                    stop.stop();
                    return Err(ServerError::Runtime(msg));
                }
                Err(_) => {
                    stop.stop();
                    let detail = joins
                        .into_iter()
                        .filter_map(|j| j.join().err())
                        .map(|e| e.to_string())
                        .next()
                        .unwrap_or_else(|| "a shard did not report in 30 s".into());
                    return Err(ServerError::Runtime(format!(
                        "a shard failed to start: {detail} (weft needs Linux 6.1 or later and a memlock limit of at least 8 MiB: see `ulimit -l`)"
                    )));
                }
            }
        }
        if self.handle_signals {
            signal::spawn_signal_thread(stop.clone());
        }
        let metrics = match metrics {
            Some(l) => Some(
                crate::metrics::Exporter::spawn(l, stats.clone(), self.metrics_registry).map_err(
                    |e| {
                        stop.stop();
                        ServerError::Runtime(format!("cannot start the metrics thread: {e}"))
                    },
                )?,
            ),
            None => None,
        };
        Ok(ServerHandle {
            metrics,
            shards,
            addresses,
            stop,
            stats,
            joins,
        })
    }
}

/// The cores this process may run on (at least one).
fn available_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![0])
}
