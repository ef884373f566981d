//! A listening service: Twisted's `strports.service(description, factory)`.
//!
//! Its endpoints may carry the `haproxy:` prefix (see [`crate::haproxy`]), as any
//! endpoint given to [`ServerBuilder::listen`] may.

use super::service::Service;
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
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_string()).collect();
        let descs = endpoints.clone();
        ListeningService {
            name: name.to_string(),
            endpoints,
            install: Some(Box::new(move |b: ServerBuilder| {
                b.listen_all(&descs, build)
            })),
        }
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
