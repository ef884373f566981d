//! Shared helpers for the integration tests: starting servers (in-process or the
//! `weft` binary), bounded socket I/O, and a clear failure when io_uring is missing.
#![allow(dead_code)]

pub mod scripted;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Every socket operation in the tests gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Fails the test with a clear message when io_uring cannot be used here.
pub fn require_io_uring() {
    if let Err(e) = weft::runtime::check_io_uring() {
        panic!("these tests need io_uring: {e}");
    }
}

/// Connects to `addr` with read and write timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Reads until EOF (or the timeout, which fails the test).
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read to EOF");
    v
}

/// A small deterministic PRNG (xorshift64*), so tests need no extra crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The `weft` binary running as a child process.
pub struct WeftProcess {
    pub child: Child,
    pub addrs: Vec<String>,
    stderr_rx: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl WeftProcess {
    /// Starts `weft` with `args` through `sh -c` with `prefix` before it (for
    /// `ulimit`), and waits until it prints its listening lines.
    pub fn start_with(prefix: &str, args: &[&str]) -> WeftProcess {
        require_io_uring();
        let exe = env!("CARGO_BIN_EXE_weft");
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!("{prefix} exec '{exe}' {}", quoted.join(" "));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = WeftProcess {
            child,
            addrs: Vec::new(),
            stderr_rx: rx,
            log: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.addrs.is_empty() || !p.log.last().is_some_and(|l| l.starts_with("listening")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match p.stderr_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        p.addrs.push(rest.split(' ').next().unwrap().to_string());
                    }
                    p.log.push(line);
                }
                Err(_) => panic!("weft did not start; its output: {:?}", p.log),
            }
            if p.addrs.len() == args.iter().filter(|a| a.contains(':')).count().max(1) {
                break;
            }
        }
        p
    }

    pub fn start(args: &[&str]) -> WeftProcess {
        Self::start_with("", args)
    }

    /// The first TCP address it listens on.
    pub fn tcp_addr(&self) -> SocketAddr {
        let a = self
            .addrs
            .iter()
            .find_map(|a| a.strip_prefix("tcp:"))
            .expect("a tcp endpoint");
        a.parse().expect("socket address")
    }

    /// The first UDP address it listens on.
    pub fn udp_addr(&self) -> SocketAddr {
        let a = self
            .addrs
            .iter()
            .find_map(|a| a.strip_prefix("udp:"))
            .expect("a udp endpoint");
        a.parse().expect("socket address")
    }

    /// Collects the output printed so far.
    pub fn drain_log(&mut self) {
        while let Ok(line) = self.stderr_rx.try_recv() {
            self.log.push(line);
        }
    }

    /// Waits up to `timeout` for a line containing `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.iter().any(|l| l.contains(needle)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_rx.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => return false,
            }
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the output.
    pub fn terminate(mut self) -> (i32, Vec<String>) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "weft did not exit after SIGTERM");
            thread::sleep(Duration::from_millis(20));
        };
        // The last lines (the shards' summaries) are written just before the exit: read
        // to the pipe's end, which the reader thread reports by dropping its sender.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_rx.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "weft's stderr still open 10 s after it exited: {:?}",
                        self.log
                    )
                }
            }
        }
        (status.code().unwrap_or(-1), std::mem::take(&mut self.log))
    }

    /// Resident memory of the process, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// CPU time (user + system) the process has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for WeftProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `data` and reads back exactly as many bytes.
pub fn round_trip(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).unwrap();
    let mut back = vec![0; data.len()];
    s.read_exact(&mut back).unwrap();
    back
}

/// Parses the per-shard summary lines `shard N: A connections accepted, ...`.
pub fn accepted_per_shard(log: &[String]) -> Vec<u64> {
    log.iter()
        .filter_map(|l| l.strip_prefix("shard "))
        .filter_map(|l| l.split(": ").nth(1))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Raises this process's open-file limit to its hard limit; returns the new limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the rlimit struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// A loopback connection whose receiver asked for a 4 KiB buffer and never reads.
pub fn never_reading(addr: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

/// How much the kernel takes for such a connection before a send would block (about
/// 3 MB on the 6.x kernels we run on; at most what tcp_wmem allows): a test that
/// wants a peer cut off by the output cap must send more than this.
pub fn kernel_takes_for_a_peer_that_never_reads() -> usize {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _peer = never_reading(l.local_addr().unwrap());
    let (mut a, _) = l.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut taken = 0;
    loop {
        match a.write(&chunk) {
            Ok(n) => taken += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return taken,
            Err(e) => panic!("probe write: {e}"),
        }
    }
}

/// The whole lines of `text`, a file another process may be appending to as it was
/// read: a read can end inside a write(2) in progress (it sees a prefix of it), so
/// whatever follows the last newline may be a torn line and is left out.
pub fn complete_lines(text: &str) -> &str {
    &text[..text.rfind('\n').map_or(0, |i| i + 1)]
}
