//! loadgen chat against a small chat server: every line reaches every client.

mod support;

use std::time::Duration;

use support::{chat_server, loadgen, read_json, temp_path};

#[test]
fn chat_lines_are_delivered_to_every_client_and_measured() {
    let addr = chat_server().to_string();
    let json = temp_path("chat.json");
    let run = loadgen(
        &[
            "chat",
            "--target",
            &addr,
            "--connections",
            "4",
            "--threads",
            "2",
            "--rate",
            "200",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let v = read_json(&json);
    let lines = v["requests"].as_u64().unwrap();
    assert!(
        (190..=210).contains(&lines),
        "{lines} lines at 200/s for 1s"
    );
    assert_eq!(v["deliveries"].as_u64().unwrap(), lines * 4);
    // Latency is sampled at the three other clients of each line.
    assert_eq!(v["latency_us"]["count"].as_u64().unwrap(), lines * 3);
    assert_eq!(v["error_count"], 0);
    let _ = std::fs::remove_file(json);
}

#[test]
fn chat_closed_loop_runs() {
    let addr = chat_server().to_string();
    let run = loadgen(
        &[
            "chat",
            "--target",
            &addr,
            "--connections",
            "3",
            "--duration",
            "0.5s",
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("deliveries"), "{}", run.stdout);
}
