//! In-memory tests of the wrapping protocol: a client wrapper and a server wrapper
//! pumped against each other over `weft::testing` transports (no sockets), with a
//! manual clock for the handshake timeout.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::address::Address;
use crate::client::{ClientFactory, ConnectError, Connector};
use crate::factory::Factory;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::testing::{ConnectedPair, Side, StringTransport};
use crate::transport::{Transport, TransportHandle};

use super::test_pki::TestPki;
use super::*;

/// What an inner protocol saw.
#[derive(Default)]
struct Log {
    made: usize,
    data: Vec<u8>,
    lost: Option<String>,
    lost_kind: Option<io::ErrorKind>,
    clean: Option<bool>,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
    sni: Option<String>,
    peer_certs: usize,
    peer_cert: Vec<u8>,
    handle: Option<TransportHandle>,
    paused: usize,
    resumed: usize,
}

/// Echoes (server) or collects (client); greets with `greeting`.
struct Probe {
    log: Rc<RefCell<Log>>,
    echo: bool,
    greeting: Vec<u8>,
}

impl Protocol for Probe {
    fn connection_made(&mut self, t: &mut Transport) {
        let mut l = self.log.borrow_mut();
        l.made += 1;
        let info = t.tls().expect("a TLS transport");
        l.alpn = info.negotiated_protocol().map(<[u8]>::to_vec);
        l.version = info.version();
        l.sni = info.server_name().map(str::to_string);
        l.peer_certs = info.peer_certificates().len();
        l.peer_cert = info
            .peer_certificates()
            .first()
            .map(|c| c.to_vec())
            .unwrap_or_default();
        l.handle = Some(t.handle());
        t.write(&self.greeting);
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.log.borrow_mut().data.extend_from_slice(data);
        if self.echo {
            t.write(data);
        }
    }
    fn pause_producing(&mut self, _: &mut Transport) {
        self.log.borrow_mut().paused += 1;
    }
    fn resume_producing(&mut self, _: &mut Transport) {
        self.log.borrow_mut().resumed += 1;
    }
    fn connection_lost(&mut self, reason: Reason) {
        let mut l = self.log.borrow_mut();
        l.clean = Some(reason.is_clean());
        if let Reason::ConnectionLost(e) = &reason {
            l.lost_kind = Some(e.kind());
        }
        l.lost = Some(reason.to_string());
    }
}

struct ProbeFactory {
    log: Rc<RefCell<Log>>,
    echo: bool,
    greeting: Vec<u8>,
    built: Rc<RefCell<usize>>,
}

impl ProbeFactory {
    fn new(echo: bool, greeting: &[u8]) -> (ProbeFactory, Rc<RefCell<Log>>) {
        let log = Rc::new(RefCell::new(Log::default()));
        (
            ProbeFactory {
                log: log.clone(),
                echo,
                greeting: greeting.to_vec(),
                built: Rc::default(),
            },
            log,
        )
    }
    fn probe(&mut self) -> Probe {
        *self.built.borrow_mut() += 1;
        Probe {
            log: self.log.clone(),
            echo: self.echo,
            greeting: self.greeting.clone(),
        }
    }
}

impl Factory for ProbeFactory {
    type Protocol = Probe;
    fn build_protocol(&mut self, _: &Address) -> Option<Probe> {
        Some(self.probe())
    }
}

impl ClientFactory for ProbeFactory {
    type Protocol = Probe;
    fn build_protocol(&mut self, _: &Address) -> Option<Probe> {
        Some(self.probe())
    }
    fn client_connection_failed(&mut self, _: &Connector, _: &ConnectError) {}
}

struct Setup {
    _pki: TestPki,
    server_tls: Arc<ServerTls>,
    client_options: ClientTlsOptions,
}

fn setup(tweak: impl FnOnce(&mut ServerTlsOptions, &TestPki)) -> Setup {
    let pki = TestPki::new("pair");
    let pem = pki.issue("server.pem", &["localhost"]);
    let mut options = ServerTlsOptions::new(pem);
    tweak(&mut options, &pki);
    let mut client_options = ClientTlsOptions::new("localhost");
    client_options.trust_roots = Some(pki.ca());
    Setup {
        server_tls: ServerTls::load(options).expect("server config"),
        client_options,
        _pki: pki,
    }
}

type Pair = ConnectedPair<TlsProtocol<Probe>, TlsProtocol<Probe>>;

struct Ends {
    pair: Pair,
    server: Rc<RefCell<Log>>,
    client: Rc<RefCell<Log>>,
    stats: Arc<TlsStats>,
}

fn connect(s: &Setup, client_greeting: &[u8]) -> Ends {
    let (sf, server) = ProbeFactory::new(true, b"");
    let mut sf = TlsServerFactory::new(s.server_tls.clone(), sf);
    let stats = sf.stats();
    let (cf, client) = ProbeFactory::new(false, client_greeting);
    let mut cf = TlsClientFactory::new(&s.client_options, cf).expect("client config");
    let peer = Address::Tcp("127.0.0.1:1".parse().unwrap());
    let sp = Factory::build_protocol(&mut sf, &peer).expect("server wrapper");
    let cp = ClientFactory::build_protocol(&mut cf, &peer).expect("client wrapper");
    Ends {
        pair: ConnectedPair::new(sp, cp),
        server,
        client,
        stats,
    }
}

/// Moves bytes both ways in chunks of `chunk` bytes until nothing moves.
fn pump_chunked(pair: &mut Pair, chunk: usize) {
    fn one_way<A: Protocol, B: Protocol>(
        from: &mut Side<A>,
        to: &mut Side<B>,
        chunk: usize,
    ) -> bool {
        from.transport.run_tasks();
        let data = from.transport.value();
        from.transport.clear();
        if data.is_empty() {
            return false;
        }
        for c in data.chunks(chunk) {
            to.protocol.data_received(c, &mut to.transport);
        }
        true
    }
    loop {
        let a = one_way(&mut pair.client, &mut pair.server, chunk);
        let b = one_way(&mut pair.server, &mut pair.client, chunk);
        if !a && !b {
            return;
        }
    }
}

#[test]
fn tls_pair_handshakes_and_echoes_through_both_wrappers() {
    let s = setup(|o, _| o.alpn = vec![b"h2".to_vec(), b"echo".to_vec()]);
    let mut so = s.client_options.clone();
    so.alpn = vec![b"echo".to_vec()];
    let s = Setup {
        client_options: so,
        ..s
    };
    let mut e = connect(&s, b"hello over tls");
    e.pair.pump();
    assert_eq!(e.server.borrow().data, b"hello over tls");
    assert_eq!(e.client.borrow().data, b"hello over tls");
    let server = e.server.borrow();
    assert_eq!(server.made, 1);
    assert_eq!(server.alpn.as_deref(), Some(&b"echo"[..]));
    assert_eq!(server.version, Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(server.sni.as_deref(), Some("localhost"));
    assert_eq!(server.peer_certs, 0, "no client certificate was asked for");
    assert_eq!(e.client.borrow().peer_certs, 1);
    assert_eq!(e.stats.completed(), 1);
    assert_eq!(e.stats.in_progress(), 0);
}

#[test]
fn tls_pair_is_invariant_under_chunking_down_to_one_byte() {
    let s = setup(|_, _| {});
    for chunk in [1, 2, 5, 100, 1 << 20] {
        let mut e = connect(&s, b"split me anywhere");
        pump_chunked(&mut e.pair, chunk);
        assert_eq!(
            e.client.borrow().data,
            b"split me anywhere",
            "chunk {chunk}"
        );
        // The first data handed both sessions over to weft's record layer: the
        // next records are split (and put together again) by it.
        assert!(e.pair.server.protocol.uses_own_records(), "chunk {chunk}");
        assert!(e.pair.client.protocol.uses_own_records(), "chunk {chunk}");
        let h = e.client.borrow().handle.clone().expect("a handle");
        h.write(b", and again through weft's records");
        pump_chunked(&mut e.pair, chunk);
        assert_eq!(
            e.client.borrow().data,
            b"split me anywhere, and again through weft's records",
            "chunk {chunk}"
        );
    }
}

#[test]
fn tls_pair_lose_connection_sends_close_notify_and_both_ends_are_clean() {
    let s = setup(|_, _| {});
    let mut e = connect(&s, b"bye");
    e.pair.pump();
    let h = e.client.borrow().handle.clone().unwrap();
    h.lose_connection();
    e.pair.pump();
    assert_eq!(
        e.server.borrow().clean,
        Some(true),
        "{:?}",
        e.server.borrow().lost
    );
    assert_eq!(
        e.client.borrow().clean,
        Some(true),
        "{:?}",
        e.client.borrow().lost
    );
}

#[test]
fn tls_pair_fin_without_close_notify_is_connection_lost() {
    let s = setup(|_, _| {});
    let mut e = connect(&s, b"x");
    e.pair.pump();
    // The engine reports a peer's FIN to a non-half-closeable protocol as ConnectionDone.
    e.pair
        .server
        .protocol
        .connection_lost(Reason::ConnectionDone);
    let server = e.server.borrow();
    assert_eq!(server.clean, Some(false));
    assert_eq!(server.lost_kind, Some(io::ErrorKind::UnexpectedEof));
    assert!(server.lost.as_ref().unwrap().contains("close_notify"));
}

#[test]
fn tls_pair_handle_writes_outside_callbacks_are_encrypted_by_the_pump_task() {
    let s = setup(|_, _| {});
    let mut e = connect(&s, b"");
    e.pair.pump();
    let h = e.server.borrow().handle.clone().unwrap();
    h.write(b"later, from a task");
    e.pair.pump();
    assert_eq!(e.client.borrow().data, b"later, from a task");
}

#[test]
fn tls_pair_paused_reader_holds_plaintext_until_resumed() {
    let s = setup(|_, _| {});
    let mut e = connect(&s, b"");
    e.pair.pump();
    let sh = e.server.borrow().handle.clone().unwrap();
    sh.pause_reading();
    let ch = e.client.borrow().handle.clone().unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ch.write(&big);
    e.pair.pump();
    assert!(e.server.borrow().data.is_empty());
    assert!(
        e.pair.server.transport.reading_paused(),
        "outer reading paused too"
    );
    sh.resume_reading();
    e.pair.pump();
    assert_eq!(e.server.borrow().data.len(), big.len());
    assert_eq!(e.server.borrow().data, big);
    assert_eq!(e.client.borrow().data, big);
}

#[test]
fn tls_server_answers_junk_with_an_alert_and_builds_no_protocol() {
    let s = setup(|_, _| {});
    let (sf, log) = ProbeFactory::new(true, b"");
    let built = sf.built.clone();
    let mut sf = TlsServerFactory::new(s.server_tls.clone(), sf);
    let peer = Address::Tcp("127.0.0.1:1".parse().unwrap());
    let mut p = Factory::build_protocol(&mut sf, &peer).unwrap();
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    p.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut t);
    let out = t.value();
    assert_eq!(out.first(), Some(&0x15), "a TLS alert record: {out:?}");
    assert!(t.disconnecting());
    p.connection_lost(Reason::ConnectionDone);
    assert_eq!(*built.borrow(), 0);
    assert_eq!(log.borrow().made, 0);
    assert_eq!(sf.stats().failed(), 1);
    assert_eq!(sf.stats().in_progress(), 0);
}

#[test]
fn tls_server_aborts_a_silent_client_at_the_handshake_timeout() {
    let s = setup(|o, _| o.handshake_timeout = Duration::from_secs(3));
    let (sf, _) = ProbeFactory::new(true, b"");
    let mut sf = TlsServerFactory::new(s.server_tls.clone(), sf);
    let peer = Address::Tcp("127.0.0.1:1".parse().unwrap());
    let mut p = Factory::build_protocol(&mut sf, &peer).unwrap();
    let mut t = StringTransport::new();
    p.connection_made(&mut t);
    t.clock().advance(Duration::from_millis(2900));
    assert!(!t.aborted());
    t.clock().advance(Duration::from_millis(200));
    assert!(t.aborted());
    assert_eq!(sf.stats().timed_out(), 1);
    assert_eq!(sf.stats().in_progress(), 0);
    p.connection_lost(Reason::ConnectionAborted);
    assert_eq!(sf.stats().failed(), 0);
}

#[test]
fn tls_server_refuses_past_the_cap_on_handshakes_in_progress() {
    let s = setup(|o, _| o.max_handshakes = 2);
    let (sf, _) = ProbeFactory::new(true, b"");
    let mut sf = TlsServerFactory::new(s.server_tls.clone(), sf);
    let peer = Address::Tcp("127.0.0.1:1".parse().unwrap());
    let a = Factory::build_protocol(&mut sf, &peer);
    let b = Factory::build_protocol(&mut sf, &peer);
    assert!(a.is_some() && b.is_some());
    assert!(Factory::build_protocol(&mut sf, &peer).is_none());
    assert_eq!(sf.stats().refused(), 1);
    drop(a);
    assert!(Factory::build_protocol(&mut sf, &peer).is_some());
}

#[test]
fn tls_client_refuses_a_certificate_for_another_name() {
    let s = setup(|_, _| {});
    let mut co = s.client_options.clone();
    co.server_name = "example.org".into();
    let s = Setup {
        client_options: co,
        ..s
    };
    let mut e = connect(&s, b"never sent");
    e.pair.pump();
    assert_eq!(e.client.borrow().made, 0);
    assert_eq!(e.server.borrow().made, 0);
    assert!(e.pair.client.transport.disconnecting());
}

#[test]
fn tls_mutual_auth_passes_the_client_certificate_to_the_server_protocol() {
    let s = setup(|o, pki| o.client_ca = Some(pki.ca()));
    let mut co = s.client_options.clone();
    co.certificate = Some(s._pki.issue("client.pem", &["client.test"]));
    let s = Setup {
        client_options: co,
        ..s
    };
    let mut e = connect(&s, b"with a cert");
    e.pair.pump();
    assert_eq!(e.server.borrow().peer_certs, 1);
    assert_eq!(e.client.borrow().data, b"with a cert");
}

#[test]
fn tls_reload_changes_the_certificate_for_new_handshakes_only() {
    let s = setup(|_, _| {});
    let mut first = connect(&s, b"a");
    first.pair.pump();
    let path = s.server_tls.options().private_key.clone().unwrap();
    // A bad file keeps the old config.
    std::fs::write(&path, b"not pem").unwrap();
    assert!(s.server_tls.reload().is_err());
    assert_eq!(s.server_tls.generation(), 0);
    s._pki.issue_to(&path, &["localhost"]);
    s.server_tls.reload().expect("reload");
    assert_eq!(s.server_tls.generation(), 1);
    let h = first.client.borrow().handle.clone().unwrap();
    h.write(b"b");
    first.pair.pump();
    assert_eq!(first.client.borrow().data, b"ab", "the old session goes on");
    let mut second = connect(&s, b"c");
    second.pair.pump();
    assert_eq!(second.client.borrow().data, b"c");
    let (old, new) = (
        &first.client.borrow().peer_cert,
        &second.client.borrow().peer_cert,
    );
    assert!(!old.is_empty());
    assert_ne!(old, new, "the new handshake saw the new certificate");
}

#[test]
fn tls_outer_buffer_counts_ciphertext_and_producer_calls_reach_the_inner_protocol() {
    let s = setup(|_, _| {});
    let mut e = connect(&s, b"");
    e.pair.pump();
    let h = e.server.borrow().handle.clone().unwrap();
    h.write(&[7u8; 100_000]);
    e.pair.server.transport.run_tasks();
    // The inner transport is drained at once; the engine's buffer holds records.
    assert_eq!(h.buffered(), 0);
    let outer = e.pair.server.transport.buffered();
    assert!(outer > 100_000, "ciphertext with record overhead: {outer}");
    let sp = &mut e.pair.server;
    sp.protocol.pause_producing(&mut sp.transport);
    sp.protocol.resume_producing(&mut sp.transport);
    assert_eq!(
        (e.server.borrow().paused, e.server.borrow().resumed),
        (1, 1)
    );
    e.pair.pump();
    assert_eq!(e.client.borrow().data.len(), 100_000);
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    thread_local! {
        static SETUP: Setup = setup(|_, _| {});
    }

    fn server_wrapper() -> (TlsProtocol<Probe>, StringTransport, Arc<TlsStats>) {
        let (sf, _) = ProbeFactory::new(true, b"");
        let mut sf = SETUP.with(|s| TlsServerFactory::new(s.server_tls.clone(), sf));
        let peer = Address::Tcp("127.0.0.1:1".parse().unwrap());
        let mut p = Factory::build_protocol(&mut sf, &peer).unwrap();
        let mut t = StringTransport::new();
        p.connection_made(&mut t);
        (p, t, sf.stats())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Junk, or a truncated/mutated TLS record header followed by junk, in any
        /// chunking: the server wrapper never panics, never builds a protocol, and
        /// once it has closed it stays closed.
        #[test]
        fn tls_server_never_panics_on_arbitrary_input(
            head in prop::sample::select(vec![vec![], vec![0x16, 0x03, 0x01], vec![0x16, 0x03, 0x03, 0x00, 0x05], vec![0x17, 0x03, 0x03]]),
            body in prop::collection::vec(any::<u8>(), 0..2048),
            chunk in 1usize..300,
        ) {
            let (mut p, mut t, stats) = server_wrapper();
            let mut input = head.clone();
            input.extend_from_slice(&body);
            for c in input.chunks(chunk) {
                p.data_received(c, &mut t);
            }
            prop_assert!(p.with_inner(|_, _| ()).is_none());
            p.connection_lost(Reason::ConnectionDone);
            prop_assert_eq!(stats.in_progress(), 0);
        }
    }
}

#[test]
fn tls_garbage_after_the_handshake_closes_with_an_alert_and_a_tls_error() {
    let s = setup(|_, _| {});
    let mut e = connect(&s, b"ok");
    e.pair.pump();
    let sp = &mut e.pair.server;
    sp.transport.clear();
    sp.protocol
        .data_received(b"\x17\x03\x03\x00\x10not a real record", &mut sp.transport);
    // After a TLS 1.3 handshake the alert is encrypted: an application_data record.
    let alert = sp.transport.value();
    assert_eq!(alert.first(), Some(&0x17), "an encrypted alert: {alert:?}");
    assert!(sp.transport.disconnecting());
    let cp = &mut e.pair.client;
    cp.protocol.data_received(&alert, &mut cp.transport);
    cp.protocol.connection_lost(Reason::ConnectionDone);
    let client_lost = e.client.borrow().lost.clone().unwrap();
    assert!(client_lost.contains("alert"), "{client_lost}");
    sp.protocol.connection_lost(Reason::ConnectionDone);
    let server = e.server.borrow();
    assert_eq!(server.lost_kind, Some(io::ErrorKind::InvalidData));
    assert!(
        server.lost.as_ref().unwrap().contains("TLS error"),
        "{:?}",
        server.lost
    );
}

#[test]
fn tls_bytes_after_the_peers_close_notify_are_discarded_without_looping() {
    let s = setup(|_, _| {});
    let mut e = connect(&s, b"hi");
    e.pair.pump();
    // The client closes: its wrapper writes close_notify; junk follows in the
    // same segment.
    let ch = e.client.borrow().handle.clone().unwrap();
    ch.lose_connection();
    e.pair.client.transport.run_tasks();
    let mut bytes = e.pair.client.transport.value();
    assert!(!bytes.is_empty(), "close_notify was written");
    // More than rustls reads in one go, so that reading goes on after it has
    // seen the close_notify.
    bytes.extend_from_slice(&[0x17; 20_000]);
    let sp = &mut e.pair.server;
    sp.protocol.data_received(&bytes, &mut sp.transport);
    assert!(
        sp.transport.disconnecting(),
        "the server answers with its own close"
    );
    sp.protocol.connection_lost(Reason::ConnectionDone);
    assert_eq!(
        e.server.borrow().clean,
        Some(true),
        "{:?}",
        e.server.borrow().lost
    );
}
