//! `ssl:` server endpoints over real loopback sockets on two shards, with real
//! clients: `openssl s_client`, Python's `ssl` module, and rustls.

mod tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tls_support::*;

/// `openssl s_client` with stdin and stdout piped, its output read line by line.
struct SClient {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl SClient {
    fn start(port: u16, ca: &std::path::Path, extra: &[&str]) -> SClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args([
                "-servername",
                "localhost",
                "-verify_return_error",
                "-CAfile",
            ])
            .arg(ca)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl s_client (install the openssl package)");
        // Both streams, as lines: s_client reports some events (KEYUPDATE) on
        // stderr.
        let (tx, lines) = mpsc::channel();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        SClient {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a line containing `needle`; panics with everything seen after LIMIT.
    fn expect_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no line with {needle:?} in {:#?}", self.seen));
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {needle:?} in {:#?}", self.seen),
            }
        }
    }

    /// Waits for the `n`th line containing `needle`.
    fn expect_nth_line(&mut self, needle: &str, n: usize) {
        let deadline = Instant::now() + LIMIT;
        while self.seen.iter().filter(|l| l.contains(needle)).count() < n {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("not {n} lines with {needle:?} in {:#?}", self.seen));
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("not {n} lines with {needle:?} in {:#?}", self.seen),
            }
        }
    }

    /// Closes stdin and waits for the process to end.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + LIMIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "s_client did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pki_and_server(options: &str) -> (TestPki, weft::ServerHandle, u16, std::sync::Arc<Events>) {
    let pki = TestPki::new("server");
    let pem = pki.issue("server.pem", &["localhost", "127.0.0.1"]);
    let (server, addr, events) = start(&format!("privateKey={}:{options}", esc(&pem)));
    (pki, server, addr.port(), events)
}

#[test]
fn tls_openssl_s_client_tls13_echoes_and_closes_cleanly_with_no_ign_eof() {
    let (pki, server, port, events) = pki_and_server("");
    let mut c = SClient::start(port, &pki.ca(), &["-tls1_3", "-no_ign_eof"]);
    c.expect_line("Verify return code: 0 (ok)");
    c.send("hello over TLS 1.3\n");
    c.expect_line("hello over TLS 1.3");
    c.finish();
    let seen = events.wait("a clean close", |s| s.len() == 1 && s[0].lost.is_some());
    assert_eq!(seen[0].version.as_deref(), Some("TLSv1_3"));
    assert_eq!(seen[0].sni.as_deref(), Some("localhost"));
    assert_eq!(
        seen[0].clean,
        Some(true),
        "close_notify is a clean close: {seen:?}"
    );
    server.shutdown().unwrap();
}

#[test]
fn tls_openssl_s_client_tls12_is_served_tls12() {
    let (pki, server, port, events) = pki_and_server("");
    let mut c = SClient::start(port, &pki.ca(), &["-tls1_2"]);
    c.expect_line("Verify return code: 0 (ok)");
    c.send("twelve\n");
    c.expect_line("twelve");
    let seen = events.wait("a handshake", |s| s.len() == 1 && s[0].version.is_some());
    assert_eq!(seen[0].version.as_deref(), Some("TLSv1_2"));
    c.finish();
    server.shutdown().unwrap();
}

#[test]
fn tls_openssl_s_client_negotiates_alpn() {
    let (pki, server, port, events) = pki_and_server("alpn=h2,http/1.1");
    let mut c = SClient::start(port, &pki.ca(), &["-alpn", "http/1.1"]);
    c.expect_line("ALPN protocol: http/1.1");
    c.send("ping\n");
    c.expect_line("ping");
    let seen = events.wait("a handshake", |s| s.len() == 1 && s[0].version.is_some());
    assert_eq!(seen[0].alpn.as_deref(), Some("http/1.1"));
    c.finish();
    server.shutdown().unwrap();
}

/// OpenSSL as the peer of weft's record layer (which takes over from rustls after
/// the handshake) in each of the six suites an ECDSA certificate allows, and, in
/// TLS 1.3, through key updates the client asks weft to answer (s_client's
/// interactive `K` command): the echo after each proves both directions moved to
/// the new keys.
#[test]
fn tls_openssl_s_client_echoes_in_every_suite_and_through_key_updates() {
    let (pki, server, port, _events) = pki_and_server("");
    let suites: [(&str, &str, &str); 6] = [
        ("-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"),
        ("-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"),
        ("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"),
        ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ];
    for (version, flag, suite) in suites {
        let mut c = SClient::start(port, &pki.ca(), &[version, flag, suite]);
        c.expect_line("Verify return code: 0 (ok)");
        c.expect_line(suite);
        c.send(&format!("first in {suite}\n"));
        c.expect_line(&format!("first in {suite}"));
        if version == "-tls1_3" {
            for round in 0..3 {
                // s_client takes a command from the start of one read of its
                // stdin and drops the rest: wait until it has sent the update.
                c.send("K\n");
                c.expect_nth_line("KEYUPDATE", round + 1);
                c.send(&format!("after key update {round} in {suite}\n"));
                c.expect_line(&format!("after key update {round} in {suite}"));
            }
        }
        c.finish();
    }
    server.shutdown().unwrap();
}

const PYTHON_CLIENT: &str = r#"
import hashlib, socket, ssl, sys
cafile, port, cert = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
if cert:
    ctx.load_cert_chain(cert)
s = socket.create_connection(("127.0.0.1", port), timeout=20)
t = ctx.wrap_socket(s, server_hostname="localhost")
data = bytes(range(256)) * 4096
try:
    t.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        chunk = t.recv(65536)
        if not chunk:
            break
        got += chunk
except (ssl.SSLError, ConnectionError) as e:
    print("refused", type(e).__name__, e)
    sys.exit(0)
print(t.version(), len(got), hashlib.sha256(got).digest() == hashlib.sha256(data).digest())
t.unwrap()
t.close()
"#;

fn python(ca: &std::path::Path, port: u16, cert: Option<&std::path::Path>) -> String {
    let out = Command::new("python3")
        .args(["-c", PYTHON_CLIENT])
        .arg(ca)
        .arg(port.to_string())
        .arg(cert.map(|c| c.display().to_string()).unwrap_or_default())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn tls_python_ssl_echoes_one_mebibyte_intact_and_unwraps_cleanly() {
    let (pki, server, port, events) = pki_and_server("");
    assert_eq!(python(&pki.ca(), port, None), "TLSv1.3 1048576 True");
    let seen = events.wait("a close", |s| s.len() == 1 && s[0].lost.is_some());
    assert_eq!(seen[0].bytes, 1 << 20);
    assert_eq!(seen[0].clean, Some(true), "{seen:?}");
    server.shutdown().unwrap();
}

#[test]
fn tls_mutual_auth_accepts_a_good_client_certificate_and_refuses_none() {
    let pki = TestPki::new("mtls");
    let pem = pki.issue("server.pem", &["localhost"]);
    let client = pki.issue("client.pem", &["client.test"]);
    let (server, addr, events) = start(&format!(
        "privateKey={}:clientCA={}",
        esc(&pem),
        esc(&pki.ca())
    ));
    assert_eq!(
        python(&pki.ca(), addr.port(), Some(&client)),
        "TLSv1.3 1048576 True"
    );
    let seen = events.wait("the first connection", |s| {
        s.len() == 1 && s[0].lost.is_some()
    });
    assert!(
        seen[0].peer_certs >= 1,
        "OpenSSL sends the leaf (and may add the CA): {seen:?}"
    );
    let refused = python(&pki.ca(), addr.port(), None);
    assert!(refused.starts_with("refused"), "{refused}");
    // No protocol was built for the refused client: the server decided before it
    // sent the alert Python saw.
    assert_eq!(events.snapshot().len(), 1, "{:?}", events.snapshot());
    server.shutdown().unwrap();
}

#[test]
fn tls_junk_instead_of_client_hello_gets_an_alert_and_others_are_unaffected() {
    let (pki, server, port, events) = pki_and_server("");
    let config = client_config(&pki.ca(), None);
    let mut good = tls_connect(([127, 0, 0, 1], port).into(), &config, "localhost").unwrap();
    assert_eq!(echo(&mut good, b"before"), b"before");
    let mut junk = TcpStream::connect(("127.0.0.1", port)).unwrap();
    junk.set_read_timeout(Some(LIMIT)).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = junk.read_to_end(&mut answer);
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
    assert_eq!(echo(&mut good, b"after"), b"after");
    assert_eq!(
        events.snapshot().len(),
        1,
        "no protocol for the junk connection"
    );
    server.shutdown().unwrap();
}

#[test]
fn tls_silent_client_is_closed_at_the_handshake_timeout() {
    let (_pki, server, port, _events) = pki_and_server("handshakeTimeout=0.5");
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent.set_read_timeout(Some(LIMIT)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let r = silent.read(&mut buf);
    let waited = start.elapsed();
    assert!(matches!(r, Ok(0) | Err(_)), "closed, not answered: {r:?}");
    assert!(
        waited >= Duration::from_millis(400),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );
    server.shutdown().unwrap();
}

#[test]
fn tls_fin_without_close_notify_is_connection_lost() {
    let (pki, server, port, events) = pki_and_server("");
    let config = client_config(&pki.ca(), None);
    let mut c = tls_connect(([127, 0, 0, 1], port).into(), &config, "localhost").unwrap();
    assert_eq!(echo(&mut c, b"x"), b"x");
    c.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let seen = events.wait("the loss", |s| s.len() == 1 && s[0].lost.is_some());
    assert_eq!(seen[0].clean, Some(false));
    assert!(
        seen[0].lost.as_ref().unwrap().contains("close_notify"),
        "{seen:?}"
    );
    server.shutdown().unwrap();
}

#[test]
fn tls_sni_picks_the_certificate_by_server_name() {
    let pki = TestPki::new("sni");
    let default = pki.issue("default.pem", &["localhost"]);
    let dir = pki.dir.join("sni");
    std::fs::create_dir(&dir).unwrap();
    pki.issue_to(&dir.join("a.test.pem"), &["a.test"]);
    pki.issue_to(&dir.join("*.b.test.pem"), &["*.b.test"]);
    let (server, addr, events) = start(&format!(
        "privateKey={}:sniDirectory={}",
        esc(&default),
        esc(&dir)
    ));
    let config = client_config(&pki.ca(), None);
    for name in ["a.test", "www.b.test", "localhost"] {
        let mut c = tls_connect(addr, &config, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(echo(&mut c, name.as_bytes()), name.as_bytes());
    }
    // An unknown name gets the default certificate, which does not name it.
    let Err(err) = tls_connect(addr, &config, "c.test") else {
        panic!("c.test was accepted with the default certificate");
    };
    assert!(err.to_string().contains("certificate"), "{err}");
    let seen = events.wait("three", |s| s.len() == 3);
    let names: Vec<_> = seen.iter().filter_map(|s| s.sni.clone()).collect();
    assert!(names.contains(&"a.test".to_string()), "{names:?}");
    server.shutdown().unwrap();
}

#[test]
fn tls_reload_while_fifty_connections_echo_drops_none_and_new_handshakes_see_the_new_cert() {
    let (pki, server, port, events) = pki_and_server("");
    let config = client_config(&pki.ca(), None);
    let addr = ([127, 0, 0, 1], port).into();
    let mut clients: Vec<Client> = (0..50)
        .map(|_| tls_connect(addr, &config, "localhost").unwrap())
        .collect();
    let old_cert = server_cert(&clients[0]);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let pem = pki.dir.join("server.pem");
    // Echo on every connection, round after round, until told to stop.
    let echoer = std::thread::spawn(move || {
        let mut rounds = 0u32;
        loop {
            for (i, c) in clients.iter_mut().enumerate() {
                let msg = format!("conn {i} round {rounds}\n");
                assert_eq!(echo(c, msg.as_bytes()), msg.as_bytes());
            }
            rounds += 1;
            if stop_rx.try_recv().is_ok() {
                return (rounds, clients);
            }
        }
    });
    pki.issue_to(&pem, &["localhost", "127.0.0.1"]);
    let outcomes = weft::tls::reload_all();
    assert!(
        outcomes
            .iter()
            .any(|o| o.source == pem.display().to_string() && o.result.is_ok()),
        "{outcomes:?}"
    );
    let fresh = tls_connect(addr, &config, "localhost").unwrap();
    assert_ne!(
        server_cert(&fresh),
        old_cert,
        "the new handshake saw the new cert"
    );
    stop_tx.send(()).unwrap();
    let (rounds, mut clients) = echoer.join().expect("every echo came back");
    assert!(rounds >= 1);
    for c in &mut clients {
        assert_eq!(echo(c, b"still here\n"), b"still here\n");
        assert_eq!(
            server_cert(c),
            old_cert,
            "an old connection keeps its session"
        );
    }
    assert!(
        events.snapshot().iter().all(|s| s.lost.is_none()),
        "none dropped"
    );
    drop(clients);
    drop(fresh);
    server.shutdown().unwrap();
}

#[test]
fn tls_silent_handshakes_are_all_closed_at_their_timeout_while_others_are_served() {
    let (pki, server, port, events) = pki_and_server("handshakeTimeout=1");
    let silent: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s
        })
        .collect();
    let config = client_config(&pki.ca(), None);
    let mut good = tls_connect(([127, 0, 0, 1], port).into(), &config, "localhost").unwrap();
    assert_eq!(echo(&mut good, b"served meanwhile"), b"served meanwhile");
    let start = Instant::now();
    for mut s in silent {
        let mut buf = [0u8; 8];
        let r = s.read(&mut buf);
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "closed without an answer: {r:?}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(echo(&mut good, b"still served"), b"still served");
    assert_eq!(
        events.snapshot().len(),
        1,
        "no protocol for a silent connection"
    );
    server.shutdown().unwrap();
}

#[test]
fn tls_handshakes_past_the_per_shard_cap_are_refused_at_accept() {
    use std::sync::{Arc, Mutex};
    use weft::tls::{ServerTls, ServerTlsOptions, TlsServerFactory, TlsStats};
    let pki = TestPki::new("cap");
    let pem = pki.issue("server.pem", &["localhost"]);
    let mut options = ServerTlsOptions::new(pem);
    options.max_handshakes = 10;
    let tls = ServerTls::load(options).unwrap();
    let stats: Arc<Mutex<Vec<Arc<TlsStats>>>> = Arc::default();
    let (st, events) = (stats.clone(), Arc::new(Events::default()));
    let ev = events.clone();
    let server = weft::Server::builder()
        .cores(2)
        .pin(false)
        .listen("tcp:0:interface=127.0.0.1", move |_| {
            let f = TlsServerFactory::new(tls.clone(), RecorderFactory(ev.clone()));
            st.lock().unwrap().push(f.stats());
            f
        })
        .start()
        .unwrap();
    let port = server.tcp_addr().unwrap().port();
    let silent: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // At most 10 per shard may be in progress: with two shards, at least 40 of
    // the 60 are refused.
    let deadline = Instant::now() + LIMIT;
    let sum = |f: fn(&TlsStats) -> u64| stats.lock().unwrap().iter().map(|s| f(s)).sum::<u64>();
    while sum(TlsStats::refused) + sum(TlsStats::started) < 60 {
        assert!(
            Instant::now() < deadline,
            "not every connection was accepted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sum(TlsStats::started) <= 20, "{}", sum(TlsStats::started));
    assert!(sum(TlsStats::refused) >= 40, "{}", sum(TlsStats::refused));
    drop(silent);
    server.shutdown().unwrap();
}

#[test]
fn tls_graceful_stop_sends_close_notify_after_the_last_reply() {
    let (pki, server, port, events) = pki_and_server("");
    let config = client_config(&pki.ca(), None);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = tls_connect(addr, &config, "localhost").unwrap();
    assert_eq!(echo(&mut c, b"before the stop"), b"before the stop");
    let stopper = std::thread::spawn(move || server.shutdown().unwrap());
    // rustls reads 0 only after a close_notify; a bare FIN would be UnexpectedEof.
    let mut buf = [0u8; 64];
    assert_eq!(c.read(&mut buf).expect("a clean TLS close"), 0);
    stopper.join().unwrap();
    let seen = events.wait("the close", |s| s.len() == 1 && s[0].lost.is_some());
    assert_eq!(
        seen[0].lost.as_deref(),
        Some("server shutdown (output drained)"),
        "the inner protocol is told it was the server's stop: {seen:?}"
    );
}
