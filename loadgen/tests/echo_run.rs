//! loadgen against a plain echo server for about a second: requests counted, no errors,
//! JSON written.

mod support;

use std::time::Duration;

use support::{echo_server, loadgen, read_json, temp_path, Fault};

#[test]
fn echo_closed_loop_counts_requests_without_errors() {
    let addr = echo_server(Fault::None).to_string();
    let json = temp_path("echo.json");
    let run = loadgen(
        &[
            "echo",
            "--target",
            &addr,
            "--connections",
            "4",
            "--depth",
            "2",
            "--size",
            "100",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(
        run.status, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let v = read_json(&json);
    let requests = v["requests"].as_u64().unwrap();
    assert!(requests > 100, "only {requests} requests");
    assert_eq!(v["error_count"], 0);
    assert_eq!(v["mode"], "echo");
    assert_eq!(v["connections"], 4);
    // Every request's bytes went out and came back.
    let frame = 100;
    assert!(v["bytes_received"].as_u64().unwrap() >= requests * frame);
    assert!(
        run.stderr.contains("open 4"),
        "no live line:\n{}",
        run.stderr
    );
    let _ = std::fs::remove_file(json);
}

#[test]
fn echo_framed_open_loop_keeps_the_offered_rate() {
    let addr = echo_server(Fault::None).to_string();
    for framing in ["line", "netstring", "int16"] {
        let json = temp_path(&format!("framed-{framing}.json"));
        let run = loadgen(
            &[
                "echo",
                "--target",
                &addr,
                "--connections",
                "2",
                "--rate",
                "1000",
                "--framing",
                framing,
                "--duration",
                "1s",
                "--json",
                json.to_str().unwrap(),
                "--quiet",
            ],
            Duration::from_secs(20),
        );
        assert_eq!(run.status, 0, "{framing}: {}\n{}", run.stdout, run.stderr);
        let v = read_json(&json);
        let r = v["requests"].as_u64().unwrap();
        assert!(
            (990..=1010).contains(&r),
            "{framing}: {r} requests at 1000/s for 1s"
        );
        let _ = std::fs::remove_file(json);
    }
}

#[test]
fn requests_bound_stops_the_run() {
    let addr = echo_server(Fault::None).to_string();
    let json = temp_path("requests.json");
    let run = loadgen(
        &[
            "echo",
            "--target",
            &addr,
            "--connections",
            "2",
            "--requests",
            "500",
            "--json",
            json.to_str().unwrap(),
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let v = read_json(&json);
    assert_eq!(v["requests"], 500);
    let _ = std::fs::remove_file(json);
}
