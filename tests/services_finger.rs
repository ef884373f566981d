//! The finger service (Twisted tutorial finger07/finger08): unit tests on a
//! StringTransport (answers come from a spawned lookup, polled with `run_tasks()`;
//! slow lookups wait on the manual clock; failing ones), socket tests with 2 shards
//! (the `weft` binary, and an in-process server whose slow lookups must not hold up
//! fast ones), and Debian's real `finger` client on port 79.

mod support;
mod support_client;

use std::cell::Cell;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{accepted_per_shard, connect, read_to_end, WeftProcess};
use weft::protocols::LineReceiver;
use weft::services::finger::{
    query_user, Finger, FingerFactory, FingerProtocol, LookupError, StaticUsers, UserDatabase,
};
use weft::testing::StringTransport;
use weft::{Protocol, Reactor, Server};

fn moshez() -> StaticUsers {
    StaticUsers::new([("moshez", "Happy and well")])
}

fn protocol(db: impl UserDatabase) -> FingerProtocol {
    FingerFactory::new(db).protocol()
}

/// Feeds `input`, runs the spawned lookups, returns what was written and whether
/// the connection is closing.
fn ask(p: &mut FingerProtocol, input: &[u8]) -> (String, bool) {
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    p.data_received(input, &mut t);
    assert_eq!(t.run_tasks(), 0);
    (t.text(), t.disconnecting())
}

#[test]
fn a_known_user_gets_the_entry_then_the_connection_closes() {
    let mut p = protocol(moshez());
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    p.data_received(b"mosh", &mut t);
    p.data_received(b"ez\r\n", &mut t);
    // The answer comes from the spawned lookup, not from line_received itself.
    assert_eq!(t.text(), "");
    assert_eq!(t.run_tasks(), 0);
    assert_eq!(t.text(), "Happy and well\r\n");
    assert!(t.disconnecting());
}

#[test]
fn an_unknown_user_gets_no_such_user() {
    assert_eq!(
        ask(&mut protocol(moshez()), b"nosuch\r\n"),
        ("No such user\r\n".into(), true)
    );
    assert_eq!(
        ask(&mut protocol(moshez()), b"\r\n"),
        ("No such user\r\n".into(), true)
    );
    assert_eq!(
        ask(&mut protocol(moshez()), b"moshez@elsewhere\r\n"),
        ("No such user\r\n".into(), true)
    );
}

#[test]
fn rfc1288_verbose_prefix_and_surrounding_whitespace_are_ignored() {
    for q in [&b"/W moshez\r\n"[..], b"  moshez \t\r\n", b"/W\tmoshez\r\n"] {
        assert_eq!(
            ask(&mut protocol(moshez()), q),
            ("Happy and well\r\n".into(), true),
            "{:?}",
            String::from_utf8_lossy(q)
        );
    }
    assert_eq!(query_user(b"/Wmoshez"), b"/Wmoshez");
}

#[test]
fn only_the_first_line_is_answered() {
    let looked_up = Rc::new(Cell::new(0));
    let n = looked_up.clone();
    let mut p = protocol(move |user: Vec<u8>, _r: Reactor| {
        n.set(n.get() + 1);
        async move { Ok(Some(user)) }
    });
    let (out, closing) = ask(&mut p, b"first\r\nsecond\r\nthird\r\n");
    assert_eq!((out.as_str(), closing), ("first\r\n", true));
    assert_eq!(looked_up.get(), 1);
}

/// Completes `d` later on `reactor`'s clock (Twisted's `deferLater`).
async fn later(reactor: &Reactor, d: Duration) {
    support_client::sleep(reactor, d).await
}

#[test]
fn a_slow_lookup_answers_when_it_completes_and_reading_stops_meanwhile() {
    let mut p = protocol(|user: Vec<u8>, r: Reactor| async move {
        later(&r, Duration::from_secs(5)).await;
        Ok(Some(user))
    });
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    p.data_received(b"slow\r\n", &mut t);
    assert_eq!(t.run_tasks(), 1, "the lookup waits on the clock");
    assert_eq!(t.text(), "");
    assert!(!t.disconnecting());
    assert!(
        t.reading_paused(),
        "nothing more is read while the lookup runs"
    );
    p.data_received(b"more\r\n", &mut t);
    t.clock().advance(Duration::from_secs(4));
    assert_eq!(t.run_tasks(), 1);
    assert_eq!(t.text(), "");
    t.clock().advance(Duration::from_secs(1));
    assert_eq!(t.run_tasks(), 0);
    assert_eq!(t.text(), "slow\r\n");
    assert!(t.disconnecting());
}

#[test]
fn a_failed_lookup_replies_internal_error_and_closes() {
    let mut p =
        protocol(|_u: Vec<u8>, _r: Reactor| async { Err(LookupError("database down".into())) });
    assert_eq!(
        ask(&mut p, b"moshez\r\n"),
        ("Internal error in server\r\n".into(), true)
    );
}

#[test]
fn an_answer_for_a_client_that_left_is_dropped_quietly() {
    let mut p = protocol(|user: Vec<u8>, r: Reactor| async move {
        later(&r, Duration::from_secs(1)).await;
        Ok(Some(user))
    });
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    p.data_received(b"gone\r\n", &mut t);
    t.run_tasks();
    t.mark_lost();
    p.connection_lost(weft::Reason::ConnectionLost(
        std::io::ErrorKind::ConnectionReset.into(),
    ));
    t.clock().advance(Duration::from_secs(1));
    assert_eq!(t.run_tasks(), 0);
    assert_eq!(t.text(), "");
}

#[test]
fn an_over_long_query_closes_without_a_reply() {
    let mut p: FingerProtocol = LineReceiver::new(Finger::new(Rc::new(moshez())));
    let (out, closing) = ask(&mut p, &[b'x'; 20_000]);
    assert_eq!((out.as_str(), closing), ("", true));
}

#[test]
fn the_users_file_takes_colons_and_equals_and_reports_bad_lines() {
    let u =
        StaticUsers::parse("# users\nmoshez: Happy and well\n\nalice=Out to lunch: back at 2\n")
            .unwrap();
    assert_eq!(u.len(), 2);
    assert_eq!(u.get(b"moshez"), Some(&b"Happy and well"[..]));
    assert_eq!(u.get(b"alice"), Some(&b"Out to lunch: back at 2"[..]));
    let err = StaticUsers::parse("ok:1\nno separator\n").unwrap_err();
    assert!(err.contains("line 2"), "{err}");
    assert!(StaticUsers::parse(":x").is_err());
}

fn users_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("weft-finger-{}-{name}.txt", std::process::id()));
    std::fs::write(&path, "moshez:Happy and well\nalice = Out to lunch\n").unwrap();
    path
}

fn query(addr: std::net::SocketAddr, q: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(q).unwrap();
    read_to_end(&mut s)
}

#[test]
fn weft_serve_finger_answers_over_sockets_on_two_shards() {
    let users = users_file("serve");
    let p = WeftProcess::start(&[
        "serve",
        "finger",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--users",
        users.to_str().unwrap(),
    ]);
    let addr = p.tcp_addr();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                for _ in 0..10 {
                    assert_eq!(query(addr, b"moshez\r\n"), b"Happy and well\r\n");
                    assert_eq!(query(addr, b"/W alice\r\n"), b"Out to lunch\r\n");
                    assert_eq!(
                        query(addr, format!("nobody{i}\r\n").as_bytes()),
                        b"No such user\r\n"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Two queries in one write: only the first is answered.
    assert_eq!(query(addr, b"moshez\r\nalice\r\n"), b"Happy and well\r\n");
    // A query split across writes.
    let mut s = connect(addr);
    s.set_nodelay(true).unwrap();
    for piece in [&b"mo"[..], b"she", b"z\r", b"\n"] {
        s.write_all(piece).unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(read_to_end(&mut s), b"Happy and well\r\n");
    let (code, log) = p.terminate();
    assert_eq!(code, 0, "{log:?}");
    let per_shard = accepted_per_shard(&log);
    assert_eq!(per_shard.len(), 2, "{log:?}");
    assert!(per_shard.iter().all(|&n| n > 0), "{log:?}");
    let _ = std::fs::remove_file(users);
}

#[test]
fn weft_serve_finger_refuses_a_missing_or_bad_users_file() {
    let exe = env!("CARGO_BIN_EXE_weft");
    let out = Command::new(exe)
        .args(["serve", "finger"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2)); // a usage or config error
    assert!(String::from_utf8_lossy(&out.stderr).contains("--users"));
    let out = Command::new(exe)
        .args(["serve", "finger", "--users", "/nonexistent/users"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2)); // a usage or config error
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/users"));
}

#[test]
fn slow_lookups_do_not_hold_up_other_connections_on_the_same_shards() {
    support::require_io_uring();
    let lookups = Arc::new(AtomicUsize::new(0));
    // The slow lookups end when the test says so, not after a time it could overrun.
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (l, rel) = (lookups.clone(), release.clone());
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |_| {
            let (l, rel) = (l.clone(), rel.clone());
            FingerFactory::new(move |user: Vec<u8>, r: Reactor| {
                l.fetch_add(1, Ordering::SeqCst);
                let rel = rel.clone();
                async move {
                    match &user[..] {
                        b"slow" => {
                            while !rel.load(Ordering::SeqCst) {
                                later(&r, Duration::from_millis(10)).await;
                            }
                            Ok(Some(b"finally".to_vec()))
                        }
                        b"boom" => Err(LookupError("database down".into())),
                        _ => Ok(Some(b"at once".to_vec())),
                    }
                }
            })
        })
        .start()
        .expect("finger server");
    let addr = server.tcp_addr().unwrap();
    let started = Instant::now();
    // Enough slow queries that both shards hold several.
    let mut slow: Vec<TcpStream> = (0..12).map(|_| connect(addr)).collect();
    for s in &mut slow {
        s.write_all(b"slow\r\n").unwrap();
    }
    while lookups.load(Ordering::SeqCst) < slow.len() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slow lookups never started"
        );
        thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..20 {
        assert_eq!(query(addr, b"fast\r\n"), b"at once\r\n");
        assert_eq!(query(addr, b"boom\r\n"), b"Internal error in server\r\n");
    }
    // Every fast query was answered while every slow one is still pending.
    for s in &mut slow {
        s.set_nonblocking(true).unwrap();
        let got = s.peek(&mut [0u8; 16]);
        assert_eq!(
            got.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "a slow lookup answered before it was released"
        );
        s.set_nonblocking(false).unwrap();
    }
    release.store(true, Ordering::SeqCst);
    for s in &mut slow {
        assert_eq!(read_to_end(s), b"finally\r\n");
    }
    let stats = server
        .stats()
        .iter()
        .map(|s| s.accepted())
        .collect::<Vec<_>>();
    assert!(stats.iter().all(|&n| n > 0), "both shards: {stats:?}");
    server.shutdown().unwrap();
}

/// Runs Debian's `finger` client (package `finger`) with `args`.
fn finger(args: &[&str]) -> String {
    let out = Command::new("finger")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("the `finger` client (Debian package finger) must be installed: {e}")
        });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "finger {args:?}: {:?}\n{text}",
        out.status
    );
    text
}

#[test]
fn debians_finger_client_on_port_79() {
    match std::net::TcpListener::bind("127.0.0.1:79") {
        Ok(l) => drop(l),
        Err(e) => panic!(
            "this test runs `weft serve finger` on 127.0.0.1:79, which the real `finger` \
             client needs, but that port cannot be bound: {e} (is another finger server \
             running, or are we not root?)"
        ),
    }
    let users = users_file("client");
    let p = WeftProcess::start(&[
        "serve",
        "finger",
        "tcp:79:interface=127.0.0.1",
        "--cores",
        "2",
        "--users",
        users.to_str().unwrap(),
    ]);
    assert_eq!(p.tcp_addr().port(), 79);
    let out = finger(&["moshez@127.0.0.1"]);
    assert!(out.contains("Happy and well"), "{out:?}");
    let out = finger(&["-l", "moshez@127.0.0.1"]); // sends "/W moshez"
    assert!(out.contains("Happy and well"), "{out:?}");
    let out = finger(&["nosuch@127.0.0.1"]);
    assert!(out.contains("No such user"), "{out:?}");
    assert!(!out.contains("Happy"), "{out:?}");
    let (code, log) = p.terminate();
    assert_eq!(code, 0, "{log:?}");
    let _ = std::fs::remove_file(users);
}
