//! Peers that do not read cost a watermark, not a cap: an echo connection whose
//! output is above the high watermark stops being read, so its writer blocks in
//! the kernel instead of growing the server; a protocol that ignores
//! `pause_producing` is bounded by the shard's output budget; paused connections
//! keep no receive buffers; a burst larger than the receive pool is delivered whole.

mod support;
mod support_mesh;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use support::{connect, never_reading, require_io_uring, round_trip};
use support_mesh::{shutdown_within, wait_until};
use weft::services::wire::{Echo, SimpleFactory};
use weft::transport::DEFAULT_HIGH_WATERMARK;
use weft::{Backpressure, Protocol, Server, ServerHandle, Transport};

fn total(server: &ServerHandle, f: impl Fn(&weft::ShardStats) -> u64) -> u64 {
    server.stats().iter().map(|s| f(s)).sum()
}

/// Writes to `s` until the kernel refuses more for a while; returns the bytes sent.
fn write_until_blocked(s: &mut TcpStream) -> usize {
    s.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(300) {
        match s.write(&chunk) {
            Ok(n) => {
                sent += n;
                quiet_since = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("writer: {e}"),
        }
        assert!(sent < 512 << 20, "the server never stopped reading");
    }
    sent
}

#[test]
fn echo_peers_that_never_read_cost_one_watermark_and_nobody_is_aborted() {
    require_io_uring();
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("start");
    let addr = server.tcp_addr().unwrap();
    let mut writers: Vec<TcpStream> = (0..20).map(|_| never_reading(addr)).collect();
    let mut pinger = connect(addr);
    for w in &mut writers {
        let sent = write_until_blocked(w);
        // The kernel buffers some of it on both sides; the server stops reading
        // once the echo it cannot send passes its high watermark.
        assert!(sent > 0);
    }
    let held = total(&server, |s| s.output_buffered());
    let per_conn = held / writers.len() as u64;
    assert!(
        per_conn <= 2 * DEFAULT_HIGH_WATERMARK as u64,
        "each silent peer holds {per_conn} bytes of output, over two watermarks"
    );
    assert_eq!(
        total(&server, |s| s.closed_output_limit()),
        0,
        "nobody is aborted"
    );
    assert!(total(&server, |s| s.pauses()) >= writers.len() as u64);
    for i in 0..200u32 {
        let msg = i.to_be_bytes();
        assert_eq!(
            round_trip(&mut pinger, &msg),
            msg,
            "a reading client is served"
        );
    }
    drop(writers);
    shutdown_within(server, Duration::from_secs(10));
}

/// Writes 4 MiB for every read, ignoring `pause_producing`, and keeps reading.
struct Flood;

impl Protocol for Flood {
    fn data_received(&mut self, _data: &[u8], t: &mut Transport) {
        t.write_bytes(bytes::Bytes::from_static(&[b'f'; 4 << 20]));
    }

    fn backpressure(&self) -> Backpressure {
        Backpressure::KeepReading
    }
}

#[test]
fn the_shard_output_budget_bounds_protocols_that_ignore_pause_producing() {
    require_io_uring();
    const BUDGET: usize = 8 << 20;
    let server = Server::builder()
        .cores(2)
        .shard_output_budget(BUDGET)
        .listen("tcp:0:interface=127.0.0.1", |_| {
            SimpleFactory::new(|| Flood)
        })
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("start");
    let flood = server.addresses()[0].socket_addr().unwrap();
    let echo = server.addresses()[1].socket_addr().unwrap();
    let mut peers: Vec<TcpStream> = (0..40).map(|_| never_reading(flood)).collect();
    for _ in 0..20 {
        for p in &mut peers {
            let _ = p.write(b"more please");
        }
        // Published after each turn's budget check: never over the budget.
        let held = total(&server, |s| s.output_buffered());
        assert!(
            held <= 2 * BUDGET as u64,
            "{held} bytes held over two shards' budgets"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until(
        Duration::from_secs(10),
        "the budget aborted someone",
        || total(&server, |s| s.budget_aborts()) > 0,
    );
    let mut c = connect(echo);
    assert_eq!(round_trip(&mut c, b"still answering"), b"still answering");
    drop(peers);
    shutdown_within(server, Duration::from_secs(10));
}

static GO: AtomicBool = AtomicBool::new(false);

/// Does not read until the test says go, then echoes.
struct Late;

impl Protocol for Late {
    fn connection_made(&mut self, t: &mut Transport) {
        t.pause_reading();
        let h = t.handle();
        let r = t.reactor().clone();
        t.reactor().spawn_local(async move {
            while !GO.load(Ordering::SeqCst) {
                r.sleep(Duration::from_millis(10)).await;
            }
            h.resume_reading();
        });
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

#[test]
fn paused_connections_keep_no_receive_buffers_and_get_everything_on_resume() {
    require_io_uring();
    let server = Server::builder()
        .cores(1)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Late))
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("start");
    let late = server.addresses()[0].socket_addr().unwrap();
    let echo = server.addresses()[1].socket_addr().unwrap();
    // 200 × 64 KiB is three times the shard's pool (512 × 8 KiB): it stays in the
    // kernel while the connections do not read.
    const CONNS: usize = 200;
    const EACH: usize = 64 * 1024;
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| connect(late)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(&vec![i as u8; EACH]).unwrap();
    }
    let mut pinger = connect(echo);
    for i in 0..100u32 {
        let msg = i.to_be_bytes();
        assert_eq!(
            round_trip(&mut pinger, &msg),
            msg,
            "a reading client is served"
        );
    }
    assert_eq!(
        total(&server, |s| s.ring_no_buffers()),
        0,
        "paused connections took no buffers from the pool"
    );
    GO.store(true, Ordering::SeqCst);
    for (i, c) in conns.iter_mut().enumerate() {
        let mut back = vec![0u8; EACH];
        c.read_exact(&mut back)
            .expect("the whole echo after resuming");
        assert!(back.iter().all(|&b| b == i as u8));
    }
    shutdown_within(server, Duration::from_secs(10));
}

/// The shard blocks in `data_received` until the test lets it go.
static STALL: (Mutex<(bool, bool)>, Condvar) = (Mutex::new((false, false)), Condvar::new());

struct Stall;

impl Protocol for Stall {
    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {
        let (lock, cv) = &STALL;
        let mut state = lock.lock().unwrap();
        state.0 = true; // stalled
        cv.notify_all();
        while !state.1 {
            state = cv.wait(state).unwrap();
        }
    }
}

#[test]
fn a_burst_larger_than_the_receive_pool_is_delivered_whole() {
    require_io_uring();
    let server = Server::builder()
        .cores(1)
        .receive_buffers(16)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .listen("tcp:0:interface=127.0.0.1", |_| {
            SimpleFactory::new(|| Stall)
        })
        .start()
        .expect("start");
    let echo = server.addresses()[0].socket_addr().unwrap();
    let stall = server.addresses()[1].socket_addr().unwrap();
    const CONNS: usize = 64;
    const EACH: usize = 32 * 1024;
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| connect(echo)).collect();
    for c in &mut conns {
        assert_eq!(round_trip(c, b"armed"), b"armed");
    }
    // Hold the shard in a callback while every connection's data arrives, so that
    // its next turn finds 64 × 32 KiB waiting for a pool of 16 × 8 KiB.
    let mut staller = connect(stall);
    staller.write_all(b"stall").unwrap();
    {
        let (lock, cv) = &STALL;
        let mut state = lock.lock().unwrap();
        while !state.0 {
            state = cv.wait(state).unwrap();
        }
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(&vec![i as u8; EACH]).unwrap();
    }
    {
        let (lock, cv) = &STALL;
        lock.lock().unwrap().1 = true;
        cv.notify_all();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut back = vec![0u8; EACH];
        c.read_exact(&mut back)
            .expect("the whole echo after the pool refilled");
        assert!(back.iter().all(|&b| b == i as u8));
    }
    assert!(
        total(&server, |s| s.ring_no_buffers()) > 0,
        "the burst ran the pool dry"
    );
    shutdown_within(server, Duration::from_secs(10));
}

#[test]
fn a_receive_pool_size_outside_the_range_fails_start() {
    for bad in [8, 100, 65536] {
        let r = Server::builder()
            .cores(1)
            .receive_buffers(bad)
            .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
            .start();
        let err = r.err().expect("a bad pool size fails start").to_string();
        assert!(err.contains("receive buffers"), "{err}");
    }
}
