//! The doorbell under the worst case for lost wake-ups: a ping-pong between two
//! shards, where every message finds its receiver parked or about to park.

mod support_mesh;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support_mesh::{shutdown_within, wait_until};
use weft::mesh::Mesh;
use weft::services::wire::{Discard, SimpleFactory};
use weft::Server;

/// Every message is one wake-up of a shard that is asleep or about to sleep in its
/// ring: a lost wake-up would stop the ping-pong for good (the test's deadline).
/// The stress command in docs/testing.md runs three copies at once, hundreds of
/// times (this hung about one run in twenty on glommio 0.9's sleep).
#[test]
fn a_ping_pong_between_shards_never_loses_a_wakeup() {
    const ROUNDS: u64 = 20_000;
    let mesh: Mesh<u64> = Mesh::new(2, 8);
    let done = Arc::new(AtomicU64::new(0));
    let (m, d) = (mesh.clone(), Arc::clone(&done));
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            let ep = m.join(shard).expect("join");
            let me = ep.clone();
            let done = Arc::clone(&d);
            ep.on_message(move |n| {
                done.store(n, Ordering::Relaxed);
                if n < ROUNDS {
                    me.send(1 - shard, n + 1).expect("open");
                }
            });
            SimpleFactory::new(|| Discard)
        })
        .start()
        .expect("start");
    mesh.post(0, 1).expect("post");
    wait_until(Duration::from_secs(60), "the ping-pong finished", || {
        done.load(Ordering::Relaxed) == ROUNDS
    });
    let stats = mesh.stats();
    assert!(stats.iter().all(|s| s.wakeups > 0));
    shutdown_within(server, Duration::from_secs(10));
}
