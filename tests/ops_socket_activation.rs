//! Socket activation: `systemd-socket-activate` (Debian's systemd package) binds the
//! port and execs weft, which serves `systemd:domain=INET:index=0` on every shard.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{accepted_per_shard, connect, require_io_uring, round_trip};

/// Runs weft under systemd-socket-activate, serves 65 connections and stops it;
/// returns the connections each shard accepted.
fn activated() -> Vec<u64> {
    require_io_uring();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}")])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "echo",
            "systemd:domain=INET:index=0",
            "--cores",
            "2",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) must be installed");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !log.iter().any(|l: &String| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            log.push(
                rx.recv_timeout(left)
                    .unwrap_or_else(|_| panic!("no {needle:?}: {log:?}")),
            );
        }
    };
    // systemd-socket-activate execs weft on the first connection, which then waits
    // in the inherited socket's backlog and is served.
    wait_for("Listening on", &mut log);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut first = connect(addr);
    assert_eq!(round_trip(&mut first, b"first\r\n"), b"first\r\n");
    wait_for("listening on tcp:127.0.0.1", &mut log);
    // Many at once, so that both shards' accepts take some.
    let mut conns: Vec<_> = (0..64).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(format!("{i:03}").as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut b = [0u8; 3];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, format!("{i:03}").as_bytes());
    }
    drop((first, conns));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for("shard 1:", &mut log);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let per_shard = accepted_per_shard(&log);
    assert_eq!(per_shard.iter().sum::<u64>(), 65, "{log:?}");
    per_shard
}

#[test]
fn every_shard_serves_the_inherited_socket() {
    // Every shard arms a multishot accept on (a duplicate of) the one inherited
    // socket; which ring the kernel hands a connection to is its choice, and a
    // sequential burst has been seen to go to one of them, so only the answers and
    // both shards' reports are checked (see docs/operations.md, socket activation).
    let per_shard = activated();
    assert_eq!(per_shard.len(), 2);
}

#[test]
fn a_systemd_endpoint_without_activation_is_refused_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "echo", "systemd:domain=INET:index=0"])
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not socket-activated"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "echo", "systemd:domain=INET"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`index`"));
}
