//! A Prometheus endpoint: the shards' counters, weft's build, the process start
//! time, meshes and user counters, as Prometheus' text format on `/metrics`.
//!
//! ```text
//!  shard 0 ── ShardStats (single writer: plain load + store) ──┐
//!  shard 1 ── ShardStats ──────────────────────────────────────┤ relaxed loads,
//!  user protocols ── ShardCounter, ShardHistogram (per shard) ─┤ once per scrape
//!  Mesh::stats() ──────────────────────────────────────────────┘
//!                                   weft-metrics thread: GET /metrics ─► render
//! ```
//!
//! The exporter is one plain thread outside the shards (`src/metrics/http.rs` says
//! why no HTTP crate). A scrape sends the shards no message and takes no lock they take:
//! they publish their counters as they go, and the thread reads them.
//!
//! Turn on with [`ServerBuilder::metrics`](crate::ServerBuilder::metrics) (the
//! `weft` binary's `--metrics ENDPOINT`); add counters with a [`Registry`] given to
//! [`ServerBuilder::metrics_registry`](crate::ServerBuilder::metrics_registry).
//! Every series is listed in docs/operations.md, "Metrics".
//!
//! The loop's turn durations are a histogram, `weft_loop_turn_duration_seconds`
//! (fixed buckets, one single-writer cell each); the longest turn is also a gauge.
//! Library users add per-shard counters and histograms ([`Registry::counter`],
//! [`Registry::histogram`]).
//!
//! # Examples
//! ```no_run
//! use weft::metrics::Registry;
//! use weft::{Address, Factory, Protocol, Server, Transport};
//! use weft::metrics::ShardCounter;
//!
//! struct Counted(ShardCounter);
//! impl Protocol for Counted {
//!     fn data_received(&mut self, data: &[u8], t: &mut Transport) {
//!         self.0.add(data.len() as u64);
//!         t.write(data);
//!     }
//! }
//! struct CountedFactory(ShardCounter);
//! impl Factory for CountedFactory {
//!     type Protocol = Counted;
//!     fn build_protocol(&mut self, _peer: &Address) -> Option<Counted> {
//!         Some(Counted(self.0.clone()))
//!     }
//! }
//!
//! let registry = Registry::new();
//! let echoed = registry.counter("echo_bytes_total", "Bytes echoed.").unwrap();
//! let server = Server::builder()
//!     .metrics("tcp:9100:interface=127.0.0.1")
//!     .metrics_registry(&registry)
//!     .listen("tcp:8000", move |shard| CountedFactory(echoed.shard(shard)))
//!     .start()
//!     .unwrap();
//! eprintln!("metrics on {}", server.metrics_url().unwrap());
//! server.join().unwrap();
//! ```

mod histogram;
mod http;
mod registry;
mod render;

pub use histogram::{Histogram, ShardHistogram};
pub use http::Exporter;
pub use registry::{Counter, MetricsError, Registry, ShardCounter};
pub use render::{engine_series_names, process_start_time, render, CONTENT_TYPE};

use std::net::TcpListener;

use crate::endpoints::ServerEndpoint;

/// Binds the exporter's endpoint: `tcp:` or `tcp6:` only.
pub(crate) fn bind(desc: &str) -> Result<TcpListener, crate::ServerError> {
    let ep: ServerEndpoint = desc.parse().map_err(crate::ServerError::Endpoint)?;
    let addr = match ep {
        ServerEndpoint::Tcp {
            port, interface, ..
        } => std::net::SocketAddr::new(interface, port),
        _ => {
            return Err(crate::ServerError::Bind {
                endpoint: desc.to_string(),
                error: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the metrics endpoint must be tcp: or tcp6:",
                ),
            })
        }
    };
    TcpListener::bind(addr).map_err(|error| crate::ServerError::Bind {
        endpoint: desc.to_string(),
        error,
    })
}
