//! Allocations per echo round trip over a real socket, whole process: zero in
//! steady state, at one connection too.
//!
//! A lone ping-pong connection is the worst case: the shard sleeps in its ring
//! after every message, so anything a park, a wake-up, a receive or a send
//! allocated would show here once per round trip. The receive lands in a provided
//! buffer that `data_received` reads in place, the reply leaves from the
//! connection's output buffer (whose `Vec` is reused), and the shard's loop and
//! ring allocate nothing per turn.

mod support;
mod support_alloc;

use std::sync::atomic::Ordering;

use support::{connect, require_io_uring, round_trip};
use support_alloc::{ALLOCS, COUNTING};
use weft::services::wire::{Echo, SimpleFactory};
use weft::Server;

#[test]
fn echo_over_a_socket_allocates_nothing_per_round_trip() {
    require_io_uring();
    let server = Server::builder()
        .cores(1)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .unwrap();
    let mut c = connect(server.tcp_addr().unwrap());
    let msg = [42u8; 64];
    let mut back = [0u8; 64];
    use std::io::{Read, Write};
    for _ in 0..2_000 {
        assert_eq!(round_trip(&mut c, &msg), msg);
    }
    const N: u64 = 20_000;
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..N {
        c.write_all(&msg).unwrap();
        c.read_exact(&mut back).unwrap();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    eprintln!("{allocs} allocations in {N} echo round trips");
    assert_eq!(back, msg);
    // The whole process counts: allow a handful of one-off allocations (a log
    // line, a thread's lazy initialisation), never one per round trip.
    assert!(
        allocs < 20,
        "{allocs} allocations in {N} round trips: the echo path allocates per message"
    );
    server.shutdown().unwrap();
}
