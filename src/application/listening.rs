//! A listening service: Twisted's `strports.service(description, factory)`.
//!
//! Its endpoints may carry the `haproxy:` prefix (see [`crate::haproxy`]), as any
//! endpoint given to [`ServerBuilder::listen`] may.

use super::service::Service;
use crate::datagram::DatagramProtocol;
use crate::endpoints::ServerEndpoint;
use crate::factory::Factory;
use crate::runtime::ServerBuilder;

type Install = Box<dyn FnOnce(ServerBuilder) -> ServerBuilder + Send>;

/// Serves a factory (one per shard, built by a closure given the shard index) on
/// endpoints in Twisted's string syntax. Binding happens in
/// `privileged_start_service`, before privileges are dropped, as Twisted's
/// `StreamServerEndpointService` does.
pub struct ListeningService {
    name: String,
    endpoints: Vec<String>,
    install: Option<Install>,
}

impl ListeningService {
    /// Serves `build(shard)` on every endpoint of `endpoints`.
    pub fn new<F, B, S>(name: &str, endpoints: &[S], build: B) -> Self
    where
        F: Factory,
        B: Fn(usize) -> F + Send + Sync + 'static,
        S: AsRef<str>,
    {
        Self::with(name, endpoints, move |b, descs| b.listen_all(descs, build))
    }

    /// A service on `endpoints` whose installation is `install(builder, endpoints)`.
    fn with<S: AsRef<str>>(
        name: &str,
        endpoints: &[S],
        install: impl FnOnce(ServerBuilder, &[String]) -> ServerBuilder + Send + 'static,
    ) -> Self {
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_string()).collect();
        let descs = endpoints.clone();
        ListeningService {
            name: name.to_string(),
            endpoints,
            install: Some(Box::new(move |b: ServerBuilder| install(b, &descs))),
        }
    }

    /// Serves datagrams with `build(shard)` on every endpoint of `endpoints`
    /// (`udp:`, `udp6:`, `unixgram:`; see
    /// [`ServerBuilder::listen_datagram`]).
    pub fn datagram<P, B, S>(name: &str, endpoints: &[S], build: B) -> Self
    where
        P: DatagramProtocol,
        B: Fn(usize) -> P + Send + Sync + 'static,
        S: AsRef<str>,
    {
        Self::with(name, endpoints, move |b, descs| {
            b.listen_datagram(descs, build)
        })
    }

    /// Adds `other`'s endpoints to this service (one service with both stream and
    /// datagram endpoints, as `weft serve echo tcp:7 udp:7`).
    pub fn and(mut self, mut other: ListeningService) -> Self {
        self.endpoints.append(&mut other.endpoints);
        let (a, b) = (self.install.take(), other.install.take());
        self.install = Some(Box::new(move |builder: ServerBuilder| {
            let builder = match a {
                Some(a) => a(builder),
                None => builder,
            };
            match b {
                Some(b) => b(builder),
                None => builder,
            }
        }));
        self
    }
}

impl Service for ListeningService {
    fn name(&self) -> &str {
        &self.name
    }

    fn listening_endpoints(&self) -> Vec<ServerEndpoint> {
        // A malformed endpoint is reported by the builder, with its message.
        self.endpoints
            .iter()
            .filter_map(|e| {
                let e = crate::haproxy::inner_endpoint(e).unwrap_or(e);
                if crate::tls::is_ssl(e) {
                    crate::tls::parse_ssl_endpoint(e).ok().map(|(ep, _)| ep)
                } else {
                    e.parse().ok()
                }
            })
            .collect()
    }

    fn privileged_start_service(&mut self, server: ServerBuilder) -> ServerBuilder {
        match self.install.take() {
            Some(install) => install(server),
            None => server,
        }
    }
}
