//! A server that stalls for 200 ms under open-loop load: response time (from the intended
//! send time) shows the stall, service time (from the actual send) hides it.

mod support;

use std::time::Duration;

use support::{echo_server, loadgen, read_json, temp_path, Fault};

#[test]
fn open_loop_response_time_shows_a_stall_that_service_time_hides() {
    let stall = Duration::from_millis(200);
    let addr = echo_server(Fault::Stall(Duration::from_millis(500), stall)).to_string();
    let json = temp_path("stall.json");
    let run = loadgen(
        &[
            "echo",
            "--target",
            &addr,
            "--connections",
            "1",
            "--rate",
            "2000",
            "--duration",
            "1.5s",
            "--json",
            json.to_str().unwrap(),
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let v = read_json(&json);
    let response_p999 = v["latency_us"]["p999"].as_f64().unwrap();
    let response_p99 = v["latency_us"]["p99"].as_f64().unwrap();
    let service_p999 = v["service_us"]["p999"].as_f64().unwrap();
    let service_p99 = v["service_us"]["p99"].as_f64().unwrap();
    // Requests intended at the start of the stall waited all of it (minus the few
    // hundred microseconds that separate the top 0.1 % of them).
    assert!(
        response_p999 >= 190_000.0,
        "response p99.9 {response_p999} us does not show the 200 ms stall"
    );
    assert!(response_p99 >= 100_000.0, "response p99 {response_p99} us");
    // Only the one request in flight during the stall has a long service time (the
    // bound leaves room for a loaded machine's scheduling, well short of the stall).
    assert!(
        service_p999 < 150_000.0 && service_p99 < 150_000.0,
        "service p99 {service_p99} us, p99.9 {service_p999} us"
    );
    assert!(
        v["queued"].as_u64().unwrap() > 100,
        "requests should have queued"
    );
    let _ = std::fs::remove_file(json);
}
