//! `loadgen chat` with its clients split over two `weft serve chat` processes (2 shards
//! each) joined by a real `redis-server` on a loopback port: every line is expected at
//! every client of both processes, so a bus that lost or doubled lines fails the run.
//!
//! The `weft` binary is built by this test (a no-op when `cargo test --workspace` built
//! it already) into the directory that holds the `loadgen` binary.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::{loadgen, read_json, temp_path};

const WAIT: Duration = Duration::from_secs(30);

/// A child killed when dropped, its stderr lines collected by a thread.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e} (see .ci/test for the packages)"));
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            log: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.log.push(l),
                Err(_) => panic!("no {needle:?} line; output so far: {:?}", self.log),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Builds the `weft` binary in the profile this test was built with; returns its path.
fn weft_binary() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let dir = loadgen.parent().expect("the binary's directory");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "weft", "--bin", "weft"]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --bin weft failed");
    dir.join("weft")
}

fn redis_server(port: u16) -> Proc {
    let dir = temp_path(&format!("redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--logfile", ""])
        .arg("--dir")
        .arg(&dir);
    // redis-server logs to stdout; "Ready to accept connections" says it listens.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server (see .ci/test for the package)");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut p = Proc {
        child,
        lines: rx,
        log: Vec::new(),
    };
    p.wait_for("Ready to accept connections");
    p
}

/// `weft serve chat` on 2 shards with the bus; returns it and its `HOST:PORT`.
fn chat_on_bus(weft: &PathBuf, redis_port: u16) -> (Proc, String) {
    let mut cmd = Command::new(weft);
    cmd.args(["serve", "chat", "tcp:0:interface=127.0.0.1", "--cores", "2"])
        .arg("--bus")
        .arg(format!("redis://127.0.0.1:{redis_port}/loadgen"))
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn(cmd);
    let line = p.wait_for("listening on tcp:");
    let addr = line["listening on tcp:".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    p.wait_for("bus: subscribed");
    p.wait_for("bus: publishing");
    (p, addr)
}

#[test]
fn chat_clients_on_two_processes_joined_by_redis_get_every_line() {
    let weft = weft_binary();
    let port = free_port();
    let _redis = redis_server(port);
    let (_a, on_a) = chat_on_bus(&weft, port);
    let (_b, on_b) = chat_on_bus(&weft, port);
    let json = temp_path("chat-bus.json");
    let targets = format!("{on_a},{on_b}");
    let run = loadgen(
        &[
            "chat",
            "--target",
            &targets,
            "--connections",
            "6",
            "--threads",
            "2",
            "--rate",
            "200",
            "--duration",
            "1s",
            "--drain",
            "5s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let v = read_json(&json);
    let lines = v["requests"].as_u64().unwrap();
    assert!(
        (190..=210).contains(&lines),
        "{lines} lines at 200/s for 1s"
    );
    // Every line reached all six clients, three of them across the bus.
    assert_eq!(v["deliveries"].as_u64().unwrap(), lines * 6);
    assert_eq!(v["latency_us"]["count"].as_u64().unwrap(), lines * 5);
    assert_eq!(v["error_count"], 0);
    assert_eq!(v["target"], targets.as_str());
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_dir_all(temp_path(&format!("redis-{port}")));
}
