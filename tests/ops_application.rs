//! The library's application model: a program builds an Application with a server
//! and a client service in one process, and the runner starts and stops them.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use support::{connect, require_io_uring, round_trip, IO_TIMEOUT};
use weft::application::{Application, ClientService, ListeningService, Service, StopFuture};
use weft::client::ClientFactory;
use weft::services::wire::{Echo, SimpleFactory};
use weft::{Address, Protocol, Transport};

/// Says hello on every connection it makes.
struct Hello;

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut Transport) {
        t.write(b"hello\r\n");
    }
    fn data_received(&mut self, _: &[u8], _: &mut Transport) {}
}

struct HelloFactory;

impl ClientFactory for HelloFactory {
    type Protocol = Hello;
    fn build_protocol(&mut self, _: &Address) -> Option<Hello> {
        Some(Hello)
    }
}

/// Records when it is stopped.
struct Recorder(Arc<Mutex<Vec<&'static str>>>);

impl Service for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn stop_service(&mut self) -> StopFuture {
        self.0.lock().unwrap().push("stopped");
        Box::pin(std::future::ready(()))
    }
}

#[test]
fn a_server_and_a_client_service_run_in_one_application_and_the_client_reconnects() {
    require_io_uring();
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp:{}", upstream.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));

    let mut app = Application::new("demo");
    app.add_service(Box::new(ListeningService::new(
        "echo",
        &["tcp:0:interface=127.0.0.1"],
        |_| SimpleFactory::new(|| Echo),
    )))
    .unwrap()
    .add_service(Box::new(ClientService::new(
        "hello",
        endpoint.parse().unwrap(),
        || HelloFactory,
    )))
    .unwrap()
    .add_service(Box::new(Recorder(Arc::clone(&log))))
    .unwrap();
    assert!(matches!(
        app.add_service(Box::new(Recorder(Arc::clone(&log)))),
        Err(weft::application::AppError::DuplicateService(_))
    ));
    let running = app.start(weft::Server::builder().cores(2)).unwrap();

    let mut c = connect(running.server().tcp_addr().unwrap());
    assert_eq!(round_trip(&mut c, b"served"), b"served");
    drop(c);
    // The client service connects, and connects again after the peer hangs up
    // (ReconnectingClientFactory's first delay is about a second).
    for _ in 0..2 {
        let (mut s, _) = upstream.accept().unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut hello = [0u8; 7];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello\r\n");
    }
    running.server().stop();
    let summaries = running.join().unwrap();
    assert_eq!(summaries.len(), 2);
    assert_eq!(*log.lock().unwrap(), ["stopped"]);
}
