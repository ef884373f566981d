//! The Twisted tutorial's finger server, step finger08: read one line (a user name),
//! look it up *asynchronously*, reply with the status or `No such user`, close.
//!
//! ```text
//! cargo run --example finger -- [ENDPOINT]     (default tcp:1079)
//! echo moshez | nc -N localhost 1079           → Happy and well
//! ```
//!
//! Twisted's `getUser` returns a Deferred; here the lookup is an `async fn` spawned
//! on the shard, and the answer is written later through a `TransportHandle`.
//! (`weft serve finger --users FILE` is the full service.)

use std::collections::HashMap;
use std::rc::Rc;

use weft::protocols::{LineControl, LineHandler, LineReceiver};
use weft::{Address, Factory, Server};

/// One per shard, like Twisted's `FingerFactory(users)`.
struct FingerFactory {
    users: Rc<HashMap<Vec<u8>, Vec<u8>>>,
}

/// The Deferred-returning `getUser`: any future would do (a database, a file…).
async fn get_user(users: Rc<HashMap<Vec<u8>, Vec<u8>>>, user: Vec<u8>) -> Vec<u8> {
    users
        .get(&user)
        .cloned()
        .unwrap_or_else(|| b"No such user".to_vec())
}

struct FingerProtocol {
    users: Rc<HashMap<Vec<u8>, Vec<u8>>>,
}

impl LineHandler for FingerProtocol {
    fn line_received(&mut self, user: &[u8], t: &mut LineControl<'_>) {
        let lookup = get_user(Rc::clone(&self.users), user.trim_ascii().to_vec());
        let handle = t.handle();
        // One question per connection: stop reading, and drop whatever else the
        // client sent (the reply comes from a task, after this callback returns).
        t.pause_reading();
        t.clear_line_buffer();
        t.reactor().spawn_local(async move {
            let mut reply = lookup.await;
            reply.extend_from_slice(b"\r\n");
            handle.write(&reply);
            handle.lose_connection();
        });
    }
}

impl Factory for FingerFactory {
    type Protocol = LineReceiver<FingerProtocol>;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        Some(LineReceiver::new(FingerProtocol {
            users: Rc::clone(&self.users),
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args().nth(1).unwrap_or_else(|| "tcp:1079".into());
    let server = Server::builder()
        .handle_signals(true)
        .listen(&endpoint, |_shard| FingerFactory {
            users: Rc::new(HashMap::from([(
                b"moshez".to_vec(),
                b"Happy and well".to_vec(),
            )])),
        })
        .start()?;
    for addr in server.addresses() {
        eprintln!("listening on {addr}");
    }
    server.join()?;
    Ok(())
}
