//! Echo over real sockets on 127.0.0.1 with 2 shards: many connections, every size.

mod support;

use std::io::{Read, Write};
use std::thread;

use support::{connect, require_io_uring, round_trip, Rng};
use weft::services::wire::{Echo, SimpleFactory};
use weft::Server;

fn echo_server(cores: usize) -> weft::ServerHandle {
    require_io_uring();
    Server::builder()
        .cores(cores)
        .listen("tcp:0:interface=127.0.0.1", |_| SimpleFactory::new(|| Echo))
        .start()
        .expect("server starts")
}

#[test]
fn two_hundred_concurrent_connections_are_spread_over_both_shards_and_every_byte_returns() {
    let server = echo_server(2);
    let addr = server.tcp_addr().unwrap();
    let mut clients: Vec<_> = (0..200).map(|_| connect(addr)).collect();
    for round in 0..3u8 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("conn {i} round {round};").as_bytes())
                .unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let want = format!("conn {i} round {round};");
            let mut got = vec![0; want.len()];
            c.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes());
        }
    }
    let accepted: Vec<u64> = server.stats().iter().map(|s| s.accepted()).collect();
    assert_eq!(accepted.iter().sum::<u64>(), 200, "{accepted:?}");
    assert!(
        accepted.iter().all(|&n| n > 0),
        "a shard served nothing: {accepted:?}"
    );
    drop(clients);
    server.shutdown().unwrap();
}

#[test]
fn payloads_from_one_byte_to_four_mebibytes_written_in_random_chunks_round_trip() {
    let server = echo_server(2);
    let addr = server.tcp_addr().unwrap();
    let mut rng = Rng::new(7);
    let mut sizes = vec![
        1usize,
        2,
        63,
        64,
        65,
        1000,
        4096,
        65_535,
        65_536,
        65_537,
        1 << 20,
    ];
    sizes.push(4 << 20);
    for size in sizes {
        let data = rng.bytes(size);
        let mut w = connect(addr);
        let mut r = w.try_clone().unwrap();
        let chunks: Vec<usize> = {
            let mut left = size;
            let mut v = Vec::new();
            while left > 0 {
                let n = (1 + rng.below(70_000) as usize).min(left);
                v.push(n);
                left -= n;
            }
            v
        };
        let to_send = data.clone();
        let writer = thread::spawn(move || {
            let mut off = 0;
            for n in chunks {
                w.write_all(&to_send[off..off + n]).unwrap();
                off += n;
            }
            w
        });
        let mut got = vec![0; size];
        r.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == data, "payload of {size} bytes came back different");
    }
    server.shutdown().unwrap();
}

#[test]
fn a_peer_that_half_closes_still_gets_its_echo_then_eof() {
    let server = echo_server(1);
    let mut c = connect(server.tcp_addr().unwrap());
    let data = Rng::new(3).bytes(300_000);
    c.write_all(&data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let got = support::read_to_end(&mut c);
    assert!(got == data, "got {} of {} bytes", got.len(), data.len());
    server.shutdown().unwrap();
}

#[test]
fn ping_pong_keeps_working_across_many_round_trips() {
    let server = echo_server(1);
    let mut c = connect(server.tcp_addr().unwrap());
    for i in 0..2000u32 {
        let msg = i.to_be_bytes();
        assert_eq!(round_trip(&mut c, &msg), msg);
    }
    server.shutdown().unwrap();
}
