//! The mesh through the library API on a real two-shard server: broadcast,
//! send-to-one, ask-all, and a full inbox deferring to the sender's outbox.

mod support_mesh;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use support_mesh::{shutdown_within, wait_until};
use weft::mesh::{Mesh, MeshEndpoint};
use weft::{Address, Factory, Protocol, Server, Transport};

#[derive(Clone, Debug)]
enum Msg {
    /// From the test thread: broadcast `n` items, then send `n` to the other shard.
    Go {
        n: u32,
    },
    Item {
        from: usize,
        seq: u32,
        one: bool,
        _payload: Bytes,
    },
    Count(u64),
}

/// What each shard's handler saw: (from, seq, sent to one shard only).
type Log = Arc<Mutex<Vec<Vec<(usize, u32, bool)>>>>;

/// Answers any input with the sum of every shard's answer to an ask.
struct Asker(MeshEndpoint<Msg>);

impl Protocol for Asker {
    fn data_received(&mut self, _data: &[u8], t: &mut Transport) {
        let ask = self.0.ask_all(Msg::Count(0));
        let h = t.handle();
        t.reactor().spawn_local(async move {
            let total: u64 = match ask.await {
                Ok(answers) => answers
                    .iter()
                    .map(|a| if let Msg::Count(c) = a { *c } else { 0 })
                    .sum(),
                Err(e) => {
                    h.write(format!("error {e}\n").as_bytes());
                    return;
                }
            };
            h.write(format!("{total}\n").as_bytes());
        });
    }
}

struct AskerFactory(MeshEndpoint<Msg>);

impl Factory for AskerFactory {
    type Protocol = Asker;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Asker> {
        Some(Asker(self.0.clone()))
    }
}

fn join(mesh: &Mesh<Msg>, shard: usize, log: &Log) -> AskerFactory {
    let ep = mesh.join(shard).expect("join");
    let me = ep.clone();
    let log = Arc::clone(log);
    let payload = Bytes::from_static(b"payload shared by every copy");
    ep.on_message(move |m| match m {
        Msg::Go { n } => {
            let other = (shard + 1) % me.shards();
            for seq in 0..n {
                let item = Msg::Item {
                    from: shard,
                    seq,
                    one: false,
                    _payload: payload.clone(),
                };
                me.broadcast(item).expect("open");
                let one = Msg::Item {
                    from: shard,
                    seq,
                    one: true,
                    _payload: payload.clone(),
                };
                me.send(other, one).expect("open");
            }
        }
        Msg::Item { from, seq, one, .. } => log.lock().unwrap()[shard].push((from, seq, one)),
        Msg::Count(_) => {}
    });
    // Each shard answers with a value of its own, so the sum shows every shard answered.
    ep.on_ask(move |_| Msg::Count(10 + shard as u64));
    AskerFactory(ep)
}

#[test]
fn broadcast_send_and_ask_all_across_two_shards_with_full_inboxes() {
    const N: u32 = 5_000;
    // A tiny inbox, so most messages go through the senders' outboxes.
    let mesh: Mesh<Msg> = Mesh::new(2, 16);
    let log: Log = Arc::new(Mutex::new(vec![Vec::new(), Vec::new()]));
    let (m, l) = (mesh.clone(), Arc::clone(&log));
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            join(&m, shard, &l)
        })
        .start()
        .expect("start");

    mesh.post(0, Msg::Go { n: N }).expect("post");
    mesh.post(1, Msg::Go { n: N }).expect("post");
    // Each shard gets N broadcasts from each shard, plus N sent to it alone.
    let want = 3 * N as usize;
    wait_until(Duration::from_secs(30), "every item delivered", || {
        let log = log.lock().unwrap();
        log[0].len() >= want && log[1].len() >= want
    });

    let log = log.lock().unwrap().clone();
    for (shard, seen) in log.iter().enumerate() {
        assert_eq!(seen.len(), want, "shard {shard}: exactly once");
        for from in 0..2 {
            // Per-sender order, broadcasts and sends interleaved as sent.
            let from_sender: Vec<(u32, bool)> = seen
                .iter()
                .filter(|(f, _, _)| *f == from)
                .map(|&(_, s, one)| (s, one))
                .collect();
            let expected: Vec<(u32, bool)> = if from == shard {
                (0..N).map(|s| (s, false)).collect()
            } else {
                (0..N).flat_map(|s| [(s, false), (s, true)]).collect()
            };
            assert_eq!(
                from_sender, expected,
                "shard {shard}, sender {from}: in order"
            );
        }
    }
    let stats = mesh.stats();
    assert!(
        stats.iter().any(|s| s.deferred > 0),
        "the inboxes never filled: {stats:?}"
    );
    assert!(stats.iter().all(|s| s.dropped == 0), "{stats:?}");

    // ask_all from whichever shard accepts the connection: 10 + 11.
    let addr = server.tcp_addr().expect("tcp");
    for _ in 0..4 {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"?").unwrap();
        let mut got = [0u8; 3];
        c.read_exact(&mut got).expect("answer");
        assert_eq!(&got, b"21\n");
    }
    shutdown_within(server, Duration::from_secs(20));
}

#[test]
fn posting_to_a_missing_shard_is_an_error_not_a_loss() {
    let mesh: Mesh<Msg> = Mesh::new(2, 4);
    assert!(matches!(
        mesh.post(7, Msg::Count(1)),
        Err(weft::mesh::MeshError::NoSuchShard {
            shard: 7,
            shards: 2
        })
    ));
}
