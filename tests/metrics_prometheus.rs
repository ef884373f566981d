//! A real Prometheus server (Debian's `prometheus` package), started on loopback
//! by the test, scrapes weft every second and answers a query for a per-shard
//! series through its HTTP API.

mod support;
mod support_metrics;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{connect, require_io_uring, round_trip};
use support_metrics::{http_get, wait_for};
use weft::services::wire::{Echo, SimpleFactory};
use weft::Server;

const CONNECTIONS: usize = 10;

/// The Prometheus child, killed (by its own pid) when the test ends.
struct Prometheus {
    child: Child,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on now (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(target: SocketAddr) -> (Prometheus, SocketAddr) {
    let dir = std::env::temp_dir().join(format!("weft-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: weft\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let web: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("prometheus.log")).unwrap(),
        ))
        .spawn()
        .expect("prometheus (Debian package `prometheus`; bash .ci/test installs it)");
    (Prometheus { child, dir }, web)
}

/// The `"shard":"N"` labels and values of an instant-query answer, read from its
/// JSON without a JSON crate: each result is `{"metric":{…},"value":[t,"v"]}`.
fn shard_values(json: &str) -> Vec<(String, f64)> {
    json.split("{\"metric\":")
        .skip(1)
        .filter_map(|r| {
            let shard = r
                .split("\"shard\":\"")
                .nth(1)?
                .split('"')
                .next()?
                .to_string();
            let value = r
                .split("\"value\":[")
                .nth(1)?
                .split('"')
                .nth(1)?
                .parse()
                .ok()?;
            Some((shard, value))
        })
        .collect()
}

#[test]
fn prometheus_scrapes_weft_and_answers_a_per_shard_query() {
    require_io_uring();
    let server = Server::builder()
        .cores(2)
        .metrics("tcp:0:interface=127.0.0.1")
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("server starts");
    let addr = server.tcp_addr().unwrap();
    for _ in 0..CONNECTIONS {
        let mut s = connect(addr);
        assert_eq!(round_trip(&mut s, b"ping"), b"ping");
    }
    let (mut prometheus, web) = start_prometheus(server.metrics_addr().unwrap());

    let query = "/api/v1/query?query=weft_connections_accepted_total";
    let series = wait_for(
        Duration::from_secs(60),
        "Prometheus answering for both shards",
        || {
            if let Ok(Some(st)) = prometheus.child.try_wait() {
                let log = std::fs::read_to_string(prometheus.dir.join("prometheus.log"))
                    .unwrap_or_default();
                panic!("prometheus exited ({st}): {log}");
            }
            let (status, body) = http_get(web, query).map_err(|e| e.to_string())?;
            if !status.contains(" 200 ") || !body.contains("\"status\":\"success\"") {
                return Err(format!("{status} {body}"));
            }
            let mut values = shard_values(&body);
            values.sort_by(|a, b| a.0.cmp(&b.0));
            let total: f64 = values.iter().map(|v| v.1).sum();
            if values.len() == 2 && total as usize == CONNECTIONS {
                Ok(values)
            } else {
                Err(body)
            }
        },
    );
    assert_eq!(series[0].0, "0");
    assert_eq!(series[1].0, "1");

    // Prometheus saw the target up and every sample it scraped was accepted.
    let (_, up) = http_get(web, "/api/v1/query?query=up").unwrap();
    assert!(up.contains("\"value\":[") && up.contains(",\"1\"]"), "{up}");
    drop(prometheus);
    server.shutdown().unwrap();
}
