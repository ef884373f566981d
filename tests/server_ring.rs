//! The shard's ring, over real sockets on 127.0.0.1: one ring per shard and no
//! more, read-side back-pressure across held receive buffers, and no descriptor
//! left behind however connections end (the life-cycle and echo suites,
//! server_lifecycle.rs and server_echo.rs, cover the rest on the same ring).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::scripted::{assert_each_once, reset_close, ScriptedFactory, Shared};
use support::{connect, read_to_end, require_io_uring, round_trip, Rng};
use weft::services::wire::{Echo, SimpleFactory};
use weft::{Server, ServerHandle};

/// Some tests count the process's descriptors: every test runs alone.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn echo_server(cores: usize) -> ServerHandle {
    require_io_uring();
    Server::builder()
        .cores(cores)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("server starts")
}

fn fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect()
}

fn io_uring_fds() -> usize {
    fds().iter().filter(|l| l.contains("io_uring")).count()
}

fn wait_open(server: &ServerHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open: u64 = server.stats().iter().map(|s| s.open()).sum();
        if open == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections open, want {n}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

// --- every ending, once ---------------------------------------------------------

fn scripted(cores: usize, record: &Shared, drain: Duration) -> ServerHandle {
    require_io_uring();
    let r = Arc::clone(record);
    Server::builder()
        .cores(cores)
        .max_output_buffer(64 << 20)
        .drain_timeout(drain)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            ScriptedFactory::new(shard, &r)
        })
        .start()
        .expect("server starts")
}

#[test]
fn each_shard_has_one_ring_of_its_own_whatever_the_connections() {
    let _g = serial();
    require_io_uring();
    let before = io_uring_fds();
    let server = echo_server(2);
    let rings = io_uring_fds() - before;
    let mut cs: Vec<TcpStream> = (0..40)
        .map(|_| connect(server.tcp_addr().unwrap()))
        .collect();
    for c in &mut cs {
        assert_eq!(round_trip(c, b"ring?"), b"ring?");
    }
    assert_eq!(io_uring_fds() - before, rings, "connections open no rings");
    drop(cs);
    server.shutdown().unwrap();
}

#[test]
fn a_connection_that_pauses_reading_gets_everything_sent_meanwhile() {
    let _g = serial();
    // While paused, the ring stops receiving for it once it holds a few buffers
    // (the rest waits in the kernel), and starts again when it reads.
    let record = Shared::default();
    let server = scripted(1, &record, Duration::from_secs(3));
    let addr = server.tcp_addr().unwrap();
    let mut c = connect(addr);
    c.write_all(b"pause").unwrap();
    let mut ack = [0u8; 7];
    c.read_exact(&mut ack).unwrap();
    assert_eq!(&ack, b"paused;");
    const N: usize = 3 << 20;
    let data = Rng::new(3).bytes(N);
    let mut r = c.try_clone().unwrap();
    let to_send = data.clone();
    let writer = thread::spawn(move || {
        c.write_all(&to_send).unwrap();
        c
    });
    let mut got = vec![0; N];
    r.read_exact(&mut got).unwrap();
    assert!(got == data, "bytes sent while paused came back different");
    drop(writer.join().unwrap());
    server.shutdown().unwrap();
}

#[test]
fn connections_closed_with_reads_in_flight_leak_no_descriptor() {
    let _g = serial();
    let record = Shared::default();
    let server = scripted(2, &record, Duration::from_millis(500));
    let addr = server.tcp_addr().unwrap();
    // Warm up: every shard sets up its ring (a descriptor that stays).
    let mut warm: Vec<TcpStream> = (0..16).map(|_| connect(addr)).collect();
    for c in &mut warm {
        assert_eq!(round_trip(c, b"w"), b"w");
    }
    drop(warm);
    wait_open(&server, 0);
    // The open count drops before the descriptor is closed: count once it is still.
    let mut before = fds().len();
    loop {
        thread::sleep(Duration::from_millis(20));
        let now = fds().len();
        if now == before {
            break;
        }
        before = now;
    }
    // Each connection has its multishot receive armed when it ends.
    for round in 0..3 {
        let mut cs: Vec<TcpStream> = (0..30).map(|_| connect(addr)).collect();
        for c in &mut cs {
            assert_eq!(round_trip(c, b"ping"), b"ping");
        }
        for (i, mut c) in cs.into_iter().enumerate() {
            match (i + round) % 4 {
                0 => drop(c),
                1 => reset_close(c),
                2 => {
                    c.write_all(b"abort").unwrap();
                    let _ = c.read(&mut [0u8; 16]);
                }
                _ => {
                    c.write_all(b"lose").unwrap();
                    let _ = read_to_end(&mut c);
                }
            }
        }
        wait_open(&server, 0);
    }
    // Closing happens on the ring's turn: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fds().len() > before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fds().len(), before, "descriptors left behind: {:?}", fds());
    // And open ones at shutdown: the whole server gives back everything.
    let _idle: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    wait_open(&server, 20);
    server.shutdown().unwrap();
    drop(_idle);
    let lost = record.lock().unwrap().lost.len();
    assert_eq!(lost, 16 + 90 + 20, "one connection_lost per connection");
    assert_each_once(&record);
}

#[test]
fn the_whole_server_gives_back_every_descriptor() {
    let _g = serial();
    require_io_uring();
    let before = fds();
    let server = echo_server(2);
    let addr = server.tcp_addr().unwrap();
    let mut cs: Vec<TcpStream> = (0..50).map(|_| connect(addr)).collect();
    for c in &mut cs {
        assert_eq!(round_trip(c, b"x"), b"x");
    }
    server.shutdown().unwrap();
    drop(cs);
    let mut after = fds();
    for b in &before {
        if let Some(i) = after.iter().position(|a| a == b) {
            after.swap_remove(i);
        }
    }
    // glommio 0.9 itself leaves one eventfd per executor behind; weft's own
    // doorbells are closed with their server. Nothing else may remain.
    let eventfds = after.iter().filter(|l| l.contains("eventfd")).count();
    after.retain(|l| !l.contains("eventfd") && !l.starts_with("/proc/"));
    assert!(after.is_empty(), "descriptors left behind: {after:?}");
    assert!(eventfds <= 2, "{eventfds} eventfds left behind by 2 shards");
}
