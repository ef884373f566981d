//! A rolling restart on one machine: a new `weft` joins the old one's
//! SO_REUSEPORT group (`--join-port-group`), the old one gets SIGTERM, stops
//! accepting and drains, while a client connects in a loop the whole time.
//!
//! With `net.ipv4.tcp_migrate_req = 1` (Linux 5.14+) the kernel moves connections
//! still waiting in the closing listener's accept queue to a listener of the new
//! process, so no client is refused or reset. The test sets it when it can (it is a
//! per-network-namespace sysctl, so it needs root or a namespace of one's own) and
//! puts the old value back; where it cannot, it says so and skips.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::WeftProcess;

const MIGRATE: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// The sysctl is shared by every test of this binary: one at a time.
static SYSCTL: Mutex<()> = Mutex::new(());

/// Sets the sysctl for the test's life, then restores it.
struct Migrate(String);

impl Migrate {
    fn set(value: &str) -> Option<Migrate> {
        let old = std::fs::read_to_string(MIGRATE).ok()?;
        std::fs::write(MIGRATE, value).ok()?;
        Some(Migrate(old.trim().to_string()))
    }
}

impl Drop for Migrate {
    fn drop(&mut self) {
        let _ = std::fs::write(MIGRATE, &self.0);
    }
}

/// What the looping client saw.
#[derive(Default)]
struct Outcome {
    ok: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    /// Closed (EOF) before the echo came back: the old server drained it.
    closed_early: AtomicU64,
    other: Mutex<Vec<String>>,
}

impl Outcome {
    fn failures(&self) -> String {
        format!(
            "ok {}, refused {}, reset {}, closed early {}, other {:?}",
            self.ok.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.reset.load(Ordering::Relaxed),
            self.closed_early.load(Ordering::Relaxed),
            self.other.lock().unwrap()
        )
    }
}

/// One connection: connect, send a line, read the echo, close.
fn once(addr: SocketAddr, n: u64, out: &Outcome) {
    let count = |e: &std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused => out.refused.fetch_add(1, Ordering::Relaxed),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            out.reset.fetch_add(1, Ordering::Relaxed)
        }
        ErrorKind::UnexpectedEof => out.closed_early.fetch_add(1, Ordering::Relaxed),
        _ => {
            out.other.lock().unwrap().push(e.to_string());
            0
        }
    };
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            count(&e);
            return;
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let msg = format!("ping {n}\n");
    let mut back = vec![0; msg.len()];
    match s
        .write_all(msg.as_bytes())
        .and_then(|()| s.read_exact(&mut back))
    {
        Ok(()) if back == msg.as_bytes() => {
            out.ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(()) => out.other.lock().unwrap().push("wrong echo".into()),
        Err(e) => {
            count(&e);
        }
    }
}

fn wait_ok(out: &Outcome, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.ok.load(Ordering::Relaxed) < at_least {
        assert!(
            Instant::now() < deadline,
            "the client stalled: {}",
            out.failures()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the switch from an old to a new process under a looping client; returns
/// what the client saw and the new process's accepted count.
fn rolling_restart() -> (Arc<Outcome>, u64) {
    let old = WeftProcess::start(&["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "2"]);
    let addr = old.tcp_addr();
    let out = Arc::new(Outcome::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Four loops, so that connections are in every stage of their setup when the
    // old listeners close.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (out, stop) = (Arc::clone(&out), Arc::clone(&stop));
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    once(addr, n, &out);
                    n += 1;
                }
            })
        })
        .collect();
    wait_ok(&out, 1000);
    let ep = format!("tcp:{}:interface=127.0.0.1", addr.port());
    let new = WeftProcess::start(&["serve", "echo", &ep, "--cores", "2", "--join-port-group"]);
    assert_eq!(new.tcp_addr(), addr);
    wait_ok(&out, out.ok.load(Ordering::Relaxed) + 1000);
    let (code, log) = old.terminate();
    assert_eq!(code, 0, "{log:?}");
    // Only the new process is left; it must carry the loop on.
    wait_ok(&out, out.ok.load(Ordering::Relaxed) + 2000);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (code, log) = new.terminate();
    assert_eq!(code, 0, "{log:?}");
    let accepted = support::accepted_per_shard(&log).iter().sum();
    (out, accepted)
}

#[test]
fn a_client_connecting_in_a_loop_through_a_rolling_restart_is_never_refused_or_reset() {
    let _one = SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_migrate) = Migrate::set("1") else {
        eprintln!("skipped: cannot write {MIGRATE} (needs root in this network namespace)");
        return;
    };
    let (out, accepted_by_new) = rolling_restart();
    eprintln!("rolling restart with tcp_migrate_req=1: {}", out.failures());
    assert_eq!(out.refused.load(Ordering::Relaxed), 0, "{}", out.failures());
    assert_eq!(out.reset.load(Ordering::Relaxed), 0, "{}", out.failures());
    assert!(out.other.lock().unwrap().is_empty(), "{}", out.failures());
    assert!(
        accepted_by_new >= 2000,
        "the new process accepted {accepted_by_new}"
    );
}

/// The same switch without migration: the new process still takes over and
/// nobody is refused; connections still queued on the old listener when it closes
/// may be reset (the count is printed; docs/scale-out.md records it).
#[test]
fn without_tcp_migrate_req_the_new_process_takes_over_and_nobody_is_refused() {
    let _one = SYSCTL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_migrate) = Migrate::set("0") else {
        eprintln!("skipped: cannot write {MIGRATE} (needs root in this network namespace)");
        return;
    };
    let (out, accepted_by_new) = rolling_restart();
    eprintln!("rolling restart with tcp_migrate_req=0: {}", out.failures());
    assert_eq!(out.refused.load(Ordering::Relaxed), 0, "{}", out.failures());
    assert!(out.other.lock().unwrap().is_empty(), "{}", out.failures());
    assert!(
        accepted_by_new >= 2000,
        "the new process accepted {accepted_by_new}"
    );
}
