//! Socket activation: `systemd-socket-activate` (Debian's systemd package) binds a
//! TCP port or a UNIX path and execs weft, which serves
//! `systemd:domain=INET:index=0` (or `domain=UNIX`) on every shard.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{accepted_per_shard, connect, require_io_uring};

/// Where systemd-socket-activate listens: a TCP port on loopback or a UNIX path.
enum Listen {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

/// A connection to either kind of socket.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Listen {
    fn arg(&self) -> String {
        match self {
            Listen::Tcp(a) => a.to_string(),
            Listen::Unix(p) => p.display().to_string(),
        }
    }

    fn connect(&self) -> Box<dyn Stream> {
        match self {
            Listen::Tcp(a) => Box::new(connect(*a)),
            Listen::Unix(p) => Box::new(std::os::unix::net::UnixStream::connect(p).unwrap()),
        }
    }
}

/// Runs weft under systemd-socket-activate listening on `listen`, serving
/// `endpoint`; serves 65 connections and stops it; returns the connections each
/// shard accepted.
fn activated(listen: Listen, endpoint: &str, listening: &str) -> Vec<u64> {
    require_io_uring();
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &listen.arg()])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "echo", endpoint, "--cores", "2"])
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
    let mut first = listen.connect();
    first.write_all(b"first\r\n").unwrap();
    let mut b = [0u8; 7];
    first.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"first\r\n");
    wait_for(listening, &mut log);
    // Many at once, so that both shards' accepts take some.
    let mut conns: Vec<_> = (0..64).map(|_| listen.connect()).collect();
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

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn every_shard_serves_the_inherited_socket() {
    // Every shard arms a multishot accept on (a duplicate of) the one inherited
    // socket; which ring the kernel hands a connection to is its choice, and a
    // sequential burst has been seen to go to one of them, so only the answers and
    // both shards' reports are checked (see docs/operations.md, socket activation).
    let per_shard = activated(
        Listen::Tcp(free_port()),
        "systemd:domain=INET:index=0",
        "listening on tcp:127.0.0.1",
    );
    assert_eq!(per_shard.len(), 2);
}

#[test]
fn every_shard_serves_an_inherited_unix_socket() {
    let dir = tempfile_dir();
    let path = dir.join("echo.sock");
    let per_shard = activated(
        Listen::Unix(path.clone()),
        "systemd:domain=UNIX:index=0",
        &format!("listening on unix:{}", path.display()),
    );
    assert_eq!(per_shard.len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// A fresh directory for a socket file, under the system's temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weft-activation-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn an_inherited_socket_of_another_domain_is_refused_with_exit_2() {
    require_io_uring();
    let addr = free_port();
    let child = Command::new("systemd-socket-activate")
        .args(["-l", &addr.to_string()])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "echo", "systemd:domain=UNIX:index=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) must be installed");
    // The first connection makes systemd-socket-activate exec weft; the kernel
    // completes it in the backlog before anything accepts. Retried until the socket
    // is bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a domain=UNIX stream socket"), "{err}");
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
