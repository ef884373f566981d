//! Panics in user code the engine runs outside a protocol callback — a
//! `call_later` closure, a spawned task on its first poll or a later one, a mesh
//! handler — are caught, logged and counted; the shard keeps serving, and the
//! connection that scheduled the failing work keeps working (Twisted logs an
//! exception raised by a DelayedCall and the reactor goes on).

mod support;
mod support_mesh;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{connect, require_io_uring, round_trip};
use support_mesh::{shutdown_within, wait_until};
use weft::mesh::Mesh;
use weft::services::wire::SimpleFactory;
use weft::{Protocol, Server, ServerHandle, Transport};

/// Echoes, except for three commands that schedule work which panics.
struct Trigger;

impl Protocol for Trigger {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let reactor = t.reactor().clone();
        match data {
            b"timer" => {
                reactor.call_later(Duration::from_millis(5), || panic!("timer boom"));
            }
            b"task-first" => reactor.spawn_local(async { panic!("first poll boom") }),
            b"task-later" => {
                let r = reactor.clone();
                reactor.spawn_local(async move {
                    r.sleep(Duration::from_millis(5)).await;
                    panic!("later poll boom");
                });
            }
            _ => {}
        }
        t.write(data);
    }
}

fn server() -> ServerHandle {
    require_io_uring();
    Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", |_| {
            SimpleFactory::new(|| Trigger)
        })
        .start()
        .expect("start")
}

fn panics(server: &ServerHandle) -> u64 {
    server.stats().iter().map(|s| s.panics()).sum()
}

fn survives(command: &[u8]) {
    let server = server();
    let addr = server.tcp_addr().unwrap();
    let mut bystander = connect(addr);
    assert_eq!(round_trip(&mut bystander, b"hello"), b"hello");
    let mut c = connect(addr);
    assert_eq!(round_trip(&mut c, command), command);
    wait_until(Duration::from_secs(10), "the panic was caught", || {
        panics(&server) >= 1
    });
    // The connection that scheduled it, another one, and a new one all work.
    assert_eq!(round_trip(&mut c, b"still here"), b"still here");
    assert_eq!(round_trip(&mut bystander, b"me too"), b"me too");
    let mut fresh = connect(addr);
    assert_eq!(round_trip(&mut fresh, b"new"), b"new");
    assert_eq!(panics(&server), 1);
    shutdown_within(server, Duration::from_secs(10));
}

#[test]
fn a_panicking_call_later_closure_leaves_the_shard_serving() {
    survives(b"timer");
}

#[test]
fn a_task_that_panics_on_its_first_poll_leaves_the_shard_serving() {
    survives(b"task-first");
}

#[test]
fn a_task_that_panics_on_a_later_poll_leaves_the_shard_serving() {
    survives(b"task-later");
}

#[test]
fn a_panicking_mesh_handler_leaves_the_shard_and_the_mesh_working() {
    require_io_uring();
    let mesh: Mesh<u64> = Mesh::new(2, 64);
    let got = Arc::new(AtomicU64::new(0));
    let (m, g) = (mesh.clone(), Arc::clone(&got));
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            let ep = m.join(shard).expect("join");
            let g = Arc::clone(&g);
            ep.on_message(move |n| {
                if n == 13 {
                    panic!("handler boom");
                }
                g.fetch_add(n, Ordering::Relaxed);
            });
            SimpleFactory::new(|| Trigger)
        })
        .start()
        .expect("start");
    for shard in 0..2 {
        mesh.post(shard, 13).expect("post");
        mesh.post(shard, 1).expect("post");
    }
    wait_until(
        Duration::from_secs(10),
        "the messages after the panic",
        || got.load(Ordering::Relaxed) == 2,
    );
    let mut c = connect(server.tcp_addr().unwrap());
    assert_eq!(round_trip(&mut c, b"ok"), b"ok");
    shutdown_within(server, Duration::from_secs(10));
}
