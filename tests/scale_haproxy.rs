//! The `haproxy:` endpoint behind a real HAProxy (Debian's `haproxy`) on loopback:
//! `send-proxy-v2` and `send-proxy` in front of two `weft` processes, the address a
//! protocol sees, and what junk sent past the balancer does.

mod support;
mod support_scale;
mod tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use support::{require_io_uring, WeftProcess};
use support_scale::{connect_from, haproxy, SendProxy};
use weft::haproxy::{HaproxyServerFactory, HaproxyStats};
use weft::{Address, Factory, Protocol, Server, Transport};

/// Writes `PEER HOST\n` and closes: what a protocol behind the wrapper sees.
struct Whoami;

impl Protocol for Whoami {
    fn connection_made(&mut self, t: &mut Transport) {
        let line = format!("{} {}\n", t.peer(), t.host());
        t.write(line.as_bytes());
        t.lose_connection();
    }
    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

struct WhoamiFactory;

impl Factory for WhoamiFactory {
    type Protocol = Whoami;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Whoami> {
        Some(Whoami)
    }
}

fn whoami_server(stats: &Arc<HaproxyStats>) -> weft::ServerHandle {
    require_io_uring();
    let stats = Arc::clone(stats);
    Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |_| {
            HaproxyServerFactory::with_stats(WhoamiFactory, Arc::clone(&stats))
        })
        .start()
        .expect("server starts")
}

fn read_all(mut s: TcpStream) -> String {
    let mut v = String::new();
    s.read_to_string(&mut v).expect("read to EOF");
    v
}

/// A chat process whose only endpoint wants a PROXY header.
fn chat_behind_balancer() -> WeftProcess {
    WeftProcess::start(&[
        "serve",
        "chat",
        "haproxy:tcp:0:interface=127.0.0.1",
        "--cores",
        "2",
    ])
}

/// Joins the chat through `front`, from `from`, says `line`; returns the echo.
fn say_through(front: SocketAddr, from: &str, line: &str) -> String {
    let s = connect_from(from, front);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut welcome = String::new();
    for _ in 0..3 {
        r.read_line(&mut welcome).unwrap();
    }
    assert!(
        welcome.starts_with("Welcome to my chat server."),
        "{welcome:?}"
    );
    (&s).write_all(format!("{line}\r\n").as_bytes()).unwrap();
    // Notices about clients that came before (joins, lines, leaves) may still reach this
    // one: another shard tells it through the mesh, and the new connection can be served
    // first. Skip to this client's own line, which the caller makes unique.
    let own = format!(" says {line}\r\n");
    let back = loop {
        let mut back = String::new();
        assert_ne!(r.read_line(&mut back).unwrap(), 0, "EOF before {own:?}");
        if back.ends_with(&own) {
            break back;
        }
    };
    (&s).write_all(b"/EXIT\r\n").unwrap();
    back
}

fn service_totals(log: &[String]) -> (u64, u64) {
    let line = log
        .iter()
        .find(|l| l.contains("service totals"))
        .unwrap_or_else(|| panic!("no haproxy totals in {log:?}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // "haproxy shard I: service totals: A headers read, R refused, T timed out"
    (n[n.len() - 3], n[n.len() - 2])
}

#[test]
fn send_proxy_v2_gives_the_protocol_the_clients_address_and_the_frontend_as_host() {
    let stats = Arc::new(HaproxyStats::default());
    let server = whoami_server(&stats);
    let (_lb, port) = haproxy(&[server.tcp_addr().unwrap()], SendProxy::V2);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..4 {
        let s = connect_from("127.0.0.2", front);
        let me = s.local_addr().unwrap();
        assert_eq!(read_all(s), format!("tcp:{me} tcp:{front}\n"));
    }
    assert_eq!((stats.accepted(), stats.refused()), (4, 0));
    server.shutdown().unwrap();
}

#[test]
fn send_proxy_v1_gives_the_same_addresses() {
    let stats = Arc::new(HaproxyStats::default());
    let server = whoami_server(&stats);
    let (_lb, port) = haproxy(&[server.tcp_addr().unwrap()], SendProxy::V1);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let s = connect_from("127.0.0.3", front);
    let me = s.local_addr().unwrap();
    assert_eq!(read_all(s), format!("tcp:{me} tcp:{front}\n"));
    assert_eq!(stats.accepted(), 1);
    server.shutdown().unwrap();
}

#[test]
fn haproxy_v2_in_front_of_two_weft_chat_processes_names_each_client_by_its_own_address() {
    let a = chat_behind_balancer();
    let b = chat_behind_balancer();
    let (_lb, port) = haproxy(&[a.tcp_addr(), b.tcp_addr()], SendProxy::V2);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The chat names a client by its peer's host: the client's, not HAProxy's.
    for i in 0..4 {
        let from = format!("127.0.0.{}", 2 + i);
        let hello = format!("hello {i}");
        assert_eq!(
            say_through(front, &from, &hello),
            format!("{from} says {hello}\r\n")
        );
    }
    for p in [a, b] {
        let (code, log) = p.terminate();
        assert_eq!(code, 0, "{log:?}");
        let accepted: u64 = support::accepted_per_shard(&log).iter().sum();
        // Round-robin: two clients each.
        assert_eq!(accepted, 2, "{log:?}");
        assert_eq!(service_totals(&log), (2, 0), "{log:?}");
    }
}

#[test]
fn junk_and_a_bad_v2_length_past_the_balancer_are_closed_and_counted_and_nothing_else_is_affected()
{
    let mut w = chat_behind_balancer();
    let (_lb, port) = haproxy(&[w.tcp_addr()], SendProxy::V2);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A client that joined through the balancer and stays.
    let stay = connect_from("127.0.0.9", front);
    let mut stay_r = BufReader::new(stay.try_clone().unwrap());
    let mut line = String::new();
    for _ in 0..3 {
        stay_r.read_line(&mut line).unwrap();
    }

    let mut bad_v2 = weft::haproxy::V2_SIGNATURE.to_vec();
    bad_v2.extend_from_slice(&[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]);
    let mut too_long = weft::haproxy::V2_SIGNATURE.to_vec();
    too_long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    for junk in [&b"GET / HTTP/1.0\r\n\r\n"[..], &bad_v2, &too_long] {
        // Straight to weft, as a stranger who found the port would.
        let mut s = support::connect(w.tcp_addr());
        s.write_all(junk).unwrap();
        let mut got = Vec::new();
        // Closed with a reset: either an error or EOF, and never a greeting.
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    assert!(w.wait_for_log("haproxy: closing the connection", Duration::from_secs(10)));

    // The chat still works for a new client and for the one that stayed.
    assert_eq!(
        say_through(front, "127.0.0.10", "still here"),
        "127.0.0.10 says still here\r\n"
    );
    line.clear();
    stay_r.read_line(&mut line).unwrap();
    assert_eq!(line, "127.0.0.10 has joined the party.\r\n");
    drop(stay_r);
    drop(stay);
    let (code, log) = w.terminate();
    assert_eq!(code, 0, "{log:?}");
    assert_eq!(service_totals(&log), (2, 3), "{log:?}");
}

#[test]
fn haproxy_wraps_a_unix_endpoint_and_the_chat_still_sees_the_clients_address() {
    let dir = support_scale::TempDir::new("haproxy-unix");
    let path = dir.0.join("chat.sock");
    let endpoint = format!("haproxy:unix:{}", path.display());
    let w = WeftProcess::start(&["serve", "chat", &endpoint, "--cores", "2"]);
    assert_eq!(w.addrs, vec![format!("unix:{}", path.display())]);
    let (_lb, port) = haproxy(&[path.display()], SendProxy::V2);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Without the header the chat would name this client "unix".
    assert_eq!(
        say_through(front, "127.0.0.4", "over unix"),
        "127.0.0.4 says over unix\r\n"
    );
    let (code, log) = w.terminate();
    assert_eq!(code, 0, "{log:?}");
    assert_eq!(service_totals(&log), (1, 0), "{log:?}");
}

#[test]
fn haproxy_wraps_an_ssl_endpoint_the_header_comes_before_the_handshake() {
    let pki = tls_support::TestPki::new("haproxy-ssl");
    let pem = pki.issue("server.pem", &["localhost"]);
    let endpoint = format!(
        "haproxy:ssl:0:interface=127.0.0.1:privateKey={}",
        tls_support::esc(&pem)
    );
    let w = WeftProcess::start(&["serve", "echo", "--cores", "2", &endpoint]);
    let (_lb, port) = haproxy(&[w.tcp_addr()], SendProxy::V2);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = tls_support::client_config(&pki.ca(), None);
    let mut c = tls_support::tls_connect(front, &config, "localhost").unwrap();
    assert_eq!(
        tls_support::echo(&mut c, b"tls behind haproxy\r\n"),
        b"tls behind haproxy\r\n"
    );
    drop(c);
    let (code, log) = w.terminate();
    assert_eq!(code, 0, "{log:?}");
    assert_eq!(service_totals(&log), (1, 0), "{log:?}");
}
