//! Endpoints: UNIX sockets shared by all shards, tcp6, port 0, and the errors a bad
//! endpoint or a taken port produce.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use support::{connect, require_io_uring, round_trip};
use weft::services::wire::{Echo, SimpleFactory};
use weft::{Address, Server, ServerError};

fn temp_sock(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

#[test]
fn a_unix_endpoint_is_accepted_on_shard_zero_and_served_by_every_shard() {
    require_io_uring();
    let path = temp_sock("unix");
    let desc = format!("unix:{}:mode=600", path.display());
    let server = Server::builder()
        .cores(2)
        .listen(&desc, |_| SimpleFactory::new(|| Echo))
        .start()
        .unwrap();
    assert_eq!(server.addresses(), &[Address::Unix(Some(path.clone()))]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut clients: Vec<UnixStream> = (0..10)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let msg = format!("unix {i}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    let accepted: Vec<u64> = server.stats().iter().map(|s| s.accepted()).collect();
    assert_eq!(accepted, vec![5, 5], "round-robin hand-off from shard 0");
    drop(clients);
    server.shutdown().unwrap();
    assert!(!path.exists(), "the socket file is removed at shutdown");
    assert!(UnixStream::connect(&path).is_err());
    // A stale socket file (a socket no one listens on) is replaced on the next start.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let again = Server::builder()
        .cores(1)
        .listen(&desc, |_| SimpleFactory::new(|| Echo))
        .start()
        .unwrap();
    let mut c = UnixStream::connect(&path).unwrap();
    c.write_all(b"again").unwrap();
    let mut b = [0u8; 5];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"again");
    again.shutdown().unwrap();
}

#[test]
fn a_unix_path_held_by_a_live_server_is_refused() {
    require_io_uring();
    let path = temp_sock("live");
    let desc = format!("unix:{}", path.display());
    let first = Server::builder()
        .cores(1)
        .listen(&desc, |_| SimpleFactory::new(|| Echo))
        .start()
        .unwrap();
    let second = Server::builder()
        .cores(1)
        .listen(&desc, |_| SimpleFactory::new(|| Echo))
        .start();
    match second {
        Err(ServerError::Bind { error, .. }) => {
            assert!(error.to_string().contains("another server"), "{error}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a second server took a live UNIX path"),
    }
    first.shutdown().unwrap();
}

#[test]
fn tcp6_on_the_loopback_works() {
    require_io_uring();
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        panic!("this machine has no IPv6 loopback; tcp6 cannot be tested");
    }
    let server = Server::builder()
        .cores(2)
        .listen(r"tcp6:0:interface=\:\:1", |_| SimpleFactory::new(|| Echo))
        .start()
        .unwrap();
    let addr = server.tcp_addr().unwrap();
    assert!(addr.is_ipv6() && addr.port() != 0);
    let mut c = connect(addr);
    assert_eq!(round_trip(&mut c, b"v6"), b"v6");
    server.shutdown().unwrap();
}

#[test]
fn a_malformed_endpoint_is_rejected_with_the_field_named() {
    let err = Server::builder()
        .listen("tcp:8000:backlog=lots", |_| SimpleFactory::new(|| Echo))
        .start()
        .err()
        .expect("rejected");
    assert!(matches!(err, ServerError::Endpoint(_)));
    assert!(err.to_string().contains("`backlog`"), "{err}");
}

#[test]
fn a_port_taken_by_another_socket_is_a_clear_bind_error_not_a_hang() {
    require_io_uring();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t0 = std::time::Instant::now();
    let err = Server::builder()
        .cores(2)
        .listen(&format!("tcp:{port}:interface=127.0.0.1"), |_| {
            SimpleFactory::new(|| Echo)
        })
        .start()
        .err()
        .expect("bind fails");
    assert!(t0.elapsed() < Duration::from_secs(5));
    match err {
        ServerError::Bind { endpoint, error } => {
            assert!(endpoint.contains(&port.to_string()));
            assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn several_endpoints_share_one_factory_per_shard() {
    require_io_uring();
    let path = temp_sock("multi");
    let server = Server::builder()
        .cores(2)
        .listen_all(
            &[
                "tcp:0:interface=127.0.0.1".to_string(),
                format!("unix:{}", path.display()),
            ],
            |_| SimpleFactory::new(|| Echo),
        )
        .start()
        .unwrap();
    assert_eq!(server.addresses().len(), 2);
    let mut t = connect(server.tcp_addr().unwrap());
    assert_eq!(round_trip(&mut t, b"tcp"), b"tcp");
    let mut u = UnixStream::connect(&path).unwrap();
    u.write_all(b"unix").unwrap();
    let mut b = [0u8; 4];
    u.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"unix");
    server.shutdown().unwrap();
}

#[test]
fn a_server_restarted_on_the_same_port_gets_every_new_connection() {
    require_io_uring();
    let start = |port: u16| {
        Server::builder()
            .cores(2)
            .listen(&format!("tcp:{port}:interface=127.0.0.1"), |_| {
                SimpleFactory::new(|| Echo)
            })
            .start()
            .unwrap()
    };
    let first = start(0);
    let port = first.tcp_addr().unwrap().port();
    let mut c = connect(first.tcp_addr().unwrap());
    assert_eq!(round_trip(&mut c, b"one"), b"one");
    drop(c);
    first.shutdown().unwrap();
    let second = start(port);
    // No connection may land on a listener of the stopped server.
    for i in 0..100u32 {
        let mut c = connect(second.tcp_addr().unwrap());
        assert_eq!(round_trip(&mut c, &i.to_be_bytes()), i.to_be_bytes());
    }
    second.shutdown().unwrap();
}

#[test]
fn a_panicking_factory_closure_fails_the_start_at_once() {
    require_io_uring();
    let t0 = std::time::Instant::now();
    let err = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", |shard| {
            if shard == 1 {
                panic!("no factory for shard one");
            }
            SimpleFactory::new(|| Echo)
        })
        .start()
        .err()
        .expect("start fails");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        err.to_string().contains("no factory for shard one"),
        "{err}"
    );
}
