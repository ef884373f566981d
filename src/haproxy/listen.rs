//! Serving `haproxy:` endpoints from [`ServerBuilder::listen`]: the factory of
//! each is the user's wrapped in a [`HaproxyServerFactory`] sharing one
//! [`HaproxyStats`]; for `haproxy:ssl:` the TLS factory goes inside it.

use std::sync::Arc;

use super::{inner_endpoint, HaproxyServerFactory, HaproxyStats};
use crate::factory::Factory;
use crate::runtime::ServerBuilder;

/// Adds `descs` to the builder: the plain ones as they are, each `haproxy:` one
/// with its factory wrapped (outside any TLS: a balancer sends the PROXY header
/// before the TLS handshake).
pub(crate) fn listen_all<F, B, S>(mut b: ServerBuilder, descs: &[S], build: B) -> ServerBuilder
where
    F: Factory,
    B: Fn(usize) -> F + Send + Sync + 'static,
    S: AsRef<str>,
{
    let build = Arc::new(build);
    let plain: Vec<&str> = descs
        .iter()
        .map(|d| d.as_ref())
        .filter(|d| inner_endpoint(d).is_none())
        .collect();
    let proxied: Vec<&str> = descs
        .iter()
        .filter_map(|d| inner_endpoint(d.as_ref()))
        .collect();
    if !plain.is_empty() || proxied.is_empty() {
        let build = Arc::clone(&build);
        b = b.listen_plain(&plain, move |shard| build(shard));
    }
    if proxied.is_empty() {
        return b;
    }
    let stats = Arc::new(HaproxyStats::default());
    for desc in proxied {
        if !crate::tls::is_ssl(desc) {
            let (build, stats) = (Arc::clone(&build), Arc::clone(&stats));
            b = b.listen_plain(&[desc], move |shard| {
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
            b = b.listen_plain(&[desc], move |shard| build(shard));
            continue;
        };
        crate::tls::register(&tls);
        let (build, stats) = (Arc::clone(&build), Arc::clone(&stats));
        b = b.listen_plain(&[endpoint.to_string()], move |shard| {
            let tls = crate::tls::TlsServerFactory::new(Arc::clone(&tls), build(shard));
            HaproxyServerFactory::with_stats(tls, Arc::clone(&stats)).shard_index(shard)
        });
    }
    b
}
