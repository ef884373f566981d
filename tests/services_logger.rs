//! The logger service (the servers howto's LoggingProtocol / LogfileFactory): unit
//! tests on the factory and a StringTransport, and `weft serve logger` with many
//! clients over 2 shards writing at once, then SIGTERM: every line read by the server
//! is in the file exactly once, whole, in its connection's order.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use support::{accepted_per_shard, complete_lines, connect, read_to_end, Rng, WeftProcess};
use weft::address::Address;
use weft::services::logger::{LoggerFactory, FLUSH_THRESHOLD};
use weft::testing::StringTransport;
use weft::{Factory, Protocol};

fn temp_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("weft-logger-{}-{name}.log", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn read(p: &PathBuf) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn lines_are_appended_a_turn_later_and_a_partial_line_is_not() {
    let path = temp_path("unit");
    std::fs::write(&path, "already here\n").unwrap();
    let mut f = LoggerFactory::new(&path);
    f.start_factory();
    let mut p = f.build_protocol(&Address::Unix(None)).unwrap();
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    p.data_received(b"one\r\ntw", &mut t);
    p.data_received(b"o\r\nthr", &mut t);
    assert_eq!(
        read(&path),
        "already here\n",
        "buffered until the flush task runs"
    );
    assert_eq!(t.run_tasks(), 0);
    assert_eq!(read(&path), "already here\none\ntwo\n");
    assert_eq!(t.value(), b"", "nothing is sent on the wire");
    p.connection_lost(weft::Reason::ConnectionDone);
    f.stop_factory();
    assert_eq!(read(&path), "already here\none\ntwo\n");
    let _ = std::fs::remove_file(path);
}

#[test]
fn stop_factory_writes_what_is_still_buffered() {
    let path = temp_path("stop");
    let mut f = LoggerFactory::new(&path);
    f.start_factory();
    let mut a = f.build_protocol(&Address::Unix(None)).unwrap();
    let mut b = f.build_protocol(&Address::Unix(None)).unwrap();
    let (mut ta, mut tb) = (StringTransport::new(), StringTransport::new());
    a.data_received(b"from a\r\n", &mut ta);
    b.data_received(b"from b\r\n", &mut tb);
    a.data_received(b"a again\r\n", &mut ta);
    assert_eq!(read(&path), "");
    // The flush tasks never ran; stopping the factory writes and closes.
    f.stop_factory();
    assert_eq!(read(&path), "from a\nfrom b\na again\n");
    // A flush task that runs after the stop finds nothing to do.
    assert_eq!(ta.run_tasks(), 0);
    assert_eq!(read(&path), "from a\nfrom b\na again\n");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_full_buffer_is_written_at_once() {
    let path = temp_path("threshold");
    let mut f = LoggerFactory::new(&path);
    f.start_factory();
    let mut p = f.protocol();
    let mut t = StringTransport::new();
    let line = [b'z'; 999];
    let mut wire = Vec::new();
    for _ in 0..(FLUSH_THRESHOLD / 1000 + 1) {
        wire.extend_from_slice(&line);
        wire.extend_from_slice(b"\r\n");
    }
    p.data_received(&wire, &mut t);
    let text = read(&path);
    assert!(text.len() >= FLUSH_THRESHOLD, "{}", text.len());
    assert!(text.lines().all(|l| l.len() == 999));
    f.stop_factory();
    assert_eq!(read(&path).len(), (FLUSH_THRESHOLD / 1000 + 1) * 1000);
    let _ = std::fs::remove_file(path);
}

#[test]
fn an_over_long_line_closes_the_connection_and_is_not_logged() {
    let path = temp_path("long");
    let mut f = LoggerFactory::new(&path);
    f.start_factory();
    let mut p = f.protocol();
    let mut t = StringTransport::new();
    p.data_received(b"fine\r\n", &mut t);
    p.data_received(&[b'x'; 16_385], &mut t);
    p.data_received(b"\r\nlater\r\n", &mut t);
    assert!(t.disconnecting());
    f.stop_factory();
    assert_eq!(read(&path), "fine\n");
    let _ = std::fs::remove_file(path);
}

/// The line a client sends as its `seq`-th: its content depends on both, so a torn
/// or mixed line cannot pass for another.
fn line(client: usize, seq: usize) -> String {
    let pad = (client * 7919 + seq * 104_729) % 61;
    let body: String = (0..pad + 5)
        .map(|i| (b'a' + ((client + seq + i) % 26) as u8) as char)
        .collect();
    format!("c{client} s{seq} {body} end")
}

/// Sends lines `range` of `client` in random-sized writes.
fn send_lines(s: &mut std::net::TcpStream, client: usize, range: std::ops::Range<usize>) {
    let mut rng = Rng::new(client as u64 + 1);
    let mut wire = Vec::new();
    for seq in range {
        wire.extend_from_slice(line(client, seq).as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    let mut at = 0;
    while at < wire.len() {
        let n = (1 + rng.below(3000) as usize).min(wire.len() - at);
        s.write_all(&wire[at..at + n]).unwrap();
        at += n;
    }
}

/// Parses the log into each client's sequence numbers, checking every line is whole.
fn parse_log(text: &str) -> HashMap<usize, Vec<usize>> {
    let mut seen: HashMap<usize, Vec<usize>> = HashMap::new();
    for l in text.lines() {
        if l == "before the server started" {
            continue;
        }
        let mut parts = l.split(' ');
        let client: usize = parts
            .next()
            .and_then(|c| c.strip_prefix('c'))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("torn or foreign line {l:?}"));
        let seq: usize = parts
            .next()
            .and_then(|s| s.strip_prefix('s'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("torn line {l:?}"));
        assert_eq!(l, line(client, seq), "torn or interleaved line");
        seen.entry(client).or_default().push(seq);
    }
    seen
}

#[test]
fn many_clients_on_two_shards_then_sigterm_lose_and_tear_nothing() {
    const CLOSERS: usize = 16;
    const LINGERERS: usize = 4;
    const LINES: usize = 3000;
    let path = temp_path("serve");
    std::fs::write(&path, "before the server started\n").unwrap();
    let p = WeftProcess::start(&[
        "serve",
        "logger",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
        "--file",
        path.to_str().unwrap(),
    ]);
    let addr = p.tcp_addr();
    // Clients that send everything and hang up: once the server has closed its end
    // (read_to_end returns), it has read every line they sent.
    let closers: Vec<_> = (0..CLOSERS)
        .map(|c| {
            thread::spawn(move || {
                let mut s = connect(addr);
                send_lines(&mut s, c, 0..LINES);
                s.shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(read_to_end(&mut s), b"");
            })
        })
        .collect();
    // Clients still connected at SIGTERM: the first half of their lines is known to
    // be in the file before the signal, the second half is sent just before it.
    let mut lingerers: Vec<_> = (0..LINGERERS)
        .map(|i| {
            let mut s = connect(addr);
            send_lines(&mut s, CLOSERS + i, 0..LINES / 2);
            s
        })
        .collect();
    for t in closers {
        t.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The server may be appending as we read.
        let seen = parse_log(complete_lines(&read(&path)));
        let lingering_in =
            (CLOSERS..CLOSERS + LINGERERS).all(|c| seen.get(&c).map_or(0, Vec::len) >= LINES / 2);
        if lingering_in {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lingering clients' lines never arrived: {:?}",
            (0..CLOSERS + LINGERERS)
                .map(|c| seen.get(&c).map_or(0, Vec::len))
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(10));
    }
    for (i, s) in lingerers.iter_mut().enumerate() {
        send_lines(s, CLOSERS + i, LINES / 2..LINES);
    }
    thread::sleep(Duration::from_millis(100));
    let (code, log) = p.terminate();
    assert_eq!(code, 0, "{log:?}");
    let per_shard = accepted_per_shard(&log);
    assert_eq!(per_shard.len(), 2, "{log:?}");
    assert!(per_shard.iter().all(|&n| n > 0), "both shards: {log:?}");

    let text = read(&path);
    assert!(
        text.starts_with("before the server started\n"),
        "appended, not truncated"
    );
    assert!(text.ends_with('\n'));
    let seen = parse_log(&text);
    for c in 0..CLOSERS {
        let want: Vec<usize> = (0..LINES).collect();
        assert!(
            seen.get(&c) == Some(&want),
            "client {c}: every line exactly once, in order"
        );
    }
    for c in CLOSERS..CLOSERS + LINGERERS {
        // What the server had read at the stop: a prefix, at least the first half.
        let got = &seen[&c];
        assert!(got.len() >= LINES / 2, "client {c}: {} lines", got.len());
        assert!(
            got.iter().copied().eq(0..got.len()),
            "client {c}: each once, in order"
        );
    }
    drop(lingerers);
    let _ = std::fs::remove_file(path);
}

#[test]
fn weft_serve_logger_needs_a_file_it_can_open() {
    let exe = env!("CARGO_BIN_EXE_weft");
    let out = std::process::Command::new(exe)
        .args(["serve", "logger"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2)); // a usage or config error
    assert!(String::from_utf8_lossy(&out.stderr).contains("--file"));
    let out = std::process::Command::new(exe)
        .args(["serve", "logger", "--file", "/nonexistent/dir/log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2)); // a usage or config error
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/log"));
}
