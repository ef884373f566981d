//! A listening service: Twisted's `strports.service(description, factory)`.
//!
//! It also reads the `haproxy:` prefix (see [`crate::haproxy`]): those endpoints
//! are served by the same factory wrapped in a
//! [`HaproxyServerFactory`](crate::haproxy::HaproxyServerFactory), outside any TLS,
//! since a balancer sends the PROXY header before the TLS handshake.

use std::sync::Arc;

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
            install: Some(Box::new(move |b: ServerBuilder| install(b, &descs, build))),
        }
    }
}

/// Adds `descs` to the builder: the plain ones as they are, each `haproxy:` one
/// with its factory wrapped.
fn install<F, B>(mut b: ServerBuilder, descs: &[String], build: B) -> ServerBuilder
where
    F: Factory,
    B: Fn(usize) -> F + Send + Sync + 'static,
{
    use crate::haproxy::{inner_endpoint, HaproxyServerFactory, HaproxyStats};
    let build = Arc::new(build);
    let plain: Vec<&String> = descs
        .iter()
        .filter(|d| inner_endpoint(d).is_none())
        .collect();
    let proxied: Vec<&str> = descs.iter().filter_map(|d| inner_endpoint(d)).collect();
    if !plain.is_empty() || proxied.is_empty() {
        let build = Arc::clone(&build);
        b = b.listen_all(&plain, move |shard| build(shard));
    }
    if proxied.is_empty() {
        return b;
    }
    let stats = Arc::new(HaproxyStats::default());
    for desc in proxied {
        if !crate::tls::is_ssl(desc) {
            let (build, stats) = (Arc::clone(&build), Arc::clone(&stats));
            b = b.listen(desc, move |shard| {
                HaproxyServerFactory::with_stats(build(shard), Arc::clone(&stats))
                    .shard_index(shard)
            });
            continue;
        }
        // PROXY header first, then TLS: the TLS factory goes inside.
        let loaded = crate::tls::parse_ssl_endpoint(desc)
            .ok()
            .and_then(|(ep, options)| {
                crate::tls::ServerTls::load(options)
                    .ok()
                    .map(|tls| (ep, tls))
            });
        let Some((endpoint, tls)) = loaded else {
            // Let the builder report the bad endpoint or file, in its words.
            let build = Arc::clone(&build);
            b = b.listen(desc, move |shard| build(shard));
            continue;
        };
        crate::tls::register(&tls);
        let (build, stats) = (Arc::clone(&build), Arc::clone(&stats));
        b = b.listen(&endpoint.to_string(), move |shard| {
            let tls = crate::tls::TlsServerFactory::new(Arc::clone(&tls), build(shard));
            HaproxyServerFactory::with_stats(tls, Arc::clone(&stats)).shard_index(shard)
        });
    }
    b
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
