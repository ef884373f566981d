//! loadgen connect: a connection storm against a listener, and refused connects by errno.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::{loadgen, read_json, temp_path};

#[test]
fn connect_storm_counts_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let json = temp_path("connect.json");
    let run = loadgen(
        &[
            "connect",
            "--target",
            &addr,
            "--rate",
            "500",
            "--duration",
            "0.5s",
            "--json",
            json.to_str().unwrap(),
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let v = read_json(&json);
    let n = v["requests"].as_u64().unwrap();
    assert!((240..=260).contains(&n), "{n} connects at 500/s for 0.5s");
    let _ = std::fs::remove_file(json);
}

#[test]
fn refused_connects_are_errors_by_errno() {
    // Bind then drop to find a port that nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let json = temp_path("refused.json");
    let run = loadgen(
        &[
            "connect",
            "--target",
            &format!("127.0.0.1:{port}"),
            "--rate",
            "100",
            "--duration",
            "0.3s",
            "--json",
            json.to_str().unwrap(),
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 1);
    let v = read_json(&json);
    assert!(
        v["errors"]["connect:ECONNREFUSED"].as_u64().unwrap() >= 25,
        "{}",
        v["errors"]
    );
    let _ = std::fs::remove_file(json);
}
