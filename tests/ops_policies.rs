//! The connection policies over real sockets: the idle timeout, the per-peer cap
//! across shards, and a reader kept to its rate.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{accepted_per_shard, connect, round_trip, WeftProcess};

/// Reads until EOF or a reset; returns what was read and how long it took.
fn until_closed(c: &mut std::net::TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    (got, start.elapsed())
}

#[test]
fn idle_timeout_closes_a_silent_client_and_spares_a_chatty_one() {
    let p = WeftProcess::start(&[
        "serve",
        "echo",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--idle-timeout",
        "1",
    ]);
    let mut silent = connect(p.tcp_addr());
    let mut chatty = connect(p.tcp_addr());
    let talk = std::thread::spawn(move || {
        for i in 0..12u8 {
            assert_eq!(round_trip(&mut chatty, &[i]), [i], "chatty was cut at {i}");
            std::thread::sleep(Duration::from_millis(250));
        }
        chatty
    });
    let (got, waited) = until_closed(&mut silent);
    assert_eq!(got, b"");
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let _chatty = talk.join().unwrap(); // 3 s of talk, every gap under the timeout
    let (code, log) = p.terminate();
    assert_eq!(code, 0);
    assert!(log.iter().any(|l| l.contains("idle timeout")), "{log:?}");
}

#[test]
fn the_per_peer_cap_holds_across_shards() {
    let p = WeftProcess::start(&[
        "serve",
        "echo",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--max-connections-per-peer",
        "3",
    ]);
    let addr = p.tcp_addr();
    let mut admitted: Vec<_> = (0..3).map(|_| connect(addr)).collect();
    for c in &mut admitted {
        assert_eq!(round_trip(c, b"ok"), b"ok");
    }
    // Every later connection from 127.0.0.1, whichever shard takes it, is refused.
    for _ in 0..12 {
        let mut extra = connect(addr);
        let (got, _) = until_closed(&mut extra);
        assert_eq!(
            got,
            b"Too many connections from your address, try later\r\n"
        );
    }
    drop(admitted.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut c = connect(addr);
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        if c.read_exact(&mut b).is_ok() && &b == b"x" {
            again = Some(c);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(again.is_some(), "a freed slot was never reused");
    drop((admitted, again));
    let (code, log) = p.terminate();
    assert_eq!(code, 0);
    let per_shard = accepted_per_shard(&log);
    assert!(
        per_shard.len() == 2 && per_shard.iter().all(|&n| n > 0),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("refusing connection: too many connections from this peer")),
        "{log:?}"
    );
}

/// Starts weft with `limit` (a rate option and its value), pushes data into echo
/// connections as fast as they take it, and counts what comes back (what the
/// server read) over 3 s after the first byte; returns (bytes, seconds).
fn echoed_over_3_s(limit: [&str; 2], clients: usize) -> (f64, f64) {
    let p = WeftProcess::start(&[
        "serve",
        "echo",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        limit[0],
        limit[1],
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut pushers = Vec::new();
    for _ in 0..clients {
        let c = connect(p.tcp_addr());
        let mut writer = c.try_clone().unwrap();
        let stop_w = Arc::clone(&stop);
        pushers.push(std::thread::spawn(move || {
            let chunk = [b'x'; 16 * 1024];
            while !stop_w.load(Ordering::Relaxed) {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
        }));
        readers.push(c);
    }
    let start = Instant::now();
    let counts: Vec<_> = readers
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0;
                while start.elapsed() < Duration::from_secs(3) {
                    total += c.read(&mut buf).unwrap();
                }
                let _ = c.shutdown(std::net::Shutdown::Both); // ends the blocked writer
                total
            })
        })
        .collect();
    let total: usize = counts.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in pushers {
        let _ = h.join();
    }
    eprintln!(
        "{} {}: {clients} readers got {:.0} B/s over {secs:.2} s",
        limit[0],
        limit[1],
        total as f64 / secs
    );
    (total as f64, secs)
}

/// One second of burst, plus per connection what was already received when a pause
/// took effect (a 64 KiB read and the ring's 16 x 8 KiB buffers); unthrottled,
/// loopback would carry hundreds of megabytes in this time.
const SLACK: f64 = 256.0 * 1024.0;

#[test]
fn a_reader_is_kept_to_its_read_rate() {
    const RATE: f64 = 64_000.0;
    let (total, secs) = echoed_over_3_s(["--read-rate", "64000"], 1);
    assert!(
        total <= RATE * (secs + 1.0) + SLACK,
        "{total} bytes in {secs} s"
    );
    assert!(total >= RATE * secs * 0.5, "{total} bytes in {secs} s");
}

#[test]
fn the_total_read_rate_holds_for_every_connection_together() {
    const RATE: f64 = 64_000.0;
    let (total, secs) = echoed_over_3_s(["--total-read-rate", "64000"], 4);
    assert!(
        total <= RATE * (secs + 1.0) + 4.0 * SLACK,
        "{total} bytes in {secs} s"
    );
    assert!(total >= RATE * secs * 0.5, "{total} bytes in {secs} s");
}

/// A pure producer (chargen writes whenever it is resumed, and reads nothing) kept to
/// its write rate: what each of four readers gets over 3 s.
#[test]
fn a_pure_producer_is_kept_to_its_write_rate() {
    const RATE: f64 = 64_000.0;
    let p = WeftProcess::start(&[
        "serve",
        "chargen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--write-rate",
        "64000",
    ]);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = connect(p.tcp_addr());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0;
                while start.elapsed() < Duration::from_secs(3) {
                    total += c.read(&mut buf).unwrap();
                }
                (total as f64, start.elapsed().as_secs_f64())
            })
        })
        .collect();
    for (total, secs) in readers.into_iter().map(|h| h.join().unwrap()) {
        eprintln!(
            "chargen --write-rate 64000: {:.0} B/s over {secs:.2} s",
            total / secs
        );
        // One second of burst plus one chargen fill (the 64 KiB high watermark),
        // which is written before the bucket is charged; unthrottled, loopback
        // carries hundreds of megabytes in this time.
        assert!(
            total <= RATE * (secs + 1.0) + SLACK,
            "{total} bytes in {secs} s"
        );
        assert!(total >= RATE * secs * 0.5, "{total} bytes in {secs} s");
    }
    let (code, log) = p.terminate();
    assert_eq!(code, 0, "{log:?}");
}
