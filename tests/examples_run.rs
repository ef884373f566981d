//! The server examples (`examples/echo.rs`, `qotd.rs`, `finger.rs`, `logger.rs`) run
//! as programs on port 0: each prints its `listening on` line, is talked to over a
//! socket, then stopped with SIGTERM and must exit 0.

mod support;
mod support_client;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{connect, read_to_end, round_trip};

/// A running example.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Example {
    /// Runs example `name` (built next to this test binary, as the client examples
    /// are) with `args`, and waits for its listening line.
    fn start(name: &str, args: &[&str]) -> Example {
        support::require_io_uring();
        let path = support_client::example(name);
        assert!(
            path.exists(),
            "example binary {} is missing (cargo build --examples)",
            path.display()
        );
        let mut child = Command::new(&path)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(addr) = line
                        .strip_prefix("listening on tcp:")
                        .and_then(|a| a.split(' ').next())
                    {
                        let addr = addr.parse().expect("socket address");
                        return Example { child, addr };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("example {name} printed no listening line");
                }
            }
        }
    }

    /// Stops it with SIGTERM; it must exit 0 within 20 s.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..2000 {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "exit status {st:?}");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("example did not exit after SIGTERM");
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LOCAL: &str = "tcp:0:interface=127.0.0.1";

#[test]
fn echo_example_echoes() {
    let ex = Example::start("echo", &[LOCAL]);
    let mut s = connect(ex.addr);
    assert_eq!(round_trip(&mut s, b"hello, weft\r\n"), b"hello, weft\r\n");
    drop(s);
    ex.stop();
}

#[test]
fn qotd_example_sends_the_configured_quote() {
    let ex = Example::start("qotd", &[LOCAL]);
    assert_eq!(
        read_to_end(&mut connect(ex.addr)),
        b"An apple a day keeps the doctor away\r\n"
    );
    ex.stop();
    let ex = Example::start("qotd", &[LOCAL, "Less is more."]);
    assert_eq!(read_to_end(&mut connect(ex.addr)), b"Less is more.\r\n");
    ex.stop();
}

#[test]
fn finger_example_answers_like_finger08() {
    let ex = Example::start("finger", &[LOCAL]);
    for (q, want) in [
        (&b"moshez\r\n"[..], &b"Happy and well\r\n"[..]),
        (b"nobody\r\n", b"No such user\r\n"),
        (b"moshez\r\nnobody\r\n", b"Happy and well\r\n"),
    ] {
        let mut s = connect(ex.addr);
        s.write_all(q).unwrap();
        assert_eq!(read_to_end(&mut s), want);
    }
    ex.stop();
}

#[test]
fn logger_example_appends_lines_and_closes_the_file_on_stop() {
    let path = std::env::temp_dir().join(format!("weft-logger-example-{}.log", std::process::id()));
    std::fs::write(&path, "old\n").unwrap();
    let ex = Example::start("logger", &[LOCAL, path.to_str().unwrap()]);
    for i in 0..4 {
        let mut s = connect(ex.addr);
        s.write_all(format!("line {i}a\r\nline {i}b\r\npartial").as_bytes())
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut s), b"");
    }
    ex.stop();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "old\nline 0a\nline 0b\nline 1a\nline 1b\nline 2a\nline 2b\nline 3a\nline 3b\n"
    );
    let _ = std::fs::remove_file(path);
}
