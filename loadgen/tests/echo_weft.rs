//! loadgen against weft's own echo server (2 shards, in this process) for about a
//! second: requests counted, zero errors, JSON written.

mod support;

use std::time::Duration;

use support::{loadgen, read_json, temp_path};
use weft::services::wire::{Echo, SimpleFactory};

#[test]
fn loadgen_against_weft_echo_counts_requests_with_zero_errors() {
    weft::runtime::check_io_uring().expect("io_uring is required");
    let server = weft::Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("weft echo starts");
    let addr = server.tcp_addr().unwrap().to_string();
    let json = temp_path("weft-echo.json");
    let run = loadgen(
        &[
            "echo",
            "--target",
            &addr,
            "--connections",
            "16",
            "--depth",
            "2",
            "--size",
            "64",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(
        run.status, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let v = read_json(&json);
    let requests = v["requests"].as_u64().unwrap();
    assert!(requests > 1000, "only {requests} requests");
    assert_eq!(v["error_count"], 0);
    assert_eq!(v["target"], addr.as_str());
    let served: u64 = server.stats().iter().map(|s| s.bytes_out()).sum();
    assert!(
        served >= requests * 64,
        "weft sent {served} bytes for {requests} requests"
    );
    server.shutdown().unwrap();
    let _ = std::fs::remove_file(json);
}
