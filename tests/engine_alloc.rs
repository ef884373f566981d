//! Allocations per echo round trip over a real socket, whole process.
//!
//! weft's own per-message path allocates nothing (the unit test
//! `the_echo_path_allocates_nothing_per_message_in_steady_state` in
//! `runtime/connection.rs` proves it with an always-ready socket). Over a real socket
//! glommio 0.9's reactor allocates for itself each time the shard parks and each
//! time it arms a readiness poll (a `Source` per poll, one for the preemption timer
//! per park): 4 to 7 per ping-pong round trip measured here, more on an idle machine,
//! where the shard parks on every message. The native data path (the default, see
//! docs/architecture.md) makes no allocation per message itself, but with one
//! ping-pong connection its driver parks after every message, and each park reads the
//! ring's eventfd through glommio (a `Source`, a read buffer, its SQE chain: about 7
//! more): 14.6 per round trip measured here against 7.0 on glommio's streams. Under
//! load the driver does not park between messages and these costs vanish. This test
//! holds bounds of 12 (glommio's streams) and 18 (native) against gross regressions;
//! the exact per-message guarantee is the unit test's.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use support::{connect, require_io_uring, round_trip};
use weft::services::wire::{Echo, SimpleFactory};
use weft::Server;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter
// has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout, as the trait requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn echo_over_a_socket_allocates_no_more_than_glommios_own_reactor_does() {
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
    let per_trip = allocs as f64 / N as f64;
    let glommio_streams = std::env::var("WEFT_IO").is_ok_and(|v| v == "glommio");
    let bound = if glommio_streams { 12.0 } else { 18.0 };
    assert!(
        per_trip <= bound,
        "{per_trip:.2} allocations per round trip ({allocs} in {N}): over the bound of {bound}"
    );
    server.shutdown().unwrap();
}
