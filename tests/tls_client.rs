//! weft's `tls:` client against a weft `ssl:` server on two shards: it verifies
//! the server's name and chain, and refuses a wrong name or an untrusted CA.

mod support_client;
mod tls_support;

use std::cell::RefCell;
use std::rc::Rc;

use support_client::{run, wait_until};
use tls_support::*;
use weft::client::{ClientFactory, ConnectError, Connector, Reconnect, ReconnectingClientFactory};
use weft::{Address, Protocol, Reason, Transport};

/// What the client side saw, shard-local.
#[derive(Default)]
struct Outcome {
    made: bool,
    alpn: Option<Vec<u8>>,
    echoed: Vec<u8>,
    lost: Option<String>,
    factory_lost: Vec<String>,
    failed: Option<String>,
}

struct Hello(Rc<RefCell<Outcome>>);

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut Transport) {
        let mut o = self.0.borrow_mut();
        o.made = true;
        o.alpn = t
            .tls()
            .and_then(|i| i.negotiated_protocol())
            .map(<[u8]>::to_vec);
        t.write(b"hello from weft's client");
    }
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let mut o = self.0.borrow_mut();
        o.echoed.extend_from_slice(data);
        if o.echoed.len() >= b"hello from weft's client".len() {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, reason: Reason) {
        self.0.borrow_mut().lost = Some(format!("clean={} {reason}", reason.is_clean()));
    }
}

struct HelloFactory(Rc<RefCell<Outcome>>);

impl ClientFactory for HelloFactory {
    type Protocol = Hello;
    fn build_protocol(&mut self, _: &Address) -> Option<Hello> {
        Some(Hello(self.0.clone()))
    }
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        self.0.borrow_mut().failed = Some(reason.to_string());
    }
    fn client_connection_lost(&mut self, _: &Connector, reason: &Reason) {
        self.0.borrow_mut().factory_lost.push(reason.to_string());
    }
}

/// What one client attempt ended with (a `Send` copy of [`Outcome`]).
struct Ended {
    made: bool,
    echoed: Vec<u8>,
    lost: Option<String>,
    factory_lost: Vec<String>,
    alpn: Option<Vec<u8>>,
}

/// Connects with `desc` and returns what happened once the factory heard the end.
fn client(desc: String) -> Ended {
    run(LIMIT, move |reactor| async move {
        let o = Rc::new(RefCell::new(Outcome::default()));
        let _c = weft::tls::connect_tls(&reactor, &desc, HelloFactory(o.clone()))
            .expect("a valid tls: endpoint");
        assert!(
            wait_until(&reactor, LIMIT, || !o.borrow().factory_lost.is_empty()
                || o.borrow().failed.is_some())
            .await,
            "the attempt never ended"
        );
        let o = o.borrow();
        Ended {
            made: o.made,
            echoed: o.echoed.clone(),
            lost: o.lost.clone(),
            factory_lost: o.factory_lost.clone(),
            alpn: o.alpn.clone(),
        }
    })
}

#[test]
fn tls_client_verifies_the_server_and_echoes() {
    let pki = TestPki::new("client-ok");
    let pem = pki.issue("server.pem", &["localhost"]);
    let (server, addr, events) = start(&format!("privateKey={}:alpn=weft", esc(&pem)));
    let Ended {
        made,
        echoed,
        lost,
        factory_lost,
        alpn,
    } = client(format!(
        "tls:host=localhost:port={}:trustRoots={}:alpn=weft",
        addr.port(),
        esc(&pki.ca())
    ));
    assert!(made);
    assert_eq!(echoed, b"hello from weft's client");
    assert_eq!(alpn.as_deref(), Some(&b"weft"[..]));
    assert!(lost.unwrap().starts_with("clean=true"));
    assert_eq!(
        factory_lost,
        vec!["connection was closed cleanly".to_string()]
    );
    let seen = events.wait("the server's end", |s| s.len() == 1 && s[0].lost.is_some());
    assert_eq!(seen[0].clean, Some(true), "{seen:?}");
    server.shutdown().unwrap();
}

#[test]
fn tls_client_refuses_a_certificate_for_another_host_name() {
    let pki = TestPki::new("client-name");
    let pem = pki.issue("server.pem", &["other.example"]);
    let (server, addr, events) = start(&format!("privateKey={}", esc(&pem)));
    let Ended {
        made,
        echoed,
        factory_lost,
        ..
    } = client(format!(
        "tls:host=localhost:port={}:trustRoots={}",
        addr.port(),
        esc(&pki.ca())
    ));
    assert!(!made, "no protocol over an unverified connection");
    assert!(echoed.is_empty());
    assert_eq!(factory_lost.len(), 1);
    assert!(
        factory_lost[0].contains("certificate not valid for name \"localhost\""),
        "{factory_lost:?}"
    );
    assert!(events.snapshot().is_empty());
    server.shutdown().unwrap();
}

#[test]
fn tls_client_refuses_an_untrusted_certificate() {
    let pki = TestPki::new("client-untrusted");
    let other_ca = TestPki::new("client-other-ca");
    let pem = pki.issue("server.pem", &["localhost"]);
    let (server, addr, _events) = start(&format!("privateKey={}", esc(&pem)));
    let Ended {
        made, factory_lost, ..
    } = client(format!(
        "tls:localhost:{}:trustRoots={}",
        addr.port(),
        esc(&other_ca.ca())
    ));
    assert!(!made);
    assert!(
        factory_lost[0].contains("UnknownIssuer"),
        "{factory_lost:?}"
    );
    server.shutdown().unwrap();
}

#[test]
fn tls_client_reconnects_under_a_reconnecting_factory() {
    let pki = TestPki::new("client-reconnect");
    let pem = pki.issue("server.pem", &["localhost"]);
    let (server, addr, events) = start(&format!("privateKey={}", esc(&pem)));
    let desc = format!(
        "tls:localhost:{}:trustRoots={}",
        addr.port(),
        esc(&pki.ca())
    );
    let handshakes = run(LIMIT, move |reactor| async move {
        let o = Rc::new(RefCell::new(Outcome::default()));
        let policy = Reconnect::new()
            .initial_delay(0.05)
            .max_delay(0.1)
            .max_retries(Some(2));
        let factory = ReconnectingClientFactory::with_policy(policy, HelloFactory(o.clone()));
        let connector = weft::tls::connect_tls(&reactor, &desc, factory).unwrap();
        wait_until(&reactor, LIMIT, || o.borrow().factory_lost.len() >= 2).await;
        connector.disconnect();
        let n = o.borrow().factory_lost.len();
        n
    });
    assert!(handshakes >= 2);
    events.wait("two server connections", |s| s.len() >= 2);
    server.shutdown().unwrap();
}
