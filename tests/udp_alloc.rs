//! Allocations per UDP echo round trip over a real socket, whole process: none in
//! steady state. The datagram is read in place from the port's provided buffer,
//! the sender's address is held inline, and the reply leaves from the port's
//! outbox, whose vectors keep their capacity.

mod support;
mod support_alloc;

use std::net::UdpSocket;
use std::sync::atomic::Ordering;

use support::{require_io_uring, IO_TIMEOUT};
use support_alloc::{ALLOCS, COUNTING};
use weft::services::datagram_wire::Echo;
use weft::Server;

#[test]
fn udp_echo_allocates_nothing_per_datagram() {
    require_io_uring();
    let server = Server::builder()
        .cores(1)
        .listen_datagram(&["udp:0:interface=127.0.0.1"], |_| Echo)
        .start()
        .unwrap();
    let addr = server.udp_addr().unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.connect(addr).unwrap();
    let msg = [42u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..2_000 {
        c.send(&msg).unwrap();
        assert_eq!(c.recv(&mut back).unwrap(), 64);
    }
    const N: u64 = 20_000;
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..N {
        c.send(&msg).unwrap();
        c.recv(&mut back).unwrap();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    eprintln!("{allocs} allocations in {N} UDP echo round trips");
    assert_eq!(back, msg);
    assert!(
        allocs < 20,
        "{allocs} allocations in {N} round trips: the datagram path allocates per datagram"
    );
    server.shutdown().unwrap();
}
