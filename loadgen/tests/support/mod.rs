//! Test servers on 127.0.0.1 and a bounded way to run the `loadgen` binary.
//!
//! Every server is a few std threads that live until the test process ends; every run of
//! the binary is killed (and the test failed) if it outlives its deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How an echo server misbehaves.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// None: a plain echo.
    None,
    /// Flips one bit of the byte at this offset of the first connection's stream.
    CorruptByte(usize),
    /// Stops serving for `.1` once `.0` has passed since the first byte.
    Stall(Duration, Duration),
}

/// Starts an echo server with `fault` and returns its address.
pub fn echo_server(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let corrupted = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(Mutex::new((None::<Instant>, false)));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let corrupted = Arc::clone(&corrupted);
            let stalled = Arc::clone(&stalled);
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 65536];
                let mut offset = 0usize;
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    match fault {
                        Fault::None => {}
                        Fault::CorruptByte(at) => {
                            if at >= offset
                                && at < offset + n
                                && !corrupted.swap(true, Ordering::SeqCst)
                            {
                                buf[at - offset] ^= 0x01;
                            }
                        }
                        Fault::Stall(after, length) => {
                            let mut s = stalled.lock().unwrap();
                            let first = *s.0.get_or_insert_with(Instant::now);
                            if !s.1 && first.elapsed() >= after {
                                s.1 = true;
                                // Holding the lock stalls every connection of the server.
                                std::thread::sleep(length);
                            }
                        }
                    }
                    offset += n;
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Starts a chat server speaking Twisted's chat example protocol and returns its address.
pub fn chat_server() -> SocketAddr {
    chat_room(1)[0].0
}

/// Starts `listeners` chat listeners that share one room (a line said on any reaches the
/// clients of all, as processes joined by a bus); returns each one's address and a count
/// of the clients it accepted.
pub fn chat_room(listeners: usize) -> Vec<(SocketAddr, Arc<AtomicUsize>)> {
    let clients: Arc<Mutex<Vec<(usize, TcpStream)>>> = Arc::new(Mutex::new(Vec::new()));
    let next_id = Arc::new(AtomicUsize::new(0));
    (0..listeners)
        .map(|_| {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local addr");
            let accepted = Arc::new(AtomicUsize::new(0));
            let (clients, next_id, count) = (
                Arc::clone(&clients),
                Arc::clone(&next_id),
                Arc::clone(&accepted),
            );
            std::thread::spawn(move || serve_chat(listener, clients, next_id, count));
            (addr, accepted)
        })
        .collect()
}

fn serve_chat(
    listener: TcpListener,
    clients: Arc<Mutex<Vec<(usize, TcpStream)>>>,
    next_id: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
) {
    for stream in listener.incoming() {
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let clients = Arc::clone(&clients);
        let _ = stream.write_all(
            b"Welcome to my chat server.\r\nSend '/NAME [new name]' to change your name.\r\nSend '/EXIT' to quit.\r\n",
        );
        let mut name = format!("guest{id}");
        {
            let mut all = clients.lock().unwrap();
            for (_, other) in all.iter_mut() {
                let _ = other.write_all(format!("{name} has joined the party.\r\n").as_bytes());
            }
            all.push((id, stream.try_clone().expect("clone")));
        }
        std::thread::spawn(move || {
            let reader = BufReader::new(stream);
            for line in reader.split(b'\n') {
                let Ok(mut line) = line else { break };
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(new) = line.strip_prefix(b"/NAME ") {
                    name = String::from_utf8_lossy(new).into_owned();
                    continue;
                }
                if line == b"/EXIT" {
                    break;
                }
                let mut msg = format!("{name} says ").into_bytes();
                msg.extend_from_slice(&line);
                msg.extend_from_slice(b"\r\n");
                let mut all = clients.lock().unwrap();
                for (_, c) in all.iter_mut() {
                    let _ = c.write_all(&msg);
                }
            }
            clients.lock().unwrap().retain(|(i, _)| *i != id);
        });
    }
}

/// A finished run of the binary.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `loadgen ARGS` and kills it (failing the test) if it takes longer than `deadline`.
pub fn loadgen(args: &[&str], deadline: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen {args:?} did not stop within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        status: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// A fresh path in the system's temporary directory.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("loadgen-test-{}-{name}", std::process::id()))
}

/// Reads and parses a JSON report.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("JSON report written");
    serde_json::from_str(&text).expect("JSON report parses")
}

/// Polls `cond` every 5 ms until it holds (true) or `limit` has passed (false): for a
/// server's counters, which may still move for a moment after the generator exits.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
