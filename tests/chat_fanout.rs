//! 64 chat clients over two shards: every line reaches every client exactly once,
//! in per-sender order, and join, rename and leave notices reach everyone.

mod support_mesh;

use std::collections::HashMap;
use std::time::Duration;

use support_mesh::{shutdown_within, ChatClient};
use weft::services::chat::{ChatFactory, ChatMesh};
use weft::Server;

const CLIENTS: usize = 64;
const LINES: usize = 20;
const T: Duration = Duration::from_secs(30);

#[test]
fn every_line_reaches_every_client_once_in_per_sender_order() {
    let mesh = ChatMesh::new(2, 64);
    let server = Server::builder()
        .cores(2)
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            ChatFactory::join(&mesh, shard)
        })
        .start()
        .expect("start");
    let addr = server.tcp_addr().expect("tcp");

    // Connect one at a time; before the next, every earlier client has seen this
    // one's join notice, so client i sees the joins of the clients after it. One
    // exception, by design: a shard's first client may also get notices announced
    // before it connected that were still on their way to its (then empty) shard;
    // the test cannot wait for those, as no client there could see them yet.
    let mut clients: Vec<ChatClient> = Vec::with_capacity(CLIENTS);
    let mut first_on_its_shard = Vec::with_capacity(CLIENTS);
    let accepted =
        |s: &weft::ServerHandle| -> Vec<u64> { s.stats().iter().map(|st| st.accepted()).collect() };
    for k in 0..CLIENTS {
        let before = accepted(&server);
        clients.push(ChatClient::connect(addr));
        let after = accepted(&server);
        let shard = (0..2).find(|&s| after[s] > before[s]).expect("accepted");
        first_on_its_shard.push(before[shard] == 0);
        for (i, c) in clients[..k].iter_mut().enumerate() {
            assert_eq!(
                c.take(1, T),
                ["127.0.0.1 has joined the party."],
                "client {i}, join of {k}"
            );
        }
    }
    let stats = accepted(&server);
    assert!(
        stats[0] > 0 && stats[1] > 0,
        "both shards have clients: {} and {}",
        stats[0],
        stats[1]
    );

    // Renames: everyone, the renamer included, hears every one of them.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&format!("/NAME c{i}"));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = Vec::with_capacity(CLIENTS);
        let mut early_joins = 0;
        while got.len() < CLIENTS {
            let line = c.take(1, T).remove(0);
            if first_on_its_shard[i] && line == "127.0.0.1 has joined the party." {
                early_joins += 1;
                assert!(
                    early_joins <= i,
                    "client {i}: more joins than clients before it"
                );
            } else {
                got.push(line);
            }
        }
        got.sort();
        let mut want: Vec<String> = (0..CLIENTS)
            .map(|j| format!("127.0.0.1 changed name to c{j}"))
            .collect();
        want.sort();
        assert_eq!(got, want, "client {i}");
    }

    // Lines: each client sends LINES in one burst.
    for (i, c) in clients.iter_mut().enumerate() {
        let burst: String = (0..LINES).map(|k| format!("m{i}-{k}\r\n")).collect();
        std::io::Write::write_all(&mut c.stream, burst.as_bytes()).expect("send");
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let got = c.take(CLIENTS * LINES, T);
        let mut per_sender: HashMap<usize, Vec<usize>> = HashMap::new();
        for line in &got {
            let (name, text) = line.split_once(" says ").expect("a chat line");
            let j: usize = name[1..].parse().expect("c<j>");
            let (sender, k) = text[1..].split_once('-').expect("m<j>-<k>");
            assert_eq!(
                sender.parse::<usize>().unwrap(),
                j,
                "line under its sender's name"
            );
            per_sender.entry(j).or_default().push(k.parse().unwrap());
        }
        assert_eq!(per_sender.len(), CLIENTS, "client {i} hears every client");
        for (j, ks) in &per_sender {
            assert_eq!(
                *ks,
                (0..LINES).collect::<Vec<_>>(),
                "client {i}, sender {j}"
            );
        }
    }

    // Leaving: /EXIT, and a plain close.
    clients[0].send("/EXIT");
    clients[0].collect_to_eof(T);
    assert!(clients[0].seen.is_empty(), "{:?}", clients[0].seen);
    clients[1].close();
    for (i, c) in clients.iter_mut().enumerate().skip(2) {
        let mut got = c.take(2, T);
        got.sort();
        assert_eq!(
            got,
            ["c0 has disconnected.", "c1 has disconnected."],
            "client {i}"
        );
    }
    shutdown_within(server, T);
}
