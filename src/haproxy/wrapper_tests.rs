//! The wrapper driven by the test transport: no sockets, a manual clock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::*;
use crate::address::Address;
use crate::factory::Factory;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::testing::StringTransport;
use crate::transport::Transport;

#[derive(Default)]
struct Seen {
    built_for: Vec<Address>,
    made: Vec<(Address, Address)>,
    data: Vec<u8>,
    lost: usize,
}

/// Answers every chunk with `peer host\n` and records what it saw.
struct Recorder(Rc<RefCell<Seen>>);

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut Transport) {
        self.0
            .borrow_mut()
            .made
            .push((t.peer().clone(), t.host().clone()));
        t.write(format!("{} {}\n", t.peer(), t.host()).as_bytes());
    }
    fn data_received(&mut self, data: &[u8], _t: &mut Transport) {
        self.0.borrow_mut().data.extend_from_slice(data);
    }
    fn connection_lost(&mut self, _reason: Reason) {
        self.0.borrow_mut().lost += 1;
    }
}

struct RecorderFactory(Rc<RefCell<Seen>>);

impl Factory for RecorderFactory {
    type Protocol = Recorder;
    fn build_protocol(&mut self, peer: &Address) -> Option<Recorder> {
        self.0.borrow_mut().built_for.push(peer.clone());
        Some(Recorder(Rc::clone(&self.0)))
    }
}

fn setup() -> (
    HaproxyServerFactory<RecorderFactory>,
    Rc<RefCell<Seen>>,
    StringTransport,
) {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let f = HaproxyServerFactory::new(RecorderFactory(Rc::clone(&seen)));
    let t = StringTransport::with_addresses(
        Address::Tcp("127.0.0.1:50000".parse().unwrap()),
        Address::Tcp("127.0.0.1:9000".parse().unwrap()),
    );
    (f, seen, t)
}

#[test]
fn header_then_data_reaches_the_protocol_with_the_clients_addresses() {
    let (mut f, seen, mut t) = setup();
    let mut p = f.build_protocol(&t.peer().clone()).unwrap();
    p.connection_made(&mut t);
    assert!(seen.borrow().made.is_empty(), "built before the header");
    p.data_received(
        b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 8080\r\nhello",
        &mut t,
    );
    p.data_received(b" world", &mut t);
    let s = seen.borrow();
    assert_eq!(
        s.built_for,
        vec![Address::Tcp("192.0.2.7:40000".parse().unwrap())]
    );
    assert_eq!(t.text(), "tcp:192.0.2.7:40000 tcp:198.51.100.1:8080\n");
    assert_eq!(s.data, b"hello world");
    assert_eq!(f.stats().accepted(), 1);
}

#[test]
fn header_fed_one_byte_at_a_time_is_the_same() {
    let (mut f, seen, mut t) = setup();
    let mut p = f.build_protocol(&t.peer().clone()).unwrap();
    p.connection_made(&mut t);
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[
        0x21, 0x11, 0, 12, 10, 0, 0, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80,
    ]);
    h.extend_from_slice(b"abc");
    for b in &h {
        p.data_received(std::slice::from_ref(b), &mut t);
    }
    assert_eq!(t.text(), "tcp:10.0.0.9:8080 tcp:10.0.0.1:80\n");
    assert_eq!(seen.borrow().data, b"abc");
}

#[test]
fn junk_closes_the_connection_counts_it_and_builds_nothing() {
    let (mut f, seen, mut t) = setup();
    let mut p = f.build_protocol(&t.peer().clone()).unwrap();
    p.connection_made(&mut t);
    p.data_received(b"GET / HTTP/1.0\r\n\r\n", &mut t);
    assert!(t.aborted());
    assert!(t.value().is_empty());
    assert!(seen.borrow().built_for.is_empty());
    assert_eq!((f.stats().refused(), f.stats().accepted()), (1, 0));
    p.connection_lost(Reason::ConnectionAborted);
    assert_eq!(seen.borrow().lost, 0);
}

#[test]
fn no_header_in_time_closes_the_connection() {
    let (f, seen, mut t) = setup();
    let mut f = f.header_timeout(Duration::from_secs(3));
    let mut p = f.build_protocol(&t.peer().clone()).unwrap();
    p.connection_made(&mut t);
    p.data_received(b"PROXY TCP4 1.2.3.4", &mut t);
    t.clock().advance(Duration::from_secs(2));
    assert!(!t.aborted());
    t.clock().advance(Duration::from_secs(1));
    assert!(t.aborted());
    assert_eq!(f.stats().timed_out(), 1);
    assert!(seen.borrow().built_for.is_empty());
}

#[test]
fn a_complete_header_stops_the_timer() {
    let (mut f, _seen, mut t) = setup();
    let mut p = f.build_protocol(&t.peer().clone()).unwrap();
    p.connection_made(&mut t);
    p.data_received(b"PROXY UNKNOWN\r\n", &mut t);
    t.clock().advance(DEFAULT_HEADER_TIMEOUT * 2);
    assert!(!t.aborted());
    assert_eq!(f.stats().timed_out(), 0);
    // UNKNOWN: the connection's own addresses.
    assert_eq!(t.text(), "tcp:127.0.0.1:50000 tcp:127.0.0.1:9000\n");
}

#[test]
fn connection_lost_reaches_the_inner_protocol_once() {
    let (mut f, seen, mut t) = setup();
    let mut p = f.build_protocol(&t.peer().clone()).unwrap();
    p.connection_made(&mut t);
    p.data_received(b"PROXY TCP6 ::1 ::2 1 2\r\n", &mut t);
    p.connection_lost(Reason::ConnectionDone);
    p.connection_lost(Reason::ConnectionDone);
    assert_eq!(seen.borrow().lost, 1);
}
