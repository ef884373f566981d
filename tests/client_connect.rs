//! Client connections over real loopback sockets: refused, timed out, resolved off
//! the shard, cancelled, and the ClientFactory call order.

mod support_client;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::{Duration, Instant};

use support_client::{closed_port, run, wait_until, Log};
use weft::client::{
    connect, connect_protocol, connect_protocol_with, connect_with, ClientFactory, ConnectError,
    ConnectOptions, Connector, Resolver,
};
use weft::{Address, Protocol, Reason, Transport};

const LIMIT: Duration = Duration::from_secs(20);

/// A protocol that logs its callbacks.
struct Logged {
    log: Log,
    reply: Option<&'static [u8]>,
}

impl Protocol for Logged {
    fn connection_made(&mut self, t: &mut Transport) {
        self.log.push("connection_made");
        if let Some(r) = self.reply {
            t.write(r);
        }
    }
    fn data_received(&mut self, data: &[u8], _t: &mut Transport) {
        self.log
            .push(format!("data_received {}", String::from_utf8_lossy(data)));
    }
    fn connection_lost(&mut self, reason: Reason) {
        self.log
            .push(format!("connection_lost clean={}", reason.is_clean()));
    }
}

/// A client factory that logs its callbacks.
struct LoggedFactory {
    log: Log,
}

impl ClientFactory for LoggedFactory {
    type Protocol = Logged;
    fn start_factory(&mut self) {
        self.log.push("start_factory");
    }
    fn started_connecting(&mut self, _c: &Connector) {
        self.log.push("started_connecting");
    }
    fn build_protocol(&mut self, addr: &Address) -> Option<Logged> {
        self.log.push(format!("build_protocol {addr}"));
        Some(Logged {
            log: self.log.clone(),
            reply: None,
        })
    }
    fn client_connection_failed(&mut self, _c: &Connector, reason: &ConnectError) {
        self.log
            .push(format!("client_connection_failed {reason:?}"));
    }
    fn client_connection_lost(&mut self, _c: &Connector, reason: &Reason) {
        self.log.push(format!(
            "client_connection_lost clean={}",
            reason.is_clean()
        ));
    }
    fn stop_factory(&mut self) {
        self.log.push("stop_factory");
    }
}

/// A one-shot loopback server: accepts one connection, sends `greeting`, reads
/// until EOF and returns what it read and the client's address.
fn one_shot_server(
    greeting: &'static [u8],
) -> (SocketAddr, std::thread::JoinHandle<(Vec<u8>, SocketAddr)>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let t = std::thread::spawn(move || {
        let (mut s, peer) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s.write_all(greeting).expect("greet");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        (got, peer)
    });
    (addr, t)
}

#[test]
fn connection_refused_calls_client_connection_failed() {
    let port = closed_port();
    let events = run(LIMIT, move |reactor| async move {
        let log = Log::default();
        let endpoint = format!("tcp:127.0.0.1:{port}").parse().unwrap();
        let c = connect(&reactor, endpoint, LoggedFactory { log: log.clone() });
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("stop_factory"))
            .await
        );
        assert_eq!(c.state(), weft::client::ConnectorState::Disconnected);
        log.events()
    });
    assert_eq!(
        events,
        [
            "start_factory",
            "started_connecting",
            "client_connection_failed Refused",
            "stop_factory"
        ]
    );
}

#[test]
fn connect_protocol_to_a_closed_port_is_refused() {
    let port = closed_port();
    let err = run(LIMIT, move |reactor| async move {
        let endpoint = format!("tcp:host=127.0.0.1:port={port}").parse().unwrap();
        let log = Log::default();
        connect_protocol(&reactor, endpoint, Logged { log, reply: None })
            .await
            .err()
            .map(|e| format!("{e:?}"))
    });
    assert_eq!(err.as_deref(), Some("Refused"));
}

#[test]
fn connect_timeout_is_honoured_when_the_server_never_completes_the_handshake() {
    // A listener with backlog 0 holds one connection in its accept queue; once
    // that is full the kernel drops further SYNs, so a connect never completes.
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (err, elapsed) = run(LIMIT, move |reactor| async move {
        let endpoint = format!("tcp:127.0.0.1:{}:timeout=0.5", addr.port())
            .parse()
            .unwrap();
        let start = Instant::now();
        let log = Log::default();
        let r = connect_protocol(&reactor, endpoint, Logged { log, reply: None }).await;
        (r.err().map(|e| format!("{e:?}")), start.elapsed())
    });
    drop(fillers);
    drop(l);
    assert_eq!(err.as_deref(), Some("TimedOut"));
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "timed out after {elapsed:?}"
    );
}

#[test]
fn callbacks_run_in_twisted_order_and_build_protocol_gets_the_server_address() {
    let (addr, server) = one_shot_server(b"hi");
    let events = run(LIMIT, move |reactor| async move {
        let log = Log::default();
        let endpoint = format!("tcp:127.0.0.1:{}", addr.port()).parse().unwrap();
        let c = connect(&reactor, endpoint, LoggedFactory { log: log.clone() });
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("data_received"))
            .await
        );
        assert_eq!(c.state(), weft::client::ConnectorState::Connected);
        c.disconnect();
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("stop_factory"))
            .await
        );
        log.events()
    });
    server.join().unwrap();
    assert_eq!(
        events,
        [
            "start_factory".to_string(),
            "started_connecting".into(),
            format!("build_protocol tcp:{addr}"),
            "connection_made".into(),
            "data_received hi".into(),
            "connection_lost clean=true".into(),
            "client_connection_lost clean=true".into(),
            "stop_factory".into(),
        ]
    );
}

#[test]
fn connect_protocol_yields_a_handle_after_connection_made() {
    let (addr, server) = one_shot_server(b"");
    let (made_before, peer) = run(LIMIT, move |reactor| async move {
        let log = Log::default();
        let endpoint = format!("tcp:127.0.0.1:{}", addr.port()).parse().unwrap();
        let p = Logged {
            log: log.clone(),
            reply: Some(b"ping\n"),
        };
        let h = connect_protocol(&reactor, endpoint, p)
            .await
            .expect("connected");
        let made_before = log.contains("connection_made");
        h.transport().write(b"later\n");
        h.transport().lose_connection();
        h.closed().await;
        assert!(log.contains("connection_lost clean=true"));
        (made_before, h.peer().clone())
    });
    let (got, _) = server.join().unwrap();
    assert!(made_before, "the future resolved before connection_made");
    assert_eq!(peer, Address::Tcp(addr));
    assert_eq!(got, b"ping\nlater\n");
}

#[test]
fn a_slow_name_lookup_does_not_block_the_shard() {
    let (addr, server) = one_shot_server(b"");
    let lookup = Duration::from_millis(800);
    let ticks = run(LIMIT, move |reactor| async move {
        let resolver = Resolver::new(move |host, port| {
            assert_eq!(host, "slow.test");
            std::thread::sleep(lookup); // a blocking getaddrinfo
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        // A 10 ms timer keeps firing while the lookup blocks its helper thread.
        let ticks = Rc::new(std::cell::Cell::new(0u32));
        fn tick(r: weft::Reactor, n: Rc<std::cell::Cell<u32>>) {
            n.set(n.get() + 1);
            let r2 = r.clone();
            r.call_later(Duration::from_millis(10), move || tick(r2, n));
        }
        tick(reactor.clone(), ticks.clone());
        let endpoint = format!("tcp:slow.test:{}", addr.port()).parse().unwrap();
        let log = Log::default();
        let opts = ConnectOptions::new().resolver(resolver);
        let h = connect_protocol_with(&reactor, endpoint, Logged { log, reply: None }, opts)
            .await
            .expect("connected through the slow resolver");
        let n = ticks.get();
        h.transport().lose_connection();
        h.closed().await;
        n
    });
    server.join().unwrap();
    // 800 ms at one tick per 10 ms: a blocked shard would show one or two, a loaded
    // machine a few dozen.
    assert!(
        ticks >= 10,
        "only {ticks} timer ticks during an 800 ms lookup"
    );
}

#[test]
fn a_failed_lookup_is_a_dns_lookup_error() {
    let err = run(LIMIT, |reactor| async move {
        let resolver = Resolver::new(|_, _| {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such host",
            ))
        });
        let log = Log::default();
        let endpoint = "tcp:nowhere.test:1".parse().unwrap();
        let opts = ConnectOptions::new().resolver(resolver);
        connect_protocol_with(&reactor, endpoint, Logged { log, reply: None }, opts)
            .await
            .err()
            .map(|e| e.to_string())
    });
    let err = err.expect("an error");
    assert!(
        err.contains("nowhere.test") && err.contains("no such host"),
        "{err}"
    );
}

#[test]
fn stop_connecting_cancels_the_attempt_under_way() {
    let events = run(LIMIT, |reactor| async move {
        let resolver = Resolver::new(|_, port| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        let log = Log::default();
        let endpoint = "tcp:slow.test:1".parse().unwrap();
        let opts = ConnectOptions::new().resolver(resolver);
        let c = connect_with(&reactor, endpoint, LoggedFactory { log: log.clone() }, opts);
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("started_connecting"))
            .await
        );
        c.stop_connecting().expect("connecting");
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("stop_factory"))
            .await
        );
        assert!(c.stop_connecting().is_err());
        log.events()
    });
    assert_eq!(events[2], "client_connection_failed Cancelled");
}

#[test]
fn bind_address_sets_the_clients_local_address() {
    let (addr, server) = one_shot_server(b"");
    run(LIMIT, move |reactor| async move {
        let endpoint = format!("tcp:127.0.0.1:{}:bindAddress=127.0.0.2", addr.port())
            .parse()
            .unwrap();
        let log = Log::default();
        let h = connect_protocol(&reactor, endpoint, Logged { log, reply: None })
            .await
            .expect("connected");
        h.transport().lose_connection();
        h.closed().await;
    });
    let (_, peer) = server.join().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
}

#[test]
fn a_unix_client_connects_to_a_socket_file() {
    let dir = std::env::temp_dir().join(format!("weft-client-unix-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"unix hello").unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let p = path.clone();
    let events = run(LIMIT, move |reactor| async move {
        let log = Log::default();
        let endpoint = format!("unix:path={}:timeout=5", p.display())
            .parse()
            .unwrap();
        let c = connect(&reactor, endpoint, LoggedFactory { log: log.clone() });
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("data_received"))
            .await
        );
        c.disconnect();
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("stop_factory"))
            .await
        );
        log.events()
    });
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(events.contains(&format!("build_protocol unix:{}", path.display())));
    assert!(events.contains(&"data_received unix hello".to_string()));
}

#[test]
fn connecting_outside_a_shard_fails_with_no_runtime() {
    let (reactor, pool) = weft::testing::test_reactor();
    let log = Log::default();
    let fut = connect_protocol(
        &reactor,
        "tcp:127.0.0.1:1".parse().unwrap(),
        Logged { log, reply: None },
    );
    let out = Rc::new(std::cell::RefCell::new(None));
    let o = out.clone();
    reactor.spawn_local(async move {
        *o.borrow_mut() = Some(fut.await.err().map(|e| format!("{e:?}")));
    });
    pool.run_until_stalled();
    assert_eq!(out.borrow().clone().flatten().as_deref(), Some("NoRuntime"));
}

#[test]
fn a_server_that_closes_first_ends_the_client_connection_cleanly() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(b"bye").unwrap();
    });
    let events = run(LIMIT, move |reactor| async move {
        let log = Log::default();
        let endpoint = format!("tcp:127.0.0.1:{}", addr.port()).parse().unwrap();
        connect(&reactor, endpoint, LoggedFactory { log: log.clone() });
        assert!(
            wait_until(&reactor, Duration::from_secs(5), || log
                .contains("stop_factory"))
            .await,
            "{:?}",
            log.events()
        );
        log.events()
    });
    server.join().unwrap();
    assert_eq!(
        &events[4..],
        [
            "data_received bye",
            "connection_lost clean=true",
            "client_connection_lost clean=true",
            "stop_factory"
        ]
    );
}
