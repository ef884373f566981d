//! The `weft` binary: the built-in services over real sockets, with real `nc` where
//! the test is about what a user's client sees, `--max-connections` across shards,
//! and the graceful stop on SIGTERM/SIGINT with its per-shard summary.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{accepted_per_shard, connect, read_to_end, round_trip, WeftProcess};

/// Runs `nc` against `addr` with `input` on stdin; returns what it printed.
fn nc(addr: std::net::SocketAddr, input: &[u8], extra: &[&str]) -> Vec<u8> {
    let mut child = Command::new("nc")
        .args(extra)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nc (Debian package netcat-openbsd) must be installed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    out.stdout
}

#[test]
fn qotd_sends_the_configured_quote_then_closes_as_nc_sees_it() {
    let p = WeftProcess::start(&[
        "serve",
        "qotd",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--quote",
        "Less is more.",
    ]);
    assert_eq!(nc(p.tcp_addr(), b"", &["-N"]), b"Less is more.\r\n");
    let (code, _) = p.terminate();
    assert_eq!(code, 0);
}

#[test]
fn qotd_default_quote_is_twisteds() {
    let p = WeftProcess::start(&["serve", "qotd", "tcp:0:interface=127.0.0.1"]);
    let mut c = connect(p.tcp_addr());
    assert_eq!(
        read_to_end(&mut c),
        b"An apple a day keeps the doctor away.\r\n"
    );
}

#[test]
fn echo_answers_nc_and_keeps_the_reply_when_nc_half_closes() {
    let p = WeftProcess::start(&["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "2"]);
    let input: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    assert!(nc(p.tcp_addr(), &input, &["-N"]) == input);
}

#[test]
fn daytime_sends_one_asctime_line_then_closes() {
    let p = WeftProcess::start(&["serve", "daytime", "tcp:0:interface=127.0.0.1"]);
    let out = String::from_utf8(nc(p.tcp_addr(), b"", &["-N"])).unwrap();
    assert_eq!(out.len(), 26, "{out:?}");
    assert!(out.ends_with("\r\n"));
    let year: u32 = out.trim_end()[20..].parse().unwrap();
    assert!(year >= 2024, "{out:?}");
}

#[test]
fn chargen_streams_the_pattern_and_discard_swallows_everything() {
    let p = WeftProcess::start(&["serve", "chargen", "tcp:0:interface=127.0.0.1"]);
    let mut c = connect(p.tcp_addr());
    let mut buf = vec![0u8; 71 * 1000];
    c.read_exact(&mut buf).unwrap();
    for chunk in buf.chunks(71) {
        assert_eq!(chunk, weft::services::wire::CHARGEN_PATTERN);
    }
    drop(c);
    let p = WeftProcess::start(&["serve", "discard", "tcp:0:interface=127.0.0.1"]);
    let mut c = connect(p.tcp_addr());
    c.write_all(&[7u8; 100_000]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"");
}

#[test]
fn max_connections_holds_across_shards() {
    let p = WeftProcess::start(&[
        "serve",
        "echo",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--max-connections",
        "20",
    ]);
    let addr = p.tcp_addr();
    let mut admitted: Vec<_> = (0..20).map(|_| connect(addr)).collect();
    for c in &mut admitted {
        assert_eq!(round_trip(c, b"ok"), b"ok");
    }
    for _ in 0..5 {
        let mut extra = connect(addr);
        assert_eq!(
            read_to_end(&mut extra),
            b"Too many connections, try later\r\n"
        );
    }
    // Freeing one slot admits one more.
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
    assert_eq!(per_shard.len(), 2, "{log:?}");
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "both shards must have taken connections: {log:?}"
    );
}

#[test]
fn sigint_stops_gracefully_and_prints_one_summary_per_shard() {
    let mut p = WeftProcess::start(&["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "2"]);
    let mut c = connect(p.tcp_addr());
    assert_eq!(round_trip(&mut c, b"12345"), b"12345");
    drop(c);
    p.signal("INT");
    assert!(
        p.wait_for_log("shard 1:", Duration::from_secs(20)),
        "{:?}",
        p.log
    );
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        p.log
            .iter()
            .any(|l| l.contains("Received SIGINT, shutting down.")),
        "{:?}",
        p.log
    );
    let summary: Vec<&String> = p.log.iter().filter(|l| l.starts_with("shard ")).collect();
    assert_eq!(summary.len(), 2, "{:?}", p.log);
    let total_in: u64 = summary
        .iter()
        .map(|l| {
            l.split(", ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total_in, 5);
}

#[test]
fn the_listening_line_names_the_real_port_and_the_shard_count() {
    let p = WeftProcess::start(&["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "2"]);
    let line = p
        .log
        .iter()
        .find(|l| l.starts_with("listening on "))
        .unwrap();
    assert!(line.ends_with("(2 shards)"), "{line}");
    assert_ne!(p.tcp_addr().port(), 0);
}

#[test]
fn bad_arguments_fail_with_a_message_naming_the_problem() {
    let exe = env!("CARGO_BIN_EXE_weft");
    let run = |args: &[&str]| {
        let out = Command::new(exe).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Every usage error exits 2, a bad endpoint included: it is found before
    // anything binds.
    let (code, err) = run(&["serve", "echo", "tcp:99999"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`port`"), "{err}");
    let (code, err) = run(&["serve", "echo", "tcp:0:interface=localhost"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`interface`"), "{err}");
    let (code, err) = run(&["serve", "nosuch"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unrecognized subcommand 'nosuch'"), "{err}");
    let (code, err) = run(&["serve", "echo", "--cores"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("'--cores <N>'"), "{err}");
    // A flag of another service is refused, not ignored.
    let (code, err) = run(&["serve", "echo", "--users", "x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("'--users'"), "{err}");
}
