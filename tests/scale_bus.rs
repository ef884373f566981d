//! `weft serve chat --bus redis://…/ROOM` in two processes over a real
//! `redis-server` (Debian's) started by the test on a free loopback port: one
//! room, each line once everywhere, and what happens when Redis goes away.

mod support;
mod support_scale;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::WeftProcess;
use support_scale::{free_port, redis_server};

const WAIT: Duration = Duration::from_secs(30);

/// A chat client whose received lines are collected by a thread.
struct Client {
    stream: TcpStream,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn join(addr: SocketAddr) -> Client {
        let stream = support::connect(addr);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (r, l) = (stream.try_clone().unwrap(), Arc::clone(&lines));
        thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let c = Client { stream, lines };
        c.wait_for("Send '/EXIT' to quit.");
        c
    }

    fn say(&self, line: &str) {
        (&self.stream)
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    fn count(&self, line: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.as_str() == line)
            .count()
    }

    fn count_starting(&self, prefix: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn wait_more(&self, prefix: &str, than: usize) {
        let deadline = Instant::now() + WAIT;
        while self.count_starting(prefix) <= than {
            assert!(
                Instant::now() < deadline,
                "no more {prefix:?} lines after {than}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_for(&self, line: &str) {
        let deadline = Instant::now() + WAIT;
        while self.count(line) == 0 {
            assert!(
                Instant::now() < deadline,
                "never got {line:?}; got {:?}",
                self.lines.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn chat_on_bus(redis_port: u16, extra: &[&str]) -> WeftProcess {
    let bus = format!("redis://127.0.0.1:{redis_port}/lobby");
    let mut args = vec![
        "serve",
        "chat",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--bus",
        &bus,
    ];
    args.extend_from_slice(extra);
    let mut p = WeftProcess::start(&args);
    wait_count(&mut p, "bus: subscribed", 1);
    wait_count(&mut p, "bus: publishing", 1);
    p
}

/// Waits until `needle` appears in `n` lines of the process's log.
fn wait_count(p: &mut WeftProcess, needle: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        p.drain_log();
        if p.log.iter().filter(|l| l.contains(needle)).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} × {needle:?} in {:?}",
            p.log
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// What a process logs when one of its bus connections is lost.
fn lost(port: u16, role: &str) -> String {
    format!("bus: lost redis://127.0.0.1:{port}/lobby ({role})")
}

/// The numbers in the "chat bus totals" line: published, received, dropped, malformed.
fn bus_totals(log: &[String]) -> Vec<u64> {
    let line = log
        .iter()
        .find(|l| l.contains("chat bus totals"))
        .unwrap_or_else(|| panic!("no bus totals in {log:?}"));
    let tail = &line[line.find("totals:").unwrap()..];
    tail.split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn a_line_said_in_one_process_reaches_every_client_on_every_shard_of_the_other_once() {
    support::require_io_uring();
    let port = free_port();
    let _redis = redis_server(port);
    let a = chat_on_bus(port, &[]);
    let b = chat_on_bus(port, &[]);
    let on_a: Vec<Client> = (0..2).map(|_| Client::join(a.tcp_addr())).collect();
    let on_b: Vec<Client> = (0..12).map(|_| Client::join(b.tcp_addr())).collect();
    let everyone = || on_a.iter().chain(on_b.iter());

    on_a[0].say("/NAME alice");
    on_a[0].say("hello from a");
    for c in everyone() {
        c.wait_for("alice says hello from a");
    }
    // A fence from B: Redis sends it to A after A's own line came back to A, so
    // once every client has it, any second copy of the first line would be in.
    on_b[0].say("/NAME bob");
    on_b[0].say("fence from b");
    for c in everyone() {
        c.wait_for("bob says fence from b");
    }
    for c in everyone() {
        assert_eq!(c.count("alice says hello from a"), 1);
        assert_eq!(c.count("bob says fence from b"), 1);
    }
    drop(on_a);
    drop(on_b);

    let (code, log_b) = b.terminate();
    assert_eq!(code, 0, "{log_b:?}");
    let per_shard = support::accepted_per_shard(&log_b);
    assert!(
        per_shard.len() == 2 && per_shard.iter().all(|&n| n > 0),
        "B's clients were not on both shards: {per_shard:?}"
    );
    let t = bus_totals(&log_b);
    assert_eq!((t[2], t[3]), (0, 0), "dropped, malformed: {log_b:?}");
    let (code, log_a) = a.terminate();
    assert_eq!(code, 0, "{log_a:?}");
    assert!(bus_totals(&log_a)[1] > 0, "A received nothing: {log_a:?}");
}

#[test]
fn with_redis_killed_local_chat_goes_on_remote_lines_are_dropped_past_the_queue_and_delivery_resumes_after_a_restart(
) {
    support::require_io_uring();
    let port = free_port();
    let mut redis = redis_server(port);
    let mut a = chat_on_bus(port, &["--bus-queue", "2"]);
    let mut b = chat_on_bus(port, &[]);
    let a1 = Client::join(a.tcp_addr());
    let a2 = Client::join(a.tcp_addr());
    let b1 = Client::join(b.tcp_addr());
    a1.say("/NAME alice");
    b1.wait_for("127.0.0.1 changed name to alice");

    redis.kill();
    wait_count(&mut a, &lost(port, "Publisher"), 1);
    wait_count(&mut a, &lost(port, "Subscriber"), 1);
    for i in 0..5 {
        a1.say(&format!("while down {i}"));
    }
    // Local delivery does not wait on the bus.
    for i in 0..5 {
        a2.wait_for(&format!("alice says while down {i}"));
    }
    assert!(a.child.try_wait().unwrap().is_none(), "A died");
    assert!(b.child.try_wait().unwrap().is_none(), "B died");

    let _redis = redis_server(port);
    for p in [&mut a, &mut b] {
        wait_count(p, "bus: subscribed", 2);
        wait_count(p, "bus: publishing", 2);
    }
    a1.say("back again");
    b1.wait_for("alice says back again");
    b1.say("/NAME bob");
    b1.say("hello a");
    a2.wait_for("bob says hello a");
    drop((a1, a2, b1));

    let (code, log_a) = a.terminate();
    assert_eq!(code, 0, "{log_a:?}");
    // Five lines while down, two kept for the bus: three dropped.
    assert_eq!(bus_totals(&log_a)[2], 3, "{log_a:?}");
    let (code, log_b) = b.terminate();
    assert_eq!(code, 0, "{log_b:?}");
}

#[test]
fn redis_killed_and_restarted_twice_under_load_crashes_nothing_bounds_memory_and_delivery_resumes()
{
    support::require_io_uring();
    let port = free_port();
    let mut redis = redis_server(port);
    let mut a = chat_on_bus(port, &[]);
    let mut b = chat_on_bus(port, &[]);
    let a1 = Arc::new(Client::join(a.tcp_addr()));
    let b1 = Client::join(b.tcp_addr());
    a1.say("/NAME alice");
    b1.wait_for("127.0.0.1 changed name to alice");

    // About a thousand lines a second from A for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (a1, stop) = (Arc::clone(&a1), Arc::clone(&stop));
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                a1.say(&format!("load {n}"));
                n += 1;
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    b1.wait_more("alice says load", 200);
    let rss_before = (a.rss(), b.rss());

    for round in 1..=2 {
        redis.kill();
        wait_count(&mut a, &lost(port, "Publisher"), round);
        wait_count(&mut b, &lost(port, "Subscriber"), round);
        // Local delivery goes on while the bus is down.
        let local = a1.count_starting("alice says load");
        a1.wait_more("alice says load", local + 100);
        redis = redis_server(port);
        for p in [&mut a, &mut b] {
            wait_count(p, "bus: subscribed", round + 1);
            wait_count(p, "bus: publishing", round + 1);
        }
        let seen = b1.count_starting("alice says load");
        b1.wait_more("alice says load", seen + 200);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    for p in [&mut a, &mut b] {
        assert!(p.child.try_wait().unwrap().is_none(), "a weft process died");
    }
    let grew = (
        a.rss().saturating_sub(rss_before.0),
        b.rss().saturating_sub(rss_before.1),
    );
    assert!(
        grew.0 < 64 << 20 && grew.1 < 64 << 20,
        "resident memory grew by {grew:?} bytes"
    );
    drop(b1);
    drop(a1);
    let (code, log_a) = a.terminate();
    assert_eq!(code, 0, "{log_a:?}");
    let t = bus_totals(&log_a);
    eprintln!(
        "A: published {}, dropped {} (RSS growth {grew:?})",
        t[0], t[2]
    );
    let (code, log_b) = b.terminate();
    assert_eq!(code, 0, "{log_b:?}");
    assert_eq!(bus_totals(&log_b)[3], 0, "malformed: {log_b:?}");
}
