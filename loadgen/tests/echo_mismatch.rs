//! A server that corrupts one byte: loadgen reports the mismatch and exits non-zero.

mod support;

use std::time::Duration;

use support::{echo_server, loadgen, read_json, temp_path, Fault};

#[test]
fn one_corrupted_byte_is_a_mismatch_and_a_failed_run() {
    let addr = echo_server(Fault::CorruptByte(1000)).to_string();
    let json = temp_path("mismatch.json");
    let run = loadgen(
        &[
            "echo",
            "--target",
            &addr,
            "--connections",
            "2",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("mismatch"), "stderr:\n{}", run.stderr);
    assert!(run.stdout.contains("mismatch=1"), "stdout:\n{}", run.stdout);
    let v = read_json(&json);
    assert_eq!(v["errors"]["mismatch"], 1);
    // The other connection kept working.
    assert!(v["requests"].as_u64().unwrap() > 10);
    let _ = std::fs::remove_file(json);
}

#[test]
fn bad_usage_exits_two_with_a_message() {
    let run = loadgen(&["echo", "--size", "x"], Duration::from_secs(10));
    assert_eq!(run.status, 2);
    assert!(run.stderr.contains("--size"), "{}", run.stderr);
    let run = loadgen(
        &[
            "echo",
            "--target",
            "127.0.0.1:1",
            "--framing",
            "int8",
            "--size",
            "300",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("cannot frame"), "{}", run.stderr);
}
