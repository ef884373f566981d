//! The native io_uring data path (`ServerBuilder::native_io(true)`), over real sockets
//! on 127.0.0.1 with 2 shards: every byte back, every way a connection ends reported
//! once, graceful shutdown, read-side back-pressure, and no descriptor left behind.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::scripted::{assert_each_once, reset_close, wait_lost, ScriptedFactory, Shared};
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
        .native_io(true)
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

#[test]
fn connections_are_served_on_a_native_ring_of_their_shard() {
    let _g = serial();
    let server = echo_server(1);
    let before = io_uring_fds();
    let mut c = connect(server.tcp_addr().unwrap());
    assert_eq!(round_trip(&mut c, b"native?"), b"native?");
    assert_eq!(
        io_uring_fds(),
        before + 1,
        "the shard should have set up its own ring beside glommio's"
    );
    drop(c);
    server.shutdown().unwrap();
}

#[test]
fn two_hundred_concurrent_connections_on_two_shards_get_every_byte_back() {
    let _g = serial();
    let server = echo_server(2);
    let addr = server.tcp_addr().unwrap();
    let mut clients: Vec<_> = (0..200).map(|_| connect(addr)).collect();
    for round in 0..3u8 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("conn {i} round {round};").as_bytes())
                .unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let want = format!("conn {i} round {round};");
            let mut got = vec![0; want.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes());
        }
    }
    let accepted: Vec<u64> = server.stats().iter().map(|s| s.accepted()).collect();
    assert_eq!(accepted.iter().sum::<u64>(), 200, "{accepted:?}");
    assert!(
        accepted.iter().all(|&n| n > 0),
        "a shard served nothing: {accepted:?}"
    );
    drop(clients);
    server.shutdown().unwrap();
}

#[test]
fn payloads_from_one_byte_to_four_mebibytes_in_random_chunks_round_trip() {
    let _g = serial();
    let server = echo_server(2);
    let addr = server.tcp_addr().unwrap();
    let mut rng = Rng::new(11);
    let sizes = [
        1usize,
        2,
        63,
        64,
        65,
        1000,
        4096,
        8191,
        8192,
        8193,
        65_535,
        65_536,
        65_537,
        1 << 20,
        4 << 20,
    ];
    for size in sizes {
        let data = rng.bytes(size);
        let mut w = connect(addr);
        let mut r = w.try_clone().unwrap();
        let mut chunks = Vec::new();
        let mut left = size;
        while left > 0 {
            let n = (1 + rng.below(70_000) as usize).min(left);
            chunks.push(n);
            left -= n;
        }
        let to_send = data.clone();
        let writer = thread::spawn(move || {
            let mut off = 0;
            for n in chunks {
                w.write_all(&to_send[off..off + n]).unwrap();
                off += n;
            }
            w
        });
        let mut got = vec![0; size];
        r.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == data, "payload of {size} bytes came back different");
    }
    server.shutdown().unwrap();
}

#[test]
fn a_peer_that_half_closes_gets_its_echo_then_eof() {
    let _g = serial();
    let server = echo_server(1);
    let mut c = connect(server.tcp_addr().unwrap());
    c.write_all(b"last words").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"last words");
    server.shutdown().unwrap();
}

// --- every ending, once ---------------------------------------------------------

fn scripted(cores: usize, record: &Shared, drain: Duration) -> ServerHandle {
    require_io_uring();
    let r = Arc::clone(record);
    Server::builder()
        .cores(cores)
        .native_io(true)
        .max_output_buffer(64 << 20)
        .drain_timeout(drain)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            ScriptedFactory::new(shard, &r)
        })
        .start()
        .expect("server starts")
}

#[test]
fn lose_connection_flushes_then_closes_and_abort_resets() {
    let _g = serial();
    let record = Shared::default();
    let server = scripted(2, &record, Duration::from_secs(3));
    let addr = server.tcp_addr().unwrap();
    let mut c = connect(addr);
    c.write_all(b"lose").unwrap();
    assert_eq!(read_to_end(&mut c), b"first after-lose");
    assert_eq!(wait_lost(&record, 1), vec!["done"]);

    let mut c = connect(addr);
    c.write_all(b"abort").unwrap();
    let mut buf = [0u8; 64];
    let err = c.read(&mut buf).expect_err("a reset, not data or EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(wait_lost(&record, 2), vec!["done", "aborted"]);
    server.shutdown().unwrap();
}

#[test]
fn connection_lost_is_called_exactly_once_in_every_path() {
    let _g = serial();
    let record = Shared::default();
    let server = scripted(2, &record, Duration::from_secs(3));
    let addr = server.tcp_addr().unwrap();

    let mut c = connect(addr); // the peer closes cleanly
    assert_eq!(round_trip(&mut c, b"hi"), b"hi");
    drop(c);
    let mut c = connect(addr); // the peer resets
    assert_eq!(round_trip(&mut c, b"hi"), b"hi");
    reset_close(c);
    for cmd in ["lose", "abort", "panic"] {
        let mut c = connect(addr);
        c.write_all(cmd.as_bytes()).unwrap();
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }
    wait_lost(&record, 5);
    let mut open = connect(addr); // still open at shutdown
    assert_eq!(round_trip(&mut open, b"x"), b"x");
    server.shutdown().unwrap();
    assert_eq!(read_to_end(&mut open), b"");
    let mut reasons = wait_lost(&record, 6);
    reasons.sort();
    let failure = reasons
        .iter()
        .find(|r| r.starts_with("failure: scripted panic"))
        .cloned()
        .unwrap_or_else(|| panic!("no panic reported: {reasons:?}"));
    let mut want = vec![
        "aborted".to_string(),
        "done".into(),
        "done".into(),
        "lost".into(),
        "shutdown drained=true".into(),
        failure,
    ];
    want.sort();
    assert_eq!(reasons, want);
    assert_each_once(&record);
}

#[test]
fn graceful_shutdown_delivers_everything_written_before_it() {
    let _g = serial();
    let record = Shared::default();
    let server = scripted(2, &record, Duration::from_secs(5));
    let addr = server.tcp_addr().unwrap();
    const N: usize = 8 << 20;
    let mut clients: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    for c in &mut clients {
        c.write_all(format!("flood {N}").as_bytes()).unwrap();
    }
    thread::sleep(Duration::from_millis(200)); // buffered, unread
    let stopper = thread::spawn(move || server.shutdown().unwrap());
    for c in &mut clients {
        assert_eq!(read_to_end(c).len(), N);
    }
    stopper.join().unwrap();
    let reasons = wait_lost(&record, 4);
    assert!(
        reasons.iter().all(|r| r == "shutdown drained=true"),
        "{reasons:?}"
    );
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
    let before = fds().len();
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
    // glommio 0.9 itself leaves one eventfd per executor behind (the same with
    // native_io(false)); nothing else may remain.
    let eventfds = after.iter().filter(|l| l.contains("eventfd")).count();
    after.retain(|l| !l.contains("eventfd") && !l.starts_with("/proc/"));
    assert!(after.is_empty(), "descriptors left behind: {after:?}");
    assert!(eventfds <= 2, "{eventfds} eventfds left behind by 2 shards");
}
