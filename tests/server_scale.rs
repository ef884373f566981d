//! Many connections and too few descriptors, against the `weft` binary (a separate
//! process, so that its descriptors and memory are its own).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::{connect, raise_nofile, round_trip, WeftProcess};

#[test]
fn ten_thousand_idle_connections_on_two_shards_are_held_and_still_answer() {
    const N: usize = 10_000;
    let limit = raise_nofile();
    assert!(
        limit as usize > N + 100,
        "RLIMIT_NOFILE hard limit {limit} is too low for this test"
    );
    let p = WeftProcess::start_with(
        &format!("ulimit -n {};", N + 1000),
        &[
            "serve",
            "echo",
            "tcp:0:interface=127.0.0.1:backlog=4096",
            "--cores",
            "2",
        ],
    );
    let addr = p.tcp_addr();
    // Warm up: one connection, so the shards' own buffers are counted in the base.
    let mut warm = connect(addr);
    assert_eq!(round_trip(&mut warm, b"warm"), b"warm");
    drop(warm);
    thread::sleep(Duration::from_millis(200));
    let rss_before = p.rss();

    let mut conns: Vec<TcpStream> = Vec::with_capacity(N);
    for _ in 0..N {
        conns.push(connect(addr));
    }
    // Every one of them answers.
    for (i, c) in conns.iter_mut().enumerate() {
        let b = [(i % 251) as u8];
        c.write_all(&b).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], (i % 251) as u8);
    }
    thread::sleep(Duration::from_millis(300));
    let rss_after = p.rss();
    let per_conn = rss_after.saturating_sub(rss_before) as f64 / N as f64;
    eprintln!(
        "RSS {} KiB before, {} KiB with {N} idle connections: {per_conn:.0} bytes each",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        per_conn <= 2048.0,
        "{per_conn:.0} bytes of user-space memory per idle connection"
    );
    drop(conns);
    let (code, log) = p.terminate();
    assert_eq!(code, 0);
    let per_shard = support::accepted_per_shard(&log);
    assert!(per_shard.iter().all(|&n| n > 1000), "{per_shard:?}");
}

#[test]
fn running_out_of_descriptors_backs_off_without_spinning_and_recovers() {
    // 64 descriptors: a few for the process, the rest for connections.
    let mut p = WeftProcess::start_with(
        "ulimit -n 64;",
        &["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "1"],
    );
    let addr = p.tcp_addr();
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..120 {
        held.push(connect(addr)); // the kernel completes them from the backlog
    }
    assert!(
        p.wait_for_log("backing off", Duration::from_secs(10)),
        "no back-off logged: {:?}",
        p.log
    );
    // While out of descriptors, the shard must sleep, not spin.
    let t0 = p.cpu_ticks();
    thread::sleep(Duration::from_secs(1));
    let used = p.cpu_ticks() - t0;
    assert!(
        used < 20,
        "the server burned {used} ticks in 1 s while out of descriptors"
    );
    // Free descriptors: the queued connections are accepted and answered.
    let last = held.pop().unwrap();
    held.truncate(20);
    let mut last = last;
    last.write_all(b"late").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = [0u8; 4];
    last.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    last.read_exact(&mut got)
        .expect("the queued connection is served after recovery");
    assert_eq!(&got, b"late");
    assert!(Instant::now() < deadline);
    let mut fresh = connect(addr);
    assert_eq!(round_trip(&mut fresh, b"new"), b"new");
}
