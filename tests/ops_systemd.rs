//! systemd's notify protocol, with the test as systemd: it listens on the
//! NOTIFY_SOCKET itself and reads READY, STATUS, WATCHDOG and STOPPING.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::{connect, round_trip, WeftProcess};

/// Receives messages until one contains `needle`; returns it.
fn recv_until(sock: &UnixDatagram, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("a notify message in time");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.contains(needle) {
            return msg;
        }
        assert!(Instant::now() < deadline, "no {needle:?}; last: {msg:?}");
    }
}

#[test]
fn ready_comes_once_listening_then_watchdog_pings_then_stopping_at_the_drain() {
    let dir = std::env::temp_dir().join(format!("weft-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut p = WeftProcess::start_with(
        &format!("NOTIFY_SOCKET={} WATCHDOG_USEC=400000", path.display()),
        &["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "2"],
    );
    let ready = recv_until(&sock, "READY=1");
    assert!(ready.contains("STATUS=0 connections open"), "{ready:?}");
    assert!(
        ready.contains("0 refused by limits, 0 idle timeouts"),
        "{ready:?}"
    );
    // READY means every shard listens: a connection is served at once.
    let mut c = connect(p.tcp_addr());
    assert_eq!(round_trip(&mut c, b"up"), b"up");
    // Pings come while the shards run; the counts catch up with the connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !recv_until(&sock, "WATCHDOG=1").contains("STATUS=1 connections open") {
        assert!(
            Instant::now() < deadline,
            "the status never counted the connection"
        );
    }
    drop(c);
    p.signal("TERM");
    recv_until(&sock, "STOPPING=1");
    assert!(
        p.wait_for_log("shard 1:", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
}
