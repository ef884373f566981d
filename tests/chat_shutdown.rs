//! A graceful stop while chat lines are still fanning out: everything the server
//! accepted before the stop reaches every connected client before it closes.

mod support_mesh;

use std::collections::HashMap;
use std::time::Duration;

use support_mesh::{join_within, ChatClient};
use weft::services::chat::{ChatFactory, ChatMesh};
use weft::Server;

const CLIENTS: usize = 8;
const LINES: usize = 1_000;
const T: Duration = Duration::from_secs(60);

#[test]
fn stop_during_a_chat_storm_delivers_every_accepted_line() {
    // Small inboxes: the storm runs through the senders' outboxes too.
    let mesh = ChatMesh::new(2, 16);
    let m = mesh.clone();
    let server = Server::builder()
        .cores(2)
        .drain_timeout(Duration::from_secs(30))
        .listen("tcp:0:interface=127.0.0.1", move |shard| {
            ChatFactory::join(&m, shard)
        })
        .start()
        .expect("start");
    let addr = server.tcp_addr().expect("tcp");
    let mut clients: Vec<ChatClient> = (0..CLIENTS).map(|_| ChatClient::connect(addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let mut burst = format!("/NAME c{i}\r\n");
        for k in 0..LINES {
            burst.push_str(&format!("{k}\r\n"));
        }
        std::io::Write::write_all(&mut c.stream, burst.as_bytes()).unwrap();
    }
    // Once a client hears its own last line, the server has read all its input;
    // stop as soon as that holds for everyone, while the fan-out is still going.
    let last: Vec<String> = (0..CLIENTS)
        .map(|i| format!("c{i} says {}", LINES - 1))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.collect_until(T, |line| line == last[i]);
    }
    let stop = server.stop_handle();
    stop.stop();
    let before: usize = clients.iter().map(|c| c.seen.len()).sum();
    for c in clients.iter_mut() {
        c.collect_to_eof(T);
    }
    join_within(move || server.join().expect("clean"), T, "join");

    let after: usize = clients.iter().map(|c| c.seen.len()).sum();
    assert!(
        after > before,
        "the stop came after the fan-out had finished"
    );
    for (i, c) in clients.iter().enumerate() {
        let mut per_sender: HashMap<String, Vec<usize>> = HashMap::new();
        for line in &c.seen {
            if let Some((name, k)) = line.split_once(" says ") {
                per_sender
                    .entry(name.to_string())
                    .or_default()
                    .push(k.parse().unwrap());
            }
        }
        for j in 0..CLIENTS {
            assert_eq!(
                per_sender.get(&format!("c{j}")).map(Vec::as_slice),
                Some(&(0..LINES).collect::<Vec<_>>()[..]),
                "client {i}, sender {j}"
            );
        }
    }
    assert!(mesh.stats().iter().all(|s| s.dropped == 0));
}
