//! `loadgen udp` against weft's UDP services (2 shards, in this process): every
//! datagram echoed is counted with zero errors; against discard, every datagram is
//! counted lost and the run fails.

mod support;

use std::time::Duration;

use support::{eventually, loadgen, read_json, temp_path};
use weft::services::datagram_wire::{Discard, Echo};

#[test]
fn loadgen_udp_against_weft_echo_counts_datagrams_with_zero_errors() {
    weft::runtime::check_io_uring().expect("io_uring is required");
    let server = weft::Server::builder()
        .cores(2)
        .listen_datagram(&["udp:0:interface=127.0.0.1"], |_| Echo)
        .start()
        .expect("weft udp echo starts");
    let addr = server.udp_addr().unwrap().to_string();
    let json = temp_path("weft-udp.json");
    let run = loadgen(
        &[
            "udp",
            "--target",
            &addr,
            "--connections",
            "32",
            "--size",
            "100",
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
    assert_eq!(v["mode"], "udp");
    let datagrams = v["requests"].as_u64().unwrap();
    assert!(datagrams > 1000, "only {datagrams} datagrams");
    assert_eq!(v["error_count"], 0);
    let served: u64 = server.stats().iter().map(|s| s.datagrams_out()).sum();
    assert!(served >= datagrams, "weft sent {served} for {datagrams}");
    server.shutdown().unwrap();
    let _ = std::fs::remove_file(json);
}

#[test]
fn loadgen_udp_counts_every_unanswered_datagram_as_lost() {
    weft::runtime::check_io_uring().expect("io_uring is required");
    let server = weft::Server::builder()
        .cores(2)
        .listen_datagram(&["udp:0:interface=127.0.0.1"], |_| Discard)
        .start()
        .expect("weft udp discard starts");
    let addr = server.udp_addr().unwrap().to_string();
    let json = temp_path("weft-udp-lost.json");
    let run = loadgen(
        &[
            "udp",
            "--target",
            &addr,
            "--connections",
            "4",
            "--duration",
            "300ms",
            "--loss-timeout",
            "50ms",
            "--drain",
            "100ms",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(run.status, 1, "a run with losses fails: {}", run.stdout);
    let v = read_json(&json);
    assert_eq!(v["requests"], 0);
    let lost = v["errors"]["lost"].as_u64().unwrap();
    assert!(lost >= 4, "every flow's datagrams are lost: {lost}");
    // The last datagrams may still be on their way into weft when loadgen exits.
    let received = || -> u64 { server.stats().iter().map(|s| s.datagrams_in()).sum() };
    assert!(
        eventually(Duration::from_secs(10), || received() >= lost),
        "weft got {} datagrams, {lost} counted lost",
        received()
    );
    server.shutdown().unwrap();
    let _ = std::fs::remove_file(json);
}
