//! Helpers for the `tls_*` integration tests: test certificates (made at test time),
//! a TLS echo server on two shards that records what its protocols saw, and a
//! blocking rustls client.
#![allow(dead_code)]

#[path = "../../src/tls/test_pki.rs"]
pub mod test_pki;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use weft::tls::rustls;
use weft::tls::rustls::pki_types::ServerName;
use weft::{Address, Factory, Protocol, Reason, Server, ServerHandle, Transport};

pub use test_pki::TestPki;

/// Every wait in these tests gives up after this long.
pub const LIMIT: Duration = Duration::from_secs(20);

/// What one server-side protocol saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub alpn: Option<String>,
    pub version: Option<String>,
    pub sni: Option<String>,
    pub peer_certs: usize,
    pub lost: Option<String>,
    pub clean: Option<bool>,
    pub bytes: usize,
}

/// Connections seen by the server, across shards, with a condition variable to
/// wait on.
#[derive(Default)]
pub struct Events {
    seen: Mutex<Vec<Seen>>,
    cv: Condvar,
}

impl Events {
    fn update(&self, i: usize, f: impl FnOnce(&mut Seen)) {
        let mut s = self.seen.lock().unwrap();
        f(&mut s[i]);
        self.cv.notify_all();
    }

    fn open(&self) -> usize {
        let mut s = self.seen.lock().unwrap();
        s.push(Seen::default());
        self.cv.notify_all();
        s.len() - 1
    }

    /// Waits until `pred` holds for the list of connections; panics after LIMIT.
    pub fn wait(&self, what: &str, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + LIMIT;
        let mut s = self.seen.lock().unwrap();
        while !pred(&s) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("timed out waiting for {what}: {s:?}"));
            s = self.cv.wait_timeout(s, left).unwrap().0;
        }
        s.clone()
    }

    pub fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Echoes, and records what the TLS layer told it.
pub struct Recorder {
    events: Arc<Events>,
    index: usize,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut Transport) {
        let info = t.tls().expect("a TLS transport").clone();
        self.events.update(self.index, |s| {
            s.alpn = info
                .negotiated_protocol()
                .map(|a| String::from_utf8_lossy(a).into_owned());
            s.version = info.version().map(|v| format!("{v:?}"));
            s.sni = info.server_name().map(str::to_string);
            s.peer_certs = info.peer_certificates().len();
        });
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.events.update(self.index, |s| s.bytes += data.len());
        t.write(data);
    }
    fn connection_lost(&mut self, reason: Reason) {
        self.events.update(self.index, |s| {
            s.clean = Some(reason.is_clean());
            s.lost = Some(reason.to_string());
        });
    }
}

pub struct RecorderFactory(pub Arc<Events>);

impl Factory for RecorderFactory {
    type Protocol = Recorder;
    fn build_protocol(&mut self, _: &Address) -> Option<Recorder> {
        let index = self.0.open();
        Some(Recorder {
            events: self.0.clone(),
            index,
        })
    }
}

/// A two-shard recording echo server on `ssl:0:interface=127.0.0.1:` + `options`.
pub fn start(options: &str) -> (ServerHandle, SocketAddr, Arc<Events>) {
    if let Err(e) = weft::runtime::check_io_uring() {
        panic!("these tests need io_uring: {e}");
    }
    let events = Arc::new(Events::default());
    let ev = events.clone();
    let desc = format!("ssl:0:interface=127.0.0.1:{options}");
    let server = Server::builder()
        .cores(2)
        .pin(false)
        .listen(desc.trim_end_matches(':'), move |_| {
            RecorderFactory(ev.clone())
        })
        .start()
        .expect("server starts");
    let addr = server.tcp_addr().expect("a TCP address");
    (server, addr, events)
}

/// Escapes a path for an endpoint string.
pub fn esc(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// A rustls client config trusting `ca` (and presenting `client` if given).
pub fn client_config(ca: &Path, client: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let roots = weft::tls::root_store(ca).expect("ca");
    let b = rustls::ClientConfig::builder_with_provider(weft::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(pem) => b
            .with_client_auth_cert(
                weft::tls::certificates(pem).unwrap(),
                weft::tls::private_key(pem).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// A blocking TLS connection (rustls over a std socket with timeouts).
pub type Client = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake.
pub fn tls_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<Client, std::io::Error> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(LIMIT))?;
    sock.set_write_timeout(Some(LIMIT))?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Writes `msg` and reads back exactly as many bytes.
pub fn echo(c: &mut Client, msg: &[u8]) -> Vec<u8> {
    c.write_all(msg).expect("write");
    c.flush().expect("flush");
    let mut got = vec![0; msg.len()];
    c.read_exact(&mut got).expect("read the echo");
    got
}

/// The server certificate a client was shown.
pub fn server_cert(c: &Client) -> Vec<u8> {
    c.conn.peer_certificates().unwrap()[0].to_vec()
}
