//! Helpers for the mesh and chat tests: bounded waits, bounded shutdown, and a
//! line-oriented chat client over a real socket.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use weft::runtime::ShardSummary;
use weft::ServerHandle;

/// Polls `cond` until it holds, or panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// Stops the server gracefully and waits for it, panicking if that takes longer
/// than `limit`.
pub fn shutdown_within(server: ServerHandle, limit: Duration) -> Vec<ShardSummary> {
    join_within(
        move || server.shutdown().expect("clean shutdown"),
        limit,
        "shutdown",
    )
}

/// Joins a server that something else stops, bounded by `limit`.
pub fn join_within(
    f: impl FnOnce() -> Vec<ShardSummary> + Send + 'static,
    limit: Duration,
    what: &str,
) -> Vec<ShardSummary> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

/// A chat client: a writer half and a reader thread that collects every line
/// (without CRLF) until EOF or reset.
pub struct ChatClient {
    pub stream: TcpStream,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl ChatClient {
    /// Connects and reads the three welcome lines.
    pub fn connect(addr: SocketAddr) -> ChatClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        let reader = stream.try_clone().expect("clone");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let l = line.strip_suffix("\r\n").unwrap_or(&line).to_string();
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut c = ChatClient {
            stream,
            lines: rx,
            seen: Vec::new(),
        };
        let welcome = c.take(3, Duration::from_secs(10));
        assert_eq!(
            welcome,
            [
                "Welcome to my chat server.",
                "Send '/NAME [new name]' to change your name.",
                "Send '/EXIT' to quit."
            ]
        );
        c
    }

    /// Sends one line (CRLF added).
    pub fn send(&mut self, line: &str) {
        let mut b = Vec::with_capacity(line.len() + 2);
        b.extend_from_slice(line.as_bytes());
        b.extend_from_slice(b"\r\n");
        self.stream.write_all(&b).expect("send");
    }

    /// Returns the next `n` lines, panicking after `limit`.
    pub fn take(&mut self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => out.push(l),
                Err(_) => panic!(
                    "expected {n} lines, got {} within {limit:?}; last: {:?}",
                    out.len(),
                    out.last()
                ),
            }
        }
        out
    }

    /// Collects lines into `seen` until `done` (called with each new line) returns
    /// true, panicking after `limit`.
    pub fn collect_until(&mut self, limit: Duration, mut done: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let stop = done(&l);
                    self.seen.push(l);
                    if stop {
                        return;
                    }
                }
                Err(_) => panic!(
                    "condition not met within {limit:?} after {} lines; last: {:?}",
                    self.seen.len(),
                    self.seen.last()
                ),
            }
        }
    }

    /// Collects every line until the server closes, panicking after `limit`.
    pub fn collect_to_eof(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no EOF within {limit:?}; {} lines seen", self.seen.len())
                }
            }
        }
    }

    /// Closes the client's side.
    pub fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
