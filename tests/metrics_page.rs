//! The Prometheus page (`ServerBuilder::metrics`, `weft serve --metrics`): the
//! counters move as a known workload says, user counters join the page, and
//! `promtool check metrics` accepts it.

mod support;
mod support_metrics;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::{connect, require_io_uring, round_trip, WeftProcess};
use support_metrics::{assert_promtool_accepts, http_get, samples, scrape, sum, wait_for};
use weft::metrics::{Registry, ShardCounter, ShardHistogram};
use weft::{Address, Factory, Protocol, Server, ServerHandle, Transport};

const CONNECTIONS: usize = 24;

/// Echo that counts its connections in a user counter and the sizes of its reads
/// in a user histogram.
struct CountedEcho(ShardCounter, ShardHistogram);

impl Protocol for CountedEcho {
    fn connection_made(&mut self, _t: &mut Transport) {
        self.0.inc();
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.1.observe(data.len() as f64);
        t.write(data);
    }
}

struct CountedEchoFactory(ShardCounter, ShardHistogram);

impl Factory for CountedEchoFactory {
    type Protocol = CountedEcho;
    fn build_protocol(&mut self, _peer: &Address) -> Option<CountedEcho> {
        Some(CountedEcho(self.0.clone(), self.1.clone()))
    }
}

/// Two shards of counted echo, with the metrics page on a free loopback port.
fn start(registry: &Registry) -> ServerHandle {
    require_io_uring();
    let made = registry
        .counter(
            "test_connections_made_total",
            "Connections the test protocol saw made.",
        )
        .unwrap();
    let reads = registry
        .histogram(
            "test_read_size_bytes",
            "Sizes of the test protocol's reads.",
            &[16.0, 256.0, 4096.0],
        )
        .unwrap();
    Server::builder()
        .cores(2)
        .metrics("tcp:0:interface=127.0.0.1")
        .metrics_registry(registry)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            CountedEchoFactory(made.shard(shard), reads.shard(shard))
        })
        .start()
        .expect("server starts")
}

/// Opens `n` connections one after another, echoes one message on each, closes it.
fn workload(addr: SocketAddr, n: usize) -> usize {
    let msg = b"0123456789abcdef";
    for _ in 0..n {
        let mut s = connect(addr);
        assert_eq!(round_trip(&mut s, msg), msg);
    }
    n * msg.len()
}

/// Waits until the page shows every connection closed, and returns it.
fn settled_page(metrics: SocketAddr, n: usize) -> String {
    wait_for(
        Duration::from_secs(20),
        "every connection closed on the page",
        || {
            let page = scrape(metrics);
            let closed = sum(&page, "weft_connections_closed_total");
            if closed as usize == n {
                Ok(page)
            } else {
                Err(format!("{closed} closed of {n}"))
            }
        },
    )
}

#[test]
fn n_connections_show_as_n_accepted_summed_over_the_shards() {
    let registry = Registry::new();
    let server = start(&registry);
    let metrics = server.metrics_addr().expect("metrics endpoint");
    let bytes = workload(server.tcp_addr().unwrap(), CONNECTIONS);
    let page = settled_page(metrics, CONNECTIONS);

    let accepted = samples(&page, "weft_connections_accepted_total");
    assert_eq!(accepted.len(), 2, "one series per shard: {accepted:?}");
    assert_eq!(accepted[0].0, "shard=\"0\"");
    assert_eq!(accepted[1].0, "shard=\"1\"");
    assert_eq!(
        sum(&page, "weft_connections_accepted_total") as usize,
        CONNECTIONS
    );
    // Each shard's page value is its own counter.
    for (i, st) in server.stats().iter().enumerate() {
        assert_eq!(accepted[i].1 as u64, st.accepted(), "shard {i}");
    }
    assert_eq!(sum(&page, "weft_connections_open"), 0.0);
    assert_eq!(sum(&page, "weft_connections_refused_total"), 0.0);
    assert_eq!(sum(&page, "weft_bytes_received_total") as usize, bytes);
    assert_eq!(sum(&page, "weft_bytes_sent_total") as usize, bytes);
    assert_eq!(sum(&page, "weft_panics_total"), 0.0);
    // The client closes first: each connection ends cleanly.
    let done: f64 = samples(&page, "weft_connections_closed_total")
        .iter()
        .filter(|(l, _)| l.contains("reason=\"done\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(done as usize, CONNECTIONS, "{page}");
    assert!(sum(&page, "weft_loop_turns_total") > 0.0);
    // Turns land in the duration histogram, whose +Inf bucket is its count.
    let histogram_count = sum(&page, "weft_loop_turn_duration_seconds_count");
    assert!(histogram_count > 0.0);
    let inf: f64 = samples(&page, "weft_loop_turn_duration_seconds_bucket")
        .iter()
        .filter(|(l, _)| l.contains("le=\"+Inf\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(inf, histogram_count);
    assert!(sum(&page, "weft_loop_turn_duration_seconds_sum") > 0.0);
    assert!(sum(&page, "weft_ring_completions_total") > 0.0);
    assert_eq!(sum(&page, "weft_build_info"), 1.0);
    assert!(page.contains(&format!(
        "weft_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(sum(&page, "process_start_time_seconds") > 1.0e9);
    // The user counter: one cell per shard that built a factory, summing to N.
    assert_eq!(
        sum(&page, "test_connections_made_total") as usize,
        CONNECTIONS
    );
    assert!(page.contains("# TYPE test_connections_made_total counter\n"));
    // The user histogram: every byte read is in its sum.
    assert!(page.contains("# TYPE test_read_size_bytes histogram\n"));
    assert_eq!(sum(&page, "test_read_size_bytes_sum") as usize, bytes);
    assert!(sum(&page, "test_read_size_bytes_count") >= CONNECTIONS as f64);

    server.shutdown().unwrap();
    assert!(
        http_get(metrics, "/metrics").is_err(),
        "the exporter stops with the server"
    );
}

#[test]
fn other_paths_and_methods_are_refused() {
    let server = start(&Registry::new());
    let metrics = server.metrics_addr().unwrap();
    let (status, _) = http_get(metrics, "/nothing").unwrap();
    assert!(status.contains(" 404 "), "{status}");
    let (status, body) = http_get(metrics, "/").unwrap();
    assert!(
        status.contains(" 200 ") && body.contains("/metrics"),
        "{status}"
    );
    server.shutdown().unwrap();
}

#[test]
fn promtool_accepts_the_page_after_traffic() {
    let registry = Registry::new();
    let server = start(&registry);
    let metrics = server.metrics_addr().unwrap();
    workload(server.tcp_addr().unwrap(), CONNECTIONS);
    let page = settled_page(metrics, CONNECTIONS);
    assert_promtool_accepts(&page);
    server.shutdown().unwrap();
}

#[test]
fn weft_serve_metrics_prints_its_url_and_serves_the_page() {
    let mut weft = WeftProcess::start(&[
        "serve",
        "echo",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--metrics",
        "tcp:0:interface=127.0.0.1",
    ]);
    assert!(
        weft.wait_for_log("metrics on http://127.0.0.1:", Duration::from_secs(20)),
        "{:?}",
        weft.log
    );
    let line = weft
        .log
        .iter()
        .find(|l| l.starts_with("metrics on "))
        .unwrap()
        .clone();
    let addr: SocketAddr = line
        .strip_prefix("metrics on http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    workload(weft.tcp_addr(), 5);
    let page = settled_page(addr, 5);
    assert_eq!(sum(&page, "weft_connections_accepted_total"), 5.0);
    assert_eq!(samples(&page, "weft_connections_accepted_total").len(), 2);
    let (code, _) = weft.terminate();
    assert_eq!(code, 0);
}

#[test]
fn a_non_tcp_metrics_endpoint_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "echo",
            "tcp:0",
            "--metrics",
            "unix:/tmp/weft-m.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcp: or tcp6:"), "{err}");
}

#[test]
fn docs_operations_lists_every_series() {
    let docs = include_str!("../docs/operations.md");
    let section = docs
        .split("## Metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Metrics section in docs/operations.md");
    for name in weft::metrics::engine_series_names() {
        assert!(
            section.contains(&format!("`{name}")),
            "{name} is not in docs/operations.md"
        );
    }
}
