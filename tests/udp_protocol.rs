//! Datagram protocols served in-process on two shards, driven by real UDP sockets
//! on 127.0.0.1: flows spread over both shards, truncation counted, a panic in
//! `datagram_received` not stopping the port, garbage and zero-length datagrams,
//! connected mode with a refusing peer, and multicast on the loopback interface.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use support::{require_io_uring, Rng, IO_TIMEOUT};
use weft::datagram::{DatagramAddress, DatagramError, DatagramProtocol, DatagramTransport};
use weft::{Server, ServerHandle, ShardStats};

/// Echoes, but panics on the datagram `panic`.
struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(
        &mut self,
        data: &[u8],
        addr: &DatagramAddress,
        t: &mut DatagramTransport,
    ) {
        if data == b"panic" {
            t.write(b"written before the panic", addr).unwrap();
            panic!("datagram boom");
        }
        t.write(data, addr).unwrap();
    }
}

fn serve<P: DatagramProtocol>(
    endpoint: &str,
    build: impl Fn(usize) -> P + Send + Sync + 'static,
) -> (ServerHandle, SocketAddr) {
    require_io_uring();
    let server = Server::builder()
        .cores(2)
        .pin(false)
        .listen_datagram(&[endpoint], build)
        .start()
        .expect("server starts");
    let addr = server.udp_addr().expect("a udp address");
    (server, addr)
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c
}

fn ask(c: &UdpSocket, to: SocketAddr, data: &[u8]) -> Vec<u8> {
    c.send_to(data, to).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, from) = c.recv_from(&mut buf).expect("a reply");
    assert_eq!(from, to, "the reply comes from the port's address");
    buf.truncate(n);
    buf
}

fn total(server: &ServerHandle, f: impl Fn(&ShardStats) -> u64) -> u64 {
    server.stats().iter().map(|s| f(s)).sum()
}

#[test]
fn udp_flows_from_many_clients_reach_both_shards_and_each_gets_its_own_replies() {
    let (server, addr) = serve("udp:0:interface=127.0.0.1", |_| Echo);
    let clients: Vec<UdpSocket> = (0..64).map(|_| client()).collect();
    for round in 0..3u8 {
        for (i, c) in clients.iter().enumerate() {
            let msg = [b'f', i as u8, round];
            assert_eq!(ask(c, addr, &msg), msg);
        }
    }
    let per_shard: Vec<u64> = server.stats().iter().map(|s| s.datagrams_in()).collect();
    assert_eq!(per_shard.iter().sum::<u64>(), 64 * 3, "{per_shard:?}");
    assert!(
        per_shard.iter().all(|n| *n > 0),
        "64 flows should reach both shards: {per_shard:?}"
    );
    // One flow stays on one shard: each shard saw whole flows (multiples of 3).
    assert!(per_shard.iter().all(|n| n % 3 == 0), "{per_shard:?}");
    let summaries = server.shutdown().unwrap();
    assert_eq!(summaries.iter().map(|s| s.datagrams_in).sum::<u64>(), 192);
}

#[test]
fn udp_garbage_and_zero_length_datagrams_are_echoed_exactly() {
    let (server, addr) = serve("udp:0:interface=127.0.0.1", |_| Echo);
    let c = client();
    assert_eq!(ask(&c, addr, b""), b"");
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(ask(&c, addr, &all), all);
    let mut rng = Rng::new(12);
    for _ in 0..50 {
        let len = rng.below(8192) as usize;
        let d = rng.bytes(len);
        assert_eq!(ask(&c, addr, &d), d);
    }
    assert_eq!(ask(&c, addr, b""), b"");
    assert_eq!(total(&server, |s| s.datagrams_truncated()), 0);
    server.shutdown().unwrap();
}

#[test]
fn udp_datagram_longer_than_max_packet_size_is_truncated_and_counted() {
    let (server, addr) = serve("udp:0:interface=127.0.0.1:maxPacketSize=100", |_| Echo);
    let c = client();
    let long: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    assert_eq!(ask(&c, addr, &long), &long[..100]);
    assert_eq!(ask(&c, addr, &long[..100]), &long[..100]);
    assert_eq!(ask(&c, addr, &long), &long[..100]);
    assert_eq!(total(&server, |s| s.datagrams_truncated()), 2);
    assert_eq!(total(&server, |s| s.datagrams_in()), 3);
    server.shutdown().unwrap();
}

#[test]
fn udp_panic_in_datagram_received_is_counted_and_the_port_keeps_serving() {
    let (server, addr) = serve("udp:0:interface=127.0.0.1", |_| Echo);
    let c = client();
    // Writes made before the panic still go, as Twisted's sendto had sent them.
    assert_eq!(ask(&c, addr, b"panic"), b"written before the panic");
    assert_eq!(ask(&c, addr, b"still there?"), b"still there?");
    assert_eq!(ask(&c, addr, b"panic"), b"written before the panic");
    assert_eq!(ask(&c, addr, b"and again"), b"and again");
    assert_eq!(total(&server, |s| s.panics()), 2);
    // Other flows (on either shard) are served too.
    for _ in 0..8 {
        assert_eq!(ask(&client(), addr, b"x"), b"x");
    }
    server.shutdown().unwrap();
}

/// Connects to a peer port in `start_protocol` and writes to it; reports what
/// happened through `events`.
struct Connected {
    peer: u16,
    events: mpsc::Sender<String>,
}

impl DatagramProtocol for Connected {
    fn start_protocol(&mut self, t: &mut DatagramTransport) {
        t.connect("127.0.0.1", self.peer).unwrap();
        let second = t.connect("127.0.0.1", self.peer);
        let _ = self.events.send(format!("second connect: {second:?}"));
        let name = t.write_to(b"x", "localhost", 9);
        let _ = self.events.send(format!("write to a name: {name:?}"));
        t.write_connected(b"anyone there?").unwrap();
    }

    fn datagram_received(&mut self, _: &[u8], _: &DatagramAddress, _: &mut DatagramTransport) {}

    fn connection_refused(&mut self, _t: &mut DatagramTransport) {
        let _ = self.events.send("refused".into());
    }
}

#[test]
fn udp_connected_mode_reports_a_closed_peer_port_as_connection_refused() {
    // A port nothing listens on: bound, learned, closed.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tx, rx) = mpsc::channel();
    let tx = Arc::new(std::sync::Mutex::new(tx));
    require_io_uring();
    let server = Server::builder()
        .cores(1)
        .pin(false)
        .listen_datagram(&["udp:0:interface=127.0.0.1"], move |_| Connected {
            peer: closed,
            events: tx.lock().unwrap().clone(),
        })
        .start()
        .unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + IO_TIMEOUT;
    while !seen.iter().any(|e| e == "refused") {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(
            rx.recv_timeout(left)
                .unwrap_or_else(|_| panic!("no connection_refused; events so far: {seen:?}")),
        );
    }
    assert!(
        seen.contains(&"second connect: Err(AlreadyConnected)".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.starts_with("write to a name: Err(InvalidAddress")),
        "{seen:?}"
    );
    server.shutdown().unwrap();
}

/// Joins a multicast group on the loopback interface; reports each datagram with
/// the shard that got it.
struct Member {
    shard: usize,
    group: &'static str,
    events: mpsc::Sender<(usize, Vec<u8>)>,
}

impl DatagramProtocol for Member {
    fn start_protocol(&mut self, t: &mut DatagramTransport) {
        t.join_group(self.group, "127.0.0.1").unwrap();
        t.set_loopback_mode(true).unwrap();
        t.set_ttl(1).unwrap();
        assert!(matches!(
            t.join_group("not-an-address", ""),
            Err(DatagramError::InvalidAddress(_))
        ));
    }

    fn datagram_received(&mut self, data: &[u8], _: &DatagramAddress, _: &mut DatagramTransport) {
        let _ = self.events.send((self.shard, data.to_vec()));
    }
}

#[test]
fn udp_multicast_on_loopback_reaches_every_member_of_the_group() {
    const GROUP: &str = "239.255.12.34";
    let (tx, rx) = mpsc::channel();
    let tx = Arc::new(std::sync::Mutex::new(tx));
    require_io_uring();
    // Bound to the wildcard address: a multicast datagram is addressed to the
    // group, not to 127.0.0.1. The sender's interface keeps it on loopback.
    let server = Server::builder()
        .cores(2)
        .pin(false)
        .listen_datagram(&["udp:0"], move |shard| Member {
            shard,
            group: GROUP,
            events: tx.lock().unwrap().clone(),
        })
        .start()
        .unwrap();
    let port = server.udp_addr().unwrap().port();
    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender
        .set_multicast_if_v4(&"127.0.0.1".parse().unwrap())
        .unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    let to: SocketAddr = format!("{GROUP}:{port}").parse().unwrap();
    sender.send_to(b"to the group", &to.into()).unwrap();
    let mut shards = Vec::new();
    while shards.len() < 2 {
        let (shard, data) = rx
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|_| panic!("only shards {shards:?} got the datagram"));
        assert_eq!(data, b"to the group");
        shards.push(shard);
    }
    shards.sort();
    assert_eq!(shards, vec![0, 1], "each shard's member gets its own copy");
    server.shutdown().unwrap();
}

#[test]
fn udp_stream_and_datagram_endpoints_are_not_mixed_up() {
    let err = Server::builder()
        .listen_datagram(&["tcp:0"], |_| Echo)
        .start()
        .err()
        .expect("a tcp endpoint for a datagram protocol is refused");
    assert!(err.to_string().contains("datagram endpoint"), "{err}");
    let err = Server::builder()
        .listen("udp:0", |_| {
            weft::services::wire::SimpleFactory::new(|| weft::services::wire::Echo)
        })
        .start()
        .err()
        .expect("a udp endpoint for a factory is refused");
    assert!(err.to_string().contains("listen_datagram"), "{err}");
}

/// Answers `burst` with ten 100-byte datagrams and one of 50, all to the sender.
struct Burst;

impl DatagramProtocol for Burst {
    fn datagram_received(
        &mut self,
        data: &[u8],
        addr: &DatagramAddress,
        t: &mut DatagramTransport,
    ) {
        if data == b"burst" {
            for i in 0..10u8 {
                t.write(&[i; 100], addr).unwrap();
            }
            t.write(&[10; 50], addr).unwrap();
        }
    }
}

#[test]
fn udp_same_size_writes_to_one_peer_go_as_one_gso_send_and_arrive_as_datagrams() {
    let (server, addr) = serve("udp:0:interface=127.0.0.1", |_| Burst);
    let c = client();
    c.send_to(b"burst", addr).unwrap();
    let mut buf = [0u8; 2000];
    for i in 0..11u8 {
        let (n, from) = c.recv_from(&mut buf).expect("every datagram of the burst");
        assert_eq!(from, addr);
        let want = if i < 10 { 100 } else { 50 };
        assert_eq!(n, want, "datagram {i} keeps its own length");
        assert!(
            buf[..n].iter().all(|b| *b == i),
            "datagram {i} keeps its bytes"
        );
    }
    // The shard counts before it is done with the completion the reply came from.
    let deadline = Instant::now() + IO_TIMEOUT;
    while total(&server, |s| s.datagrams_out()) < 11 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(total(&server, |s| s.datagrams_gso()), 11, "one GSO send");
    assert_eq!(total(&server, |s| s.datagrams_out()), 11);
    server.shutdown().unwrap();
}

/// Answers each datagram twice: at once, and from a `call_later` timer through a
/// handle (Twisted's `transport.write` outside `datagramReceived`).
struct Later;

impl DatagramProtocol for Later {
    fn datagram_received(
        &mut self,
        data: &[u8],
        addr: &DatagramAddress,
        t: &mut DatagramTransport,
    ) {
        t.write(b"now", addr).unwrap();
        let handle = t.handle();
        let addr = addr.clone();
        let mut reply = b"later: ".to_vec();
        reply.extend_from_slice(data);
        t.reactor()
            .call_later(std::time::Duration::from_millis(20), move || {
                handle.write(&reply, &addr).unwrap();
            });
    }
}

#[test]
fn udp_a_handle_writes_from_a_timer_after_the_callback_returned() {
    let (server, addr) = serve("udp:0:interface=127.0.0.1", |_| Later);
    let c = client();
    c.send_to(b"ping", addr).unwrap();
    let mut buf = [0u8; 100];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"now");
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"later: ping");
    server.shutdown().unwrap();
}
