//! Shard-to-shard messages: broadcast, send to one shard, ask every shard.
//!
//! Files: `inboxes.rs` (the shared part: one bounded inbox and its flags per
//! shard), `handle.rs` ([`Mesh`], the `Send + Sync` handle, and [`MeshStats`]),
//! `local.rs` (a joined shard's outboxes, handlers, asks and shutdown barrier; its
//! delivery runs as the shard's mailbox), `endpoint.rs` ([`MeshEndpoint`]),
//! `ask.rs` (the [`AskAll`] future).
//!
//! Each shard's factory sees only its own connections (reference A15). When
//! shard-local code needs the others — a chat line for every client, a global
//! connection count — it sends a message through a [`Mesh`]: one bounded inbox per
//! shard, a shard-local outbox per sender, and a doorbell that wakes a parked
//! receiver.
//!
//! ```text
//!  Mesh::new(shards, capacity)            (before start; Send + Sync, clonable)
//!    └─ in each shard's factory closure: mesh.join(shard) ─► MeshEndpoint (shard-local)
//!
//!  endpoint.broadcast(m) ─► for each shard s: outbox[s] empty? ─► try_send ─► inbox[s]
//!                                              │ full, or outbox not empty  │ ring doorbell
//!                                              ▼                            ▼
//!                                     outbox[s] (ordered, shard-local)   delivery task on s:
//!                                     moved on when s makes room         handler(m), in order
//! ```
//!
//! # Order
//! Messages from one sender shard to one receiver shard are delivered in the order
//! sent (asks and replies included). There is no order across senders: two shards
//! broadcasting at once may be seen in different orders by different shards. This
//! is the deliberate difference from single-threaded Twisted, where one reactor
//! gives every event one total order.
//!
//! # A full inbox: back-pressure, never a silent drop
//! Inboxes are bounded (`capacity` messages each, preallocated). When a receiver's
//! inbox is full, the message waits in the sender's shard-local outbox, behind
//! anything already waiting for that receiver, and is moved on when the receiver
//! drains (the receiver rings the sender's doorbell). Nothing is dropped and
//! per-sender order holds. The cost of a slow receiver is memory on the *sender*,
//! visible as [`MeshEndpoint::backlog`] and counted in [`MeshStats::deferred`]; a
//! sender that must bound it checks `backlog()` and slows its own producers.
//! [`Mesh::post`], for threads outside the server, has no outbox: it returns
//! [`MeshError::Full`] and the caller keeps the message.
//!
//! # Cost
//! A message is one `try_send` into a preallocated array channel and, on the
//! receiver, one `try_recv` and one call of the handler: no allocation (the payload
//! should be [`bytes::Bytes`], so a broadcast clones a reference count per shard).
//! The doorbell costs one fence and one load while the receiver is busy; only a
//! message that finds it parked pays for a cross-thread wake.
//!
//! # Shutdown
//! A graceful stop runs a flush barrier on every joined shard before any connection
//! is closed: the shard refuses new sends ([`MeshError::Closed`]), moves its whole
//! outbox on, waits until every joined shard has done the same, then delivers
//! everything left in its inbox. So every message accepted before the stop reaches
//! its handlers, and what they write reaches connected clients as the connections
//! drain. The barrier is bounded by the server's drain timeout; past it, what is
//! still waiting is dropped with a logged count. Asks still unanswered at the stop
//! resolve with [`MeshError::Closed`].
//!
//! # Examples
//! ```no_run
//! use weft::mesh::Mesh;
//! # use weft::{Address, Factory, Protocol, Transport};
//! # struct P;
//! # impl Protocol for P { fn data_received(&mut self, _: &[u8], _: &mut Transport) {} }
//! # struct F(weft::mesh::MeshEndpoint<u64>);
//! # impl Factory for F { type Protocol = P;
//! #   fn build_protocol(&mut self, _: &Address) -> Option<P> { Some(P) } }
//! let builder = weft::Server::builder().cores(2);
//! let mesh: Mesh<u64> = Mesh::new(builder.shard_count(), 1024);
//! let server = builder
//!     .listen("tcp:0", move |shard| {
//!         let endpoint = mesh.join(shard).expect("one join per shard");
//!         endpoint.on_message(move |n| println!("shard {shard} got {n}"));
//!         F(endpoint)
//!     })
//!     .start()
//!     .expect("listening");
//! # server.shutdown().unwrap();
//! ```

use std::fmt;

mod ask;
mod endpoint;
mod handle;
mod inboxes;
mod local;
#[cfg(test)]
mod tests;

pub use ask::AskAll;
pub use endpoint::MeshEndpoint;
pub use handle::{Mesh, MeshStats};
#[allow(unused_imports)]
use {inboxes::*, local::*};

/// The inbox capacity `weft serve chat` uses: messages per shard's inbox.
pub const DEFAULT_INBOX_CAPACITY: usize = 4096;

/// Why a mesh operation did not happen. The message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshError {
    /// The shard index is not in this mesh.
    NoSuchShard {
        /// The index given.
        shard: usize,
        /// The number of shards in the mesh.
        shards: usize,
    },
    /// This shard has already joined the mesh (one endpoint per shard).
    AlreadyJoined {
        /// The shard.
        shard: usize,
    },
    /// `join` was called on a thread that runs no weft shard (use `join_manual`).
    NotOnShard,
    /// The mesh is shutting down: new messages are refused.
    Closed,
    /// The receiver's inbox is full ([`Mesh::post`] only; endpoints queue instead).
    Full {
        /// The receiving shard.
        shard: usize,
    },
    /// A shard asked by [`MeshEndpoint::ask_all`] has no responder set.
    NoResponder {
        /// The shard without a responder.
        shard: usize,
    },
}

impl fmt::Display for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeshError::NoSuchShard { shard, shards } => {
                write!(f, "no shard {shard} in a mesh of {shards}")
            }
            MeshError::AlreadyJoined { shard } => write!(f, "shard {shard} already joined"),
            MeshError::NotOnShard => f.write_str("this thread runs no weft shard"),
            MeshError::Closed => f.write_str("the mesh is shutting down"),
            MeshError::Full { shard } => write!(f, "the inbox of shard {shard} is full"),
            MeshError::NoResponder { shard } => write!(f, "shard {shard} answers no asks"),
        }
    }
}

impl std::error::Error for MeshError {}
