//! Stopping always works: with stderr a closed pipe (`weft … 2>&1 | head -1`), and at
//! once on a second SIGTERM when the graceful drain would wait.

mod support;
mod support_metrics;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{never_reading, require_io_uring, WeftProcess};

/// Waits up to `limit` for the child to exit; returns its exit code.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_the_server_when_stderr_is_a_closed_pipe() {
    require_io_uring();
    for rust_log in ["info", "off"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["serve", "echo", "tcp:0:interface=127.0.0.1", "--cores", "2"])
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read up to the listening line, then close both pipes, as `| head -1` does.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let line = lines
            .find_map(|l| l.ok().filter(|l| l.starts_with("listening on ")))
            .expect("a listening line");
        drop(lines);
        drop(child.stdout.take());
        let addr: std::net::SocketAddr = line["listening on tcp:".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // Still serving with nobody reading its output.
        let mut c = support::connect(addr);
        assert_eq!(support::round_trip(&mut c, b"ping"), b"ping");
        drop(c);
        let kill = |sig: &str| {
            Command::new("kill")
                .args([format!("-{sig}"), child.id().to_string()])
                .status()
                .unwrap()
        };
        kill("TERM");
        let code = wait_exit(&mut child, Duration::from_secs(20));
        assert_eq!(
            code,
            Some(0),
            "RUST_LOG={rust_log}: SIGTERM must stop it, cleanly"
        );
    }
}

#[test]
fn a_second_sigterm_stops_at_once_while_the_drain_waits() {
    // A chargen client that never reads keeps its connection from draining; with a
    // 60 s drain timeout only the second signal can end the process soon.
    let mut p = WeftProcess::start(&[
        "serve",
        "chargen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--drain-timeout",
        "60",
        "--metrics",
        "tcp:0:interface=127.0.0.1",
    ]);
    let mut stuck = never_reading(p.tcp_addr());
    // Served before the stop (a connection still in the accept queue at the stop
    // is closed, not drained): chargen's first byte says so.
    std::io::Read::read_exact(&mut stuck, &mut [0u8; 1]).unwrap();
    // And stuck: the kernel's buffers for it are full (what weft has sent stops
    // growing) and weft holds output. Until then chargen's output is empty for a
    // moment after each send, and a stop that comes then ends it, drained, at once.
    assert!(p.wait_for_log("metrics on http://", Duration::from_secs(20)));
    let metrics: std::net::SocketAddr = p
        .log
        .iter()
        .find_map(|l| {
            l.strip_prefix("metrics on http://")?
                .strip_suffix("/metrics")
        })
        .unwrap()
        .parse()
        .unwrap();
    let total = |page: &str, name: &str| -> f64 {
        support_metrics::samples(page, name)
            .iter()
            .map(|(_, v)| v)
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut last_sent, mut steady) = (-1.0, 0);
    while steady < 5 {
        let page = support_metrics::scrape(metrics);
        let sent = total(&page, "weft_bytes_sent_total");
        let held = total(&page, "weft_output_buffered_bytes");
        steady = if sent == last_sent && held > 0.0 {
            steady + 1
        } else {
            0
        };
        last_sent = sent;
        assert!(
            Instant::now() < deadline,
            "the chargen output never backed up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    p.signal("TERM");
    assert!(p.wait_for_log("Received SIGTERM, shutting down.", Duration::from_secs(20)));
    assert!(p.child.try_wait().unwrap().is_none(), "still draining");
    let sent = Instant::now();
    p.signal("TERM");
    let code = wait_exit(&mut p.child, Duration::from_secs(20));
    p.drain_log();
    assert_eq!(code, Some(128 + 15), "{:?}", p.log);
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );
    assert!(
        p.wait_for_log("stopping at once", Duration::from_secs(5)),
        "{:?}",
        p.log
    );
}
