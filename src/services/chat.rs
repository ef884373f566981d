//! The seeds' chat server, with clients on every shard seeing each other.
//!
//! Every shard runs a [`ChatFactory`] holding that shard's room: its local clients
//! and its [`MeshEndpoint`]. Everything said goes out as one [`ChatEvent`] broadcast
//! over the mesh — to this shard too, so that a client's own line and everyone
//! else's reach it through the same ordered path — and each shard's room writes
//! the event to its local clients.
//!
//! ```text
//!  client ─line─► Chat::line_received ─► "NAME says LINE\r\n" (one Bytes)
//!                   └─► mesh.broadcast ─► every shard's room ─► write_bytes to each client
//! ```
//!
//! Wire behaviour: on connect the client gets the three welcome lines and everyone
//! else `NAME has joined the party.`; the name defaults to the peer's host;
//! `/NAME new` tells everyone `OLD changed name to NEW`; `/EXIT` closes; leaving
//! tells everyone else `NAME has disconnected.`; any other line goes to everyone,
//! the sender included, as `NAME says LINE`. Lines end with CRLF.
//!
//! Order: each client sees every other client's lines in the order that client sent
//! them. Lines of different clients may interleave differently for different
//! clients on different shards (see `docs/architecture.md`, "Cross-core messaging").
//! Who is "everyone" is decided where the event is delivered, not where it was said:
//! a client that connects while an event is still on its way to its shard gets it,
//! although it was said before the client arrived (in Twisted's single process the
//! announcement reaches exactly the clients present at that moment).
//!
//! A client that stops reading only grows its own output buffer, which the engine
//! caps (`ServerBuilder::max_output_buffer`): past the cap it is aborted, and the
//! others are not slowed down, since a room never waits on a client.
//!
//! # Across processes
//! With a bus ([`ChatBus`], `weft serve chat --bus redis://HOST:PORT/ROOM`), shard
//! 0's room also hands every local event to a [`Bridge`], which publishes it to
//! the other processes, and puts their lines on this process's mesh marked
//! remote, so each reaches every local client once and is never published again
//! (see [`crate::bus`]).
//!
//! Input is split by the shared
//! [`LineOnlyDecoder`], with Twisted's
//! `LineOnlyReceiver` rules (CRLF, 16 384-byte limit, nothing after a close).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use bytes::Bytes;

use crate::address::Address;
use crate::bus::{Bridge, BusStats, BusUrl};
use crate::factory::Factory;
use crate::mesh::{Mesh, MeshEndpoint};
use crate::protocol::Protocol;
use crate::protocols::line::LineEvent;
use crate::protocols::line_only::LineOnlyDecoder;
use crate::reason::Reason;
use crate::transport::{Transport, TransportHandle};

/// Twisted's `LineOnlyReceiver.MAX_LENGTH`: a longer line closes the connection.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16_384;

/// The lines a new client is greeted with.
pub const WELCOME: &[u8] = b"Welcome to my chat server.\r\n\
Send '/NAME [new name]' to change your name.\r\n\
Send '/EXIT' to quit.\r\n";

/// The mesh type the chat rooms talk over.
pub type ChatMesh = Mesh<ChatEvent>;

/// A client, named across shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientId {
    shard: usize,
    local: u64,
}

/// One line for every client of every room, except perhaps one.
#[derive(Debug, Clone)]
pub struct ChatEvent {
    skip: Option<ClientId>,
    line: Bytes,
    /// It came from another process over the bus: not to be published again.
    remote: bool,
}

impl ChatEvent {
    /// Returns the line as sent to clients, CRLF included.
    pub fn line(&self) -> &Bytes {
        &self.line
    }
}

/// One shard's room: its local clients and its end of the mesh.
struct Room {
    shard: usize,
    endpoint: MeshEndpoint<ChatEvent>,
    clients: RefCell<Vec<(u64, TransportHandle)>>,
    next_id: Cell<u64>,
    /// The bus, on shard 0 of a room that has one.
    bridge: Option<Rc<Bridge>>,
}

impl Room {
    /// Writes `event` to every local client it is meant for, and hands a local
    /// event to the bus (shard 0 only: every event reaches shard 0 once).
    fn deliver(&self, event: &ChatEvent) {
        if let (Some(bridge), false) = (&self.bridge, event.remote) {
            bridge.publish(&event.line);
        }
        for (id, handle) in self.clients.borrow().iter() {
            let me = ClientId {
                shard: self.shard,
                local: *id,
            };
            if event.skip != Some(me) {
                handle.write_bytes(event.line.clone());
            }
        }
    }

    /// Sends `parts` and CRLF, as one line, to every client (but `skip`).
    fn announce(&self, skip: Option<u64>, parts: &[&[u8]]) {
        let len = parts.iter().map(|p| p.len()).sum::<usize>() + 2;
        let mut line = Vec::with_capacity(len);
        for p in parts {
            line.extend_from_slice(p);
        }
        line.extend_from_slice(b"\r\n");
        let event = ChatEvent {
            skip: skip.map(|local| ClientId {
                shard: self.shard,
                local,
            }),
            line: Bytes::from(line),
            remote: false,
        };
        if let Err(e) = self.endpoint.broadcast(event) {
            // Only at shutdown: the room is closing and so is every client.
            tracing::debug!(shard = self.shard, "chat line not sent: {e}");
        }
    }

    fn remove(&self, id: u64) {
        let mut clients = self.clients.borrow_mut();
        if let Some(i) = clients.iter().position(|(c, _)| *c == id) {
            clients.swap_remove(i);
        }
    }
}

/// Where a chat room meets the rooms of other processes: the bus URL, the
/// outbound queue's bound in lines ([`DEFAULT_BUS_QUEUE`](crate::bus::DEFAULT_BUS_QUEUE)
/// by default), and the counters. `Send + Sync`: built before the server starts
/// and given to every shard's factory closure.
#[derive(Debug, Clone)]
pub struct ChatBus {
    /// The bus and the room.
    pub url: BusUrl,
    /// Lines that wait while the bus is down; more are dropped and counted.
    pub queue: usize,
    /// The counters (published, received, dropped).
    pub stats: Arc<BusStats>,
}

impl ChatBus {
    /// A bus for `url` with the default queue bound.
    pub fn new(url: BusUrl) -> ChatBus {
        ChatBus {
            url,
            queue: crate::bus::DEFAULT_BUS_QUEUE,
            stats: Arc::default(),
        }
    }
}

/// Builds a [`Chat`] protocol per connection; one per shard, sharing a [`ChatMesh`].
pub struct ChatFactory {
    room: Option<Rc<Room>>,
}

impl ChatFactory {
    /// Creates the factory (and room) for the shard that owns `endpoint`.
    pub fn new(endpoint: MeshEndpoint<ChatEvent>) -> ChatFactory {
        Self::with_bridge(endpoint, None)
    }

    /// Creates the factory (and room) for the shard that owns `endpoint`, bridged
    /// to other processes by `bridge` (give it on one shard only: shard 0).
    pub fn with_bridge(
        endpoint: MeshEndpoint<ChatEvent>,
        bridge: Option<Rc<Bridge>>,
    ) -> ChatFactory {
        if let Some(b) = &bridge {
            let endpoint = endpoint.clone();
            b.on_remote(move |line| {
                let event = ChatEvent {
                    skip: None,
                    line,
                    remote: true,
                };
                if let Err(e) = endpoint.broadcast(event) {
                    tracing::debug!("chat line from the bus not delivered: {e}");
                }
            });
        }
        let room = Rc::new(Room {
            shard: endpoint.shard(),
            endpoint: endpoint.clone(),
            clients: RefCell::new(Vec::new()),
            next_id: Cell::new(0),
            bridge,
        });
        // Weak: the endpoint's handler must not keep its own room alive.
        let weak: Weak<Room> = Rc::downgrade(&room);
        endpoint.on_message(move |event: ChatEvent| {
            if let Some(room) = weak.upgrade() {
                room.deliver(&event);
            }
        });
        ChatFactory { room: Some(room) }
    }

    /// Joins `mesh` as `shard` (call it inside the per-shard factory closure) and
    /// creates the factory. If the join fails (a mesh of the wrong size), the error
    /// is logged and this shard refuses chat connections rather than isolate them.
    pub fn join(mesh: &ChatMesh, shard: usize) -> ChatFactory {
        Self::join_with_bus(mesh, shard, None)
    }

    /// [`join`](Self::join), and on shard 0 connect to `bus` (when given) from
    /// this shard's reactor.
    pub fn join_with_bus(mesh: &ChatMesh, shard: usize, bus: Option<&ChatBus>) -> ChatFactory {
        match mesh.join(shard) {
            Ok(endpoint) => {
                let bridge = bus.filter(|_| shard == 0).and_then(|bus| {
                    let Some(current) = crate::runtime::shard::current() else {
                        tracing::error!("chat: the bus needs a running shard; chat stays local");
                        return None;
                    };
                    let bridge = Bridge::new(bus.url.clone(), bus.queue, Arc::clone(&bus.stats));
                    bridge.start(&current.reactor);
                    Some(bridge)
                });
                ChatFactory::with_bridge(endpoint, bridge)
            }
            Err(e) => {
                tracing::error!(
                    shard,
                    "chat cannot join its mesh: {e}; refusing connections"
                );
                ChatFactory { room: None }
            }
        }
    }
}

impl Factory for ChatFactory {
    type Protocol = Chat;

    fn build_protocol(&mut self, _peer: &Address) -> Option<Chat> {
        let room = Rc::clone(self.room.as_ref()?);
        let id = room.next_id.get();
        room.next_id.set(id + 1);
        Some(Chat {
            room,
            id,
            name: Vec::new(),
            lines: LineOnlyDecoder::with_limits(b"\r\n", DEFAULT_MAX_LINE_LENGTH),
            joined: false,
        })
    }

    fn stop_factory(&mut self) {
        if let Some(bridge) = self.room.as_ref().and_then(|r| r.bridge.as_ref()) {
            let s = bridge.stats();
            tracing::info!(
                "chat bus totals: {} lines published, {} received, {} dropped, {} malformed",
                s.published(),
                s.received(),
                s.dropped(),
                s.malformed()
            );
            bridge.stop();
        }
    }
}

/// One chat client's connection.
pub struct Chat {
    room: Rc<Room>,
    id: u64,
    name: Vec<u8>,
    lines: LineOnlyDecoder,
    joined: bool,
}

impl Chat {
    fn line_received(room: &Room, name: &mut Vec<u8>, line: &[u8], t: &mut Transport) {
        if line == b"/EXIT" {
            t.lose_connection();
        } else if let Some(new) = line.strip_prefix(b"/NAME ") {
            if new.is_empty() {
                t.write(b"Send '/NAME [new name]' to change your name.\r\n");
                return;
            }
            room.announce(None, &[name, b" changed name to ", new]);
            *name = new.to_vec();
        } else {
            room.announce(None, &[name, b" says ", line]);
        }
    }
}

impl Protocol for Chat {
    fn connection_made(&mut self, t: &mut Transport) {
        self.name = t.peer().host().into_bytes();
        self.room.clients.borrow_mut().push((self.id, t.handle()));
        self.joined = true;
        t.write(WELCOME);
        self.room
            .announce(Some(self.id), &[&self.name, b" has joined the party."]);
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        let Chat {
            room, name, lines, ..
        } = self;
        lines.feed(data);
        loop {
            if t.disconnecting() {
                // LineOnlyReceiver delivers nothing more once a close is pending.
                lines.abandon_feed();
                return;
            }
            match lines.next_event() {
                Some(LineEvent::Line(line)) => Self::line_received(room, name, line, t),
                Some(_) => {
                    // Too long (Twisted's lineLengthExceeded): close, send nothing.
                    t.lose_connection();
                    return;
                }
                None => return,
            }
        }
    }

    fn connection_lost(&mut self, _reason: Reason) {
        if self.joined {
            self.room.remove(self.id);
            self.room
                .announce(Some(self.id), &[&self.name, b" has disconnected."]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::StringTransport;
    use std::net::SocketAddr;

    struct Harness {
        factory: ChatFactory,
        endpoint: MeshEndpoint<ChatEvent>,
    }

    impl Harness {
        fn new() -> Harness {
            let mesh: ChatMesh = Mesh::new(1, 64);
            let endpoint = mesh.join_manual(0).unwrap();
            Harness {
                factory: ChatFactory::new(endpoint.clone()),
                endpoint,
            }
        }

        fn connect(&mut self, host: &str) -> (Chat, StringTransport) {
            let peer: SocketAddr = format!("{host}:40000").parse().unwrap();
            let mut t = StringTransport::with_addresses(
                Address::Tcp(peer),
                Address::Tcp("127.0.0.1:8000".parse().unwrap()),
            );
            let mut p = self.factory.build_protocol(t.peer()).unwrap();
            p.connection_made(&mut t);
            self.pump();
            (p, t)
        }

        fn pump(&self) {
            self.endpoint.run_pending();
        }
    }

    fn take(t: &mut StringTransport) -> String {
        let s = t.text();
        t.clear();
        s
    }

    #[test]
    fn connect_greets_the_client_and_tells_the_others() {
        let mut h = Harness::new();
        let (_a, mut ta) = h.connect("10.0.0.1");
        assert_eq!(take(&mut ta), String::from_utf8_lossy(WELCOME));
        let (_b, mut tb) = h.connect("10.0.0.2");
        assert_eq!(take(&mut ta), "10.0.0.2 has joined the party.\r\n");
        assert_eq!(take(&mut tb), String::from_utf8_lossy(WELCOME));
    }

    #[test]
    fn a_line_reaches_everyone_including_the_sender() {
        let mut h = Harness::new();
        let (mut a, mut ta) = h.connect("10.0.0.1");
        let (_b, mut tb) = h.connect("10.0.0.2");
        ta.clear();
        tb.clear();
        a.data_received(b"hello\r\n", &mut ta);
        h.pump();
        assert_eq!(take(&mut ta), "10.0.0.1 says hello\r\n");
        assert_eq!(take(&mut tb), "10.0.0.1 says hello\r\n");
    }

    #[test]
    fn rename_tells_everyone_and_changes_later_lines() {
        let mut h = Harness::new();
        let (mut a, mut ta) = h.connect("10.0.0.1");
        let (_b, mut tb) = h.connect("10.0.0.2");
        ta.clear();
        tb.clear();
        a.data_received(b"/NAME alice\r\nhi\r\n", &mut ta);
        h.pump();
        let want = "10.0.0.1 changed name to alice\r\nalice says hi\r\n";
        assert_eq!(take(&mut ta), want);
        assert_eq!(take(&mut tb), want);
    }

    #[test]
    fn empty_name_gets_the_hint_and_changes_nothing() {
        let mut h = Harness::new();
        let (mut a, mut ta) = h.connect("10.0.0.1");
        ta.clear();
        a.data_received(b"/NAME \r\n", &mut ta);
        h.pump();
        assert_eq!(
            take(&mut ta),
            "Send '/NAME [new name]' to change your name.\r\n"
        );
    }

    #[test]
    fn exit_closes_and_leaving_tells_the_others() {
        let mut h = Harness::new();
        let (mut a, mut ta) = h.connect("10.0.0.1");
        let (_b, mut tb) = h.connect("10.0.0.2");
        ta.clear();
        tb.clear();
        a.data_received(b"/EXIT\r\nnot delivered\r\n", &mut ta);
        assert!(ta.disconnecting());
        ta.mark_lost();
        a.connection_lost(Reason::ConnectionDone);
        h.pump();
        assert_eq!(take(&mut ta), "");
        assert_eq!(take(&mut tb), "10.0.0.1 has disconnected.\r\n");
    }

    #[test]
    fn lines_split_the_same_under_every_chunking() {
        let input = b"one\r\ntwo\rthree\n\r\nfour\r\n";
        for size in 1..=input.len() {
            let mut h = Harness::new();
            let (mut a, mut ta) = h.connect("10.0.0.1");
            ta.clear();
            crate::testing::feed_chunked(&mut a, &mut ta, input, size);
            h.pump();
            assert_eq!(
                take(&mut ta),
                "10.0.0.1 says one\r\n10.0.0.1 says two\rthree\n\r\n10.0.0.1 says four\r\n",
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn line_of_exactly_the_limit_is_delivered() {
        let mut h = Harness::new();
        let (mut a, mut ta) = h.connect("10.0.0.1");
        ta.clear();
        let mut line = vec![b'x'; DEFAULT_MAX_LINE_LENGTH];
        line.extend_from_slice(b"\r\n");
        a.data_received(&line, &mut ta);
        h.pump();
        assert!(!ta.disconnecting());
        assert_eq!(ta.value().len(), "10.0.0.1 says ".len() + line.len());
    }

    #[test]
    fn line_one_byte_over_limit_loses_connection() {
        let mut h = Harness::new();
        let (mut a, mut ta) = h.connect("10.0.0.1");
        ta.clear();
        let mut line = vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 1];
        line.extend_from_slice(b"\r\nafter\r\n");
        a.data_received(&line, &mut ta);
        h.pump();
        assert!(ta.disconnecting());
        assert_eq!(take(&mut ta), "");
    }

    #[test]
    fn unfinished_line_over_limit_loses_connection() {
        let mut h = Harness::new();
        let (mut a, mut ta) = h.connect("10.0.0.1");
        let half = vec![b'x'; DEFAULT_MAX_LINE_LENGTH / 2 + 1];
        a.data_received(&half, &mut ta);
        assert!(!ta.disconnecting());
        a.data_received(&half, &mut ta);
        assert!(ta.disconnecting());
    }
}
