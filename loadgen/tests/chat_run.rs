//! loadgen chat against a small chat server: every line reaches every client.

mod support;

use std::time::Duration;

use std::sync::atomic::Ordering;

use support::{chat_room, chat_server, loadgen, read_json, temp_path};

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

#[test]
fn chat_spreads_clients_round_robin_over_several_targets_and_expects_every_line_at_all() {
    let room = chat_room(2);
    let targets = format!("{},{}", room[0].0, room[1].0);
    let json = temp_path("chat-two.json");
    let run = loadgen(
        &[
            "chat",
            "--target",
            &targets,
            "--connections",
            "5",
            "--threads",
            "2",
            "--rate",
            "100",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    // Clients 0, 2, 4 on the first listener; 1, 3 on the second.
    assert_eq!(room[0].1.load(Ordering::SeqCst), 3);
    assert_eq!(room[1].1.load(Ordering::SeqCst), 2);
    let v = read_json(&json);
    let lines = v["requests"].as_u64().unwrap();
    assert!((90..=110).contains(&lines), "{lines} lines at 100/s for 1s");
    assert_eq!(v["deliveries"].as_u64().unwrap(), lines * 5);
    assert_eq!(v["error_count"], 0);
    let _ = std::fs::remove_file(json);
}

#[test]
fn several_targets_are_refused_outside_chat() {
    let run = loadgen(
        &[
            "echo",
            "--target",
            "127.0.0.1:1,127.0.0.1:2",
            "--duration",
            "1s",
        ],
        Duration::from_secs(20),
    );
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("chat only"), "{}", run.stderr);
}
