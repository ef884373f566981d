//! In-memory tests of weft's record layer (`traffic.rs`) against rustls's own: a
//! weft wrapper on one side and a buffered rustls connection, which frames and
//! encrypts its records with rustls's record layer, on the other. Every suite of
//! the provider, key updates both ways, the confidentiality limit, tickets, alerts
//! and damaged records. No sockets.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{AlertDescription, ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use crate::address::Address;
use crate::client::{ClientFactory, ConnectError, Connector};
use crate::factory::Factory;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::testing::StringTransport;
use crate::transport::{Transport, TransportHandle};

use super::pem::{certificates, private_key, root_store};
use super::test_pki::TestPki;
use super::*;

/// What the inner protocol saw.
#[derive(Default)]
struct Log {
    data: Vec<u8>,
    lost: Option<Reason>,
    handle: Option<TransportHandle>,
}

/// Echoes (server side) or collects (client side).
struct Inner {
    log: Rc<RefCell<Log>>,
    echo: bool,
}

impl Protocol for Inner {
    fn connection_made(&mut self, t: &mut Transport) {
        self.log.borrow_mut().handle = Some(t.handle());
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.log.borrow_mut().data.extend_from_slice(data);
        if self.echo {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, reason: Reason) {
        self.log.borrow_mut().lost = Some(reason);
    }
}

/// Builds inner protocols that share one log; echoing or not.
struct InnerFactory(Rc<RefCell<Log>>, bool);

impl InnerFactory {
    fn inner(&self) -> Inner {
        Inner {
            log: self.0.clone(),
            echo: self.1,
        }
    }
}

impl Factory for InnerFactory {
    type Protocol = Inner;
    fn build_protocol(&mut self, _: &Address) -> Option<Inner> {
        Some(self.inner())
    }
}

impl ClientFactory for InnerFactory {
    type Protocol = Inner;
    fn build_protocol(&mut self, _: &Address) -> Option<Inner> {
        Some(self.inner())
    }
    fn client_connection_failed(&mut self, _: &Connector, _: &ConnectError) {}
}

/// A weft wrapper on its in-memory transport, and a buffered rustls connection.
struct Link<C> {
    weft: TlsProtocol<Inner>,
    t: StringTransport,
    log: Rc<RefCell<Log>>,
    peer: C,
    /// Plaintext rustls has decrypted and the test not yet read.
    received: Vec<u8>,
    /// rustls read the peer's close_notify.
    closed: bool,
    /// Ciphertext bytes weft sent.
    sent: usize,
    _pki: TestPki,
}

fn peer() -> Address {
    Address::Tcp("127.0.0.1:1".parse().expect("an address"))
}

/// A provider that offers only `suite`.
fn only(suite: rustls::SupportedCipherSuite) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![suite];
    Arc::new(p)
}

/// A weft server (echo) and a rustls client restricted to `suite`.
fn weft_server(suite: rustls::SupportedCipherSuite) -> Link<ClientConnection> {
    let pki = TestPki::new("traffic");
    let pem = pki.issue("server.pem", &["localhost"]);
    let tls = ServerTls::load(ServerTlsOptions::new(pem)).expect("server config");
    let log = Rc::new(RefCell::new(Log::default()));
    let mut f = TlsServerFactory::new(tls, InnerFactory(log.clone(), true));
    let mut weft = Factory::build_protocol(&mut f, &peer()).expect("a server wrapper");
    let mut t = StringTransport::new();
    weft.connection_made(&mut t);
    let version = match suite {
        rustls::SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        rustls::SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
    };
    let config = ClientConfig::builder_with_provider(only(suite))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(root_store(&pki.ca()).expect("roots"))
        .with_no_client_auth();
    let client = ClientConnection::new(Arc::new(config), "localhost".try_into().expect("a name"))
        .expect("a client");
    Link {
        weft,
        t,
        log,
        peer: client,
        received: Vec::new(),
        closed: false,
        sent: 0,
        _pki: pki,
    }
}

/// A rustls server (default config: two TLS 1.3 tickets after the handshake)
/// and a weft client.
fn weft_client() -> Link<ServerConnection> {
    let pki = TestPki::new("traffic-client");
    let pem = pki.issue("server.pem", &["localhost"]);
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            certificates(&pem).expect("certificates"),
            private_key(&pem).expect("a key"),
        )
        .expect("a server config");
    let server = ServerConnection::new(Arc::new(config)).expect("a server");
    let log = Rc::new(RefCell::new(Log::default()));
    let mut options = ClientTlsOptions::new("localhost");
    options.trust_roots = Some(pki.ca());
    let mut f =
        TlsClientFactory::new(&options, InnerFactory(log.clone(), false)).expect("client config");
    let mut weft = ClientFactory::build_protocol(&mut f, &peer()).expect("a client wrapper");
    let mut t = StringTransport::new();
    weft.connection_made(&mut t);
    Link {
        weft,
        t,
        log,
        peer: server,
        received: Vec::new(),
        closed: false,
        sent: 0,
        _pki: pki,
    }
}

impl<C, D> Link<C>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
{
    /// Moves bytes both ways until nothing moves; the first error rustls reports
    /// ends the pumping.
    fn pump(&mut self) -> Result<(), rustls::Error> {
        loop {
            let mut to_weft = Vec::new();
            while self.peer.wants_write() {
                self.peer
                    .write_tls(&mut to_weft)
                    .expect("write_tls to a Vec");
            }
            if !to_weft.is_empty() {
                self.weft.data_received(&to_weft, &mut self.t);
            }
            self.t.run_tasks();
            let to_peer = self.t.value();
            self.t.clear();
            self.sent += to_peer.len();
            self.deliver(&to_peer)?;
            if to_weft.is_empty() && to_peer.is_empty() {
                return Ok(());
            }
        }
    }

    /// Hands ciphertext to rustls.
    fn deliver(&mut self, mut data: &[u8]) -> Result<(), rustls::Error> {
        while !data.is_empty() {
            self.peer
                .read_tls(&mut data)
                .expect("read_tls from a slice");
            self.peer.process_new_packets()?;
            // Keep rustls's plaintext buffer from filling up.
            let mut buf = [0u8; 4096];
            loop {
                match self.peer.reader().read(&mut buf) {
                    Ok(0) => {
                        self.closed = true;
                        break;
                    }
                    Ok(n) => self.received.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("reading rustls's plaintext: {e}"),
                }
            }
        }
        Ok(())
    }

    /// The plaintext rustls decrypted since the last call; `None` once it is all
    /// read and the peer's close_notify came.
    fn read_plain(&mut self) -> Option<Vec<u8>> {
        if self.received.is_empty() && self.closed {
            return None;
        }
        Some(std::mem::take(&mut self.received))
    }

    fn send(&mut self, data: &[u8]) {
        self.peer
            .writer()
            .write_all(data)
            .expect("rustls takes plaintext");
    }

    /// Runs the handshake, then one echo, after which weft's record layer has taken
    /// over (a session hands over once it carries application data); forgets
    /// the echo.
    fn open_up(&mut self) {
        self.pump().expect("handshake");
        assert!(
            !self.handed_over(),
            "no data yet: rustls still runs the session"
        );
        self.send(b"warm up");
        self.pump().expect("the first echo");
        assert!(self.handed_over(), "the first data hands the session over");
        assert_eq!(self.read_plain(), Some(b"warm up".to_vec()));
        self.log.borrow_mut().data.clear();
    }

    /// Whether weft's record layer runs the session.
    fn handed_over(&self) -> bool {
        self.weft.uses_own_records()
    }
}

/// A message of `len` bytes that differs from its neighbours.
fn message(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn a_rustls_client_echoes_through_weft_records_in_every_suite_of_the_provider() {
    let suites = rustls::crypto::ring::default_provider().cipher_suites;
    let mut tested = 0;
    for suite in suites {
        // The test certificate is ECDSA: TLS 1.2's RSA suites cannot be chosen.
        let name = format!("{:?}", suite.suite());
        if name.contains("RSA") {
            continue;
        }
        let mut link = weft_server(suite);
        link.open_up();
        let mut expect = Vec::new();
        for (i, len) in [1, 64, 16 * 1024, 40_000, 0, 3].into_iter().enumerate() {
            let m = message(len, i as u8);
            link.send(&m);
            expect.extend_from_slice(&m);
            link.pump().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let echoed = link.read_plain().expect("no close");
        assert_eq!(echoed.len(), expect.len(), "{name}");
        assert!(echoed == expect, "{name}: echo differs");
        assert_eq!(link.log.borrow().data, expect, "{name}");
        assert_eq!(
            link.peer.negotiated_cipher_suite().map(|s| s.suite()),
            Some(suite.suite())
        );
        tested += 1;
    }
    assert_eq!(
        tested, 6,
        "three TLS 1.3 suites and three ECDSA TLS 1.2 suites"
    );
}

#[test]
fn a_key_update_the_peer_asks_for_is_answered_and_both_directions_move_on() {
    let mut link = weft_server(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256);
    link.open_up();
    assert!(link.handed_over());
    for round in 0..3u8 {
        link.peer.refresh_traffic_keys().expect("TLS 1.3");
        let mut update = Vec::new();
        while link.peer.wants_write() {
            link.peer.write_tls(&mut update).expect("write_tls");
        }
        link.weft.data_received(&update, &mut link.t);
        // Weft's own KeyUpdate comes back at once: one record of 5 + 5 + 1 + 16.
        let answer = link.t.value();
        link.t.clear();
        assert_eq!(answer.len(), 27, "round {round}");
        link.deliver(&answer)
            .expect("rustls takes weft's KeyUpdate");
        // Data both ways under the new keys: rustls would fail on either side
        // with a bad MAC if weft had not moved on.
        let m = message(100, round);
        link.send(&m);
        link.pump().expect("echo under new keys");
        assert_eq!(link.read_plain().expect("no close"), m);
    }
}

#[test]
fn the_send_keys_are_renewed_before_the_confidentiality_limit() {
    let mut link = weft_server(rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384);
    link.open_up();
    link.weft.set_rekey_at(4);
    let before = link.sent;
    let mut expect = Vec::new();
    for i in 0..10u8 {
        let m = message(50, i);
        link.send(&m);
        expect.extend_from_slice(&m);
        link.pump().expect("rustls follows weft's key updates");
    }
    assert_eq!(link.read_plain().expect("no close"), expect);
    // Ten records of 5 + 50 + 1 + 16 bytes, and at least one KeyUpdate record of
    // 27 bytes among them: the keys were renewed, and rustls followed.
    let extra = link.sent - before - 10 * 72;
    assert!(
        extra >= 27 && extra % 27 == 0,
        "{extra} bytes beside the data"
    );
}

#[test]
fn tls12_ends_the_session_at_the_confidentiality_limit() {
    let mut link =
        weft_server(rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    link.open_up();
    link.weft.set_rekey_at(0);
    link.send(b"one too many");
    let _ = link.pump();
    assert!(link.t.disconnecting(), "the session is closed");
    let lost = link.weft_lost();
    assert!(lost.contains("encrypt"), "{lost}");
}

#[test]
fn a_damaged_record_gets_bad_record_mac_and_ends_only_that_session() {
    let mut link = weft_server(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256);
    link.open_up();
    link.send(b"hello");
    let mut record = Vec::new();
    link.peer.write_tls(&mut record).expect("write_tls");
    let last = record.len() - 1;
    record[last] ^= 1;
    link.weft.data_received(&record, &mut link.t);
    assert!(link.t.disconnecting());
    let alert = link.t.value();
    link.t.clear();
    assert_eq!(
        link.deliver(&alert),
        Err(rustls::Error::AlertReceived(AlertDescription::BadRecordMac))
    );
    link.weft.connection_lost(Reason::ConnectionDone);
    let lost = link.weft_lost();
    assert!(lost.contains("decrypt"), "{lost}");
    assert!(link.log.borrow().data.is_empty(), "nothing was delivered");
}

#[test]
fn an_oversized_record_gets_record_overflow() {
    for body in [16 * 1024 + 257, 0xffff] {
        let mut link =
            weft_server(rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256);
        link.open_up();
        let len = u16::try_from(body).expect("fits");
        let mut record = vec![23, 3, 3];
        record.extend_from_slice(&len.to_be_bytes());
        link.weft.data_received(&record, &mut link.t);
        assert!(link.t.disconnecting(), "{body}: the header alone is enough");
        let alert = link.t.value();
        assert_eq!(
            link.deliver(&alert),
            Err(rustls::Error::AlertReceived(
                AlertDescription::RecordOverflow
            ))
        );
    }
}

#[test]
fn close_notify_goes_both_ways_through_the_record_layer() {
    // The peer closes: the inner protocol is told, weft answers with its own.
    let mut link = weft_server(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256);
    link.open_up();
    link.send(b"last words");
    link.peer.send_close_notify();
    link.pump().expect("closes cleanly");
    assert_eq!(
        link.read_plain(),
        Some(b"last words".to_vec()),
        "echoed first"
    );
    assert_eq!(link.read_plain(), None, "then weft's close_notify");
    assert_eq!(link.log.borrow().data, b"last words");
    assert!(link.t.disconnecting());

    // Weft's side closes: rustls reads the data, then a clean end.
    let mut link = weft_server(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256);
    link.open_up();
    let h = link.log.borrow().handle.clone().expect("a handle");
    h.write(b"bye");
    h.lose_connection();
    link.pump().expect("closes cleanly");
    assert_eq!(link.read_plain(), Some(b"bye".to_vec()));
    assert_eq!(link.read_plain(), None);
}

#[test]
fn a_weft_client_takes_tickets_and_key_updates_from_a_rustls_server() {
    let mut link = weft_client();
    // ClientHello, then the server's flight: the weft client is done with its
    // handshake; its Finished waits in its transport.
    let hello = link.t.value();
    link.t.clear();
    link.deliver(&hello).expect("ClientHello");
    let mut flight = Vec::new();
    while link.peer.wants_write() {
        link.peer.write_tls(&mut flight).expect("write_tls");
    }
    link.weft.data_received(&flight, &mut link.t);
    // The client writes before the server's tickets (sent once it reads the
    // client's Finished) arrive, as a client with a request does: the session is
    // handed over first, so the tickets go through weft's record layer.
    let h = link.log.borrow().handle.clone().expect("a handle");
    h.write(b"request");
    link.t.run_tasks();
    assert!(link.handed_over(), "the first data hands the session over");
    link.pump().expect("Finished, the request, two tickets");
    assert_eq!(
        link.peer.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(link.read_plain(), Some(b"request".to_vec()));
    link.send(b"after the tickets");
    link.pump().expect("data");
    assert_eq!(link.log.borrow().data, b"after the tickets");
    link.peer.refresh_traffic_keys().expect("TLS 1.3");
    link.send(b" and a key update");
    link.pump().expect("data under new keys");
    h.write(b"reply");
    link.pump().expect("weft's key update and reply");
    assert_eq!(link.read_plain(), Some(b"reply".to_vec()));
    assert_eq!(
        link.log.borrow().data,
        b"after the tickets and a key update"
    );
    assert!(link.log.borrow().lost.is_none());
}

impl<C> Link<C> {
    /// The reason the inner protocol was given, as text.
    fn weft_lost(&mut self) -> String {
        if self.log.borrow().lost.is_none() {
            self.weft.connection_lost(Reason::ConnectionDone);
        }
        let log = self.log.borrow();
        let reason = log.lost.as_ref().expect("the inner protocol was told");
        match reason {
            Reason::ConnectionLost(e) => format!(
                "{e} / {}",
                std::error::Error::source(e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            )
            .to_lowercase(),
            other => other.to_string(),
        }
    }
}
