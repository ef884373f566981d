//! The mesh's own tests: endpoints joined by hand, delivered with `run_pending`.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::*;

fn pair(capacity: usize) -> (Mesh<u32>, MeshEndpoint<u32>, MeshEndpoint<u32>) {
    let mesh = Mesh::new(2, capacity);
    let a = mesh.join_manual(0).unwrap();
    let b = mesh.join_manual(1).unwrap();
    (mesh, a, b)
}

fn collect(e: &MeshEndpoint<u32>) -> Rc<RefCell<Vec<u32>>> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = Rc::clone(&got);
    e.on_message(move |m| g.borrow_mut().push(m));
    got
}

#[test]
fn join_rejects_a_second_join_and_a_bad_index() {
    let mesh: Mesh<u32> = Mesh::new(2, 4);
    let _a = mesh.join_manual(0).unwrap();
    assert_eq!(
        mesh.join_manual(0).unwrap_err(),
        MeshError::AlreadyJoined { shard: 0 }
    );
    assert_eq!(
        mesh.join_manual(2).unwrap_err(),
        MeshError::NoSuchShard {
            shard: 2,
            shards: 2
        }
    );
}

#[test]
fn join_off_a_shard_thread_is_refused_and_leaves_the_slot_free() {
    let mesh: Mesh<u32> = Mesh::new(1, 4);
    assert_eq!(mesh.join(0).unwrap_err(), MeshError::NotOnShard);
    assert!(mesh.join_manual(0).is_ok());
}

#[test]
fn broadcast_reaches_every_shard_in_order() {
    let (_mesh, a, b) = pair(16);
    let (got_a, got_b) = (collect(&a), collect(&b));
    for i in 0..10 {
        a.broadcast(i).unwrap();
    }
    a.run_pending();
    b.run_pending();
    assert_eq!(*got_a.borrow(), (0..10).collect::<Vec<_>>());
    assert_eq!(*got_b.borrow(), (0..10).collect::<Vec<_>>());
}

#[test]
fn full_inbox_defers_to_the_outbox_and_loses_nothing() {
    let (mesh, a, b) = pair(4);
    let got = collect(&b);
    for i in 0..100 {
        a.send(1, i).unwrap();
    }
    assert_eq!(a.backlog(), 96);
    assert_eq!(mesh.stats()[0].deferred, 96);
    // The receiver drains and flags the sender; the sender moves its outbox on.
    while got.borrow().len() < 100 {
        b.run_pending();
        a.run_pending();
    }
    assert_eq!(*got.borrow(), (0..100).collect::<Vec<_>>());
    assert_eq!(a.backlog(), 0);
}

#[test]
fn post_reports_a_full_inbox() {
    let (mesh, _a, b) = pair(2);
    mesh.post(1, 1).unwrap();
    mesh.post(1, 2).unwrap();
    assert_eq!(mesh.post(1, 3), Err(MeshError::Full { shard: 1 }));
    let got = collect(&b);
    b.run_pending();
    assert_eq!(*got.borrow(), vec![1, 2]);
}

#[test]
fn send_to_a_missing_shard_is_an_error() {
    let (_mesh, a, _b) = pair(2);
    assert_eq!(
        a.send(5, 0),
        Err(MeshError::NoSuchShard {
            shard: 5,
            shards: 2
        })
    );
}

#[test]
fn ask_all_collects_one_answer_per_shard() {
    let (_mesh, a, b) = pair(8);
    a.on_ask(|q| q + 1);
    b.on_ask(|q| q + 2);
    let mut ask = Box::pin(a.ask_all(10));
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(ask.as_mut().poll(&mut cx).is_pending());
    b.run_pending();
    a.run_pending();
    assert_eq!(ask.as_mut().poll(&mut cx), Poll::Ready(Ok(vec![11, 12])));
}

#[test]
fn ask_all_without_a_responder_fails() {
    let (_mesh, a, b) = pair(8);
    a.on_ask(|q| q);
    let mut ask = Box::pin(a.ask_all(1));
    b.run_pending();
    a.run_pending();
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(
        ask.as_mut().poll(&mut cx),
        Poll::Ready(Err(MeshError::NoResponder { shard: 1 }))
    );
}

#[test]
fn a_panicking_handler_does_not_stop_delivery() {
    let (_mesh, a, _b) = pair(8);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = Rc::clone(&got);
    a.on_message(move |m| {
        assert_ne!(m, 1, "boom");
        g.borrow_mut().push(m);
    });
    for i in 0..3 {
        a.send(0, i).unwrap();
    }
    a.run_pending();
    assert_eq!(*got.borrow(), vec![0, 2]);
}
