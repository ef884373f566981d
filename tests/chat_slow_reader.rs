//! A chat client that stops reading cannot stall the others: its own output cap
//! ends it, and the others lose nothing.

mod support;
mod support_mesh;

use std::io::Write;
use std::time::{Duration, Instant};

use support::{kernel_takes_for_a_peer_that_never_reads, never_reading};
use support_mesh::{shutdown_within, ChatClient};
use weft::services::chat::{ChatFactory, ChatMesh};
use weft::Server;

const FAST: usize = 4;
const T: Duration = Duration::from_secs(60);

#[test]
fn a_client_that_stops_reading_is_cut_off_and_the_others_lose_nothing() {
    let mesh = ChatMesh::new(2, 256);
    let server = Server::builder()
        .cores(2)
        .max_output_buffer(64 * 1024)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            ChatFactory::join(&mesh, shard)
        })
        .start()
        .expect("start");
    let addr = server.tcp_addr().expect("tcp");

    let mut stalled = never_reading(addr);
    stalled.write_all(b"/NAME stalled\r\n").unwrap();
    let mut fast: Vec<ChatClient> = (0..FAST).map(|_| ChatClient::connect(addr)).collect();
    for (i, c) in fast.iter_mut().enumerate() {
        c.send(&format!("/NAME f{i}"));
    }

    // The fast clients send, between them, 1 MiB more than the kernel takes for the
    // stalled one: that much past its 64 KiB cap wherever the engine holds it. No
    // more: the fast clients get the same volume and read it as they can, so it
    // must stay within their own slack (the kernel's buffer plus the cap). The
    // others must get all of it while the stalled client never reads: a stall
    // would time them out.
    let lines = (kernel_takes_for_a_peer_that_never_reads() + (1 << 20)) / (FAST * 1010) + 1;
    let started = Instant::now();
    let pad = "x".repeat(1000);
    for (i, c) in fast.iter_mut().enumerate() {
        let mut burst = String::with_capacity(lines * 1010);
        for k in 0..lines {
            burst.push_str(&format!("{i}-{k}-{pad}\r\n"));
        }
        let mut w = c.stream.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(burst.as_bytes()));
    }
    for (i, c) in fast.iter_mut().enumerate() {
        let (mut said, mut cut) = (0, false);
        c.collect_until(T, |line| {
            said += usize::from(line.contains(" says "));
            cut |= line == "stalled has disconnected.";
            said == FAST * lines && cut
        });
        for j in 0..FAST {
            let ks: Vec<usize> = c
                .seen
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("f{j} says {j}-")))
                .map(|rest| rest.split_once('-').unwrap().0.parse().unwrap())
                .collect();
            assert_eq!(ks, (0..lines).collect::<Vec<_>>(), "client {i}, sender {j}");
        }
    }
    eprintln!("fan-out past a stalled client took {:?}", started.elapsed());
    // The stalled client was aborted by the engine, so its socket is reset or closed.
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    let end = loop {
        match std::io::Read::read(&mut stalled, &mut sink) {
            Ok(0) => break "eof",
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("stalled client still open: {e}"),
        }
    };
    assert!(end == "reset" || end == "eof");
    shutdown_within(server, T);
}
