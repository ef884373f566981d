//! Helpers for the scale-out tests: free loopback ports, waiting for a listener,
//! and the real programs weft runs beside (HAProxy, redis-server), started as
//! children and killed when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A loopback port nobody listens on now (the OS's pick, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Tells whether some socket listens on 127.0.0.1:`port`, from /proc/net/tcp
/// (without connecting, so no connection reaches whatever is behind it).
pub fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
}

/// Waits until something listens on 127.0.0.1:`port`; panics after `timeout`.
pub fn wait_listening(port: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while !listening(port) {
        assert!(
            Instant::now() < deadline,
            "{what} is not listening on port {port}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Connects from `from` (a loopback address such as 127.0.0.2) to `to`.
pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into()).unwrap();
    s.connect(&to.into())
        .unwrap_or_else(|e| panic!("connect {to} from {from}: {e}"));
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// A child program whose output is collected; killed when dropped.
pub struct Program {
    pub child: Child,
    output: mpsc::Receiver<String>,
    pub log: Vec<String>,
    _dir: Option<TempDir>,
}

impl Program {
    fn spawn(mut cmd: Command, dir: Option<TempDir>) -> Program {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e} (see .ci/test for the packages)"));
        let (tx, rx) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Program {
            child,
            output: rx,
            log: Vec::new(),
            _dir: dir,
        }
    }

    /// Collects what it printed so far.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(l) = self.output.try_recv() {
            self.log.push(l);
        }
        &self.log
    }

    /// Kills it (SIGKILL) and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("weft-{tag}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How HAProxy announces the client to a backend.
#[derive(Clone, Copy)]
pub enum SendProxy {
    V1,
    V2,
}

/// Starts HAProxy in TCP mode on a free loopback port, round-robin over
/// `backends` (`IP:PORT`, or the absolute path of a UNIX socket), sending a PROXY
/// header of version `send`; returns it and its port once it listens.
pub fn haproxy(backends: &[impl std::fmt::Display], send: SendProxy) -> (Program, u16) {
    let port = free_port();
    let dir = TempDir::new("haproxy");
    let keyword = match send {
        SendProxy::V1 => "send-proxy",
        SendProxy::V2 => "send-proxy-v2",
    };
    let mut cfg = format!(
        "global\n  maxconn 2000\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
         backend be\n  balance roundrobin\n"
    );
    for (i, b) in backends.iter().enumerate() {
        cfg.push_str(&format!("  server w{i} {b} {keyword}\n"));
    }
    let path = dir.0.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    let mut p = Program::spawn(cmd, Some(dir));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listening(port) {
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!("haproxy exited ({st}): {:?}", p.drain());
        }
        assert!(
            Instant::now() < deadline,
            "haproxy did not listen: {:?}",
            p.drain()
        );
        thread::sleep(Duration::from_millis(10));
    }
    (p, port)
}

/// Starts `redis-server` on `port` of 127.0.0.1 (no persistence, no config file);
/// returns once it listens.
pub fn redis_server(port: u16) -> Program {
    let dir = TempDir::new("redis");
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
    ])
    .arg(&dir.0);
    let mut p = Program::spawn(cmd, Some(dir));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listening(port) {
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!("redis-server exited ({st}): {:?}", p.drain());
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen: {:?}",
            p.drain()
        );
        thread::sleep(Duration::from_millis(10));
    }
    p
}
