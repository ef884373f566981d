//! Shutdown with the mesh: messages accepted before the stop are delivered before
//! the shards end, and a receiver that never drains cannot hang the stop.

mod support_mesh;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use support_mesh::join_within;
use weft::mesh::Mesh;
use weft::services::wire::{Discard, SimpleFactory};
use weft::{Server, StopHandle};

#[derive(Clone)]
enum Msg {
    Storm { n: u64 },
    Item(u64),
}

#[test]
fn a_stop_during_a_broadcast_storm_delivers_everything_accepted_before_it() {
    const N: u64 = 50_000;
    let mesh: Mesh<Msg> = Mesh::new(2, 32);
    let stop: Arc<OnceLock<StopHandle>> = Arc::new(OnceLock::new());
    // Per shard: items received and whether they came in order.
    let got: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let disorder = Arc::new(Mutex::new(Vec::new()));
    let (m, s, g, d) = (
        mesh.clone(),
        Arc::clone(&stop),
        Arc::clone(&got),
        Arc::clone(&disorder),
    );
    let server = Server::builder()
        .cores(2)
        .drain_timeout(Duration::from_secs(20))
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            let ep = m.join(shard).expect("join");
            let me = ep.clone();
            let (stop, got, disorder) = (Arc::clone(&s), Arc::clone(&g), Arc::clone(&d));
            ep.on_message(move |msg| match msg {
                Msg::Storm { n } => {
                    for i in 0..n {
                        me.broadcast(Msg::Item(i))
                            .expect("accepted before the stop");
                    }
                    // Stop while nearly all of it still sits in inboxes and outboxes.
                    stop.get().expect("set").stop();
                }
                Msg::Item(i) => {
                    let seen = got[shard].load(Ordering::Relaxed);
                    if i != seen {
                        disorder.lock().unwrap().push((shard, seen, i));
                    }
                    got[shard].store(seen + 1, Ordering::Relaxed);
                }
            });
            SimpleFactory::new(|| Discard)
        })
        .start()
        .expect("start");
    stop.set(server.stop_handle()).ok();
    mesh.post(0, Msg::Storm { n: N }).expect("post");
    join_within(
        move || server.join().expect("clean"),
        Duration::from_secs(60),
        "join",
    );
    assert!(
        disorder.lock().unwrap().is_empty(),
        "{:?}",
        disorder.lock().unwrap()
    );
    for (shard, n) in got.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), N, "shard {shard}");
    }
    assert!(mesh.stats().iter().all(|s| s.dropped == 0));
    assert!(
        mesh.stats()[0].deferred > 0,
        "the storm never filled an inbox"
    );
}

#[test]
fn a_shard_that_never_drains_cannot_hang_shutdown_and_the_loss_is_counted() {
    // Three slots for two shards: slot 2 never joins, so its inbox fills and the
    // rest waits in shard 0's outbox until the drain deadline.
    let mesh: Mesh<u64> = Mesh::new(3, 4);
    let m = mesh.clone();
    let server = Server::builder()
        .cores(2)
        .drain_timeout(Duration::from_millis(300))
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            let ep = m.join(shard).expect("join");
            let me = ep.clone();
            ep.on_message(move |n| {
                for i in 0..n {
                    me.send(2, i).expect("open");
                }
            });
            SimpleFactory::new(|| Discard)
        })
        .start()
        .expect("start");
    mesh.post(0, 100).expect("post");
    support_mesh::wait_until(Duration::from_secs(10), "the outbox filled", || {
        mesh.stats()[0].deferred == 96
    });
    let started = Instant::now();
    support_mesh::shutdown_within(server, Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        mesh.stats()[0].dropped,
        96,
        "the drop is counted, not silent"
    );
}
