//! A bus between weft processes: the mesh's broadcast carried to other processes
//! over Redis pub/sub, so that chat rooms in several processes (or machines) form
//! one room.
//!
//! ```text
//!  process A                                   Redis                 process B
//!  client line ─► mesh broadcast ─► every shard of A
//!                  └─ shard 0: Bridge::publish ─► PUBLISH ROOM "tagA line" ─►
//!                                               ─► message ─► shard 0 of B: Bridge
//!                     (tag is A's own? ignore)      ─► mesh broadcast (marked remote)
//!                                                    ─► every shard of B, once
//! ```
//!
//! * One process holds two connections to Redis, both from shard 0: a subscriber
//!   (`SUBSCRIBE ROOM`) and a publisher (`PUBLISH`), since a subscribed Redis
//!   connection may not publish. Both are ordinary weft client connections
//!   ([`crate::client`]) under a [`ReconnectingClientFactory`](crate::client::ReconnectingClientFactory).
//! * Each payload starts with the sending process's tag (16 hex digits and a
//!   space). Redis sends a publisher's messages back to it when it is subscribed
//!   too; the tag is how a process skips its own lines, which its mesh already
//!   delivered.
//! * Lines that arrive from the bus go on the mesh marked remote, so shard 0 does
//!   not publish them again.
//!
//! # When the bus is down
//! Local delivery never waits on the bus. Lines for the bus wait in a bounded
//! outbound queue ([`DEFAULT_BUS_QUEUE`] lines) while the publisher is not
//! connected, and are sent when it is again; past the bound, and when the
//! connected publisher already has [`MAX_BUS_BUFFERED`] bytes unsent, a line is
//! dropped for the other processes and counted in [`BusStats::dropped`]. Both
//! connections reconnect on Twisted's back-off (1 s, ×e, jittered) capped at
//! [`BUS_MAX_RETRY_DELAY`], and the subscriber subscribes again.
//!
//! # Why Redis (and not NATS)
//! Debian ships `redis-server`, most operators already run it, and RESP is small
//! enough to write as a sans-IO codec ([`crate::protocols::resp`]) on a weft client
//! connection, so no second runtime (a tokio-based client) is needed. Redis
//! pub/sub is at-most-once, like the mesh's behaviour across a restart: a process
//! that is disconnected misses what was said meanwhile.

mod bridge;
mod redis;
mod url;

pub use bridge::{Bridge, BusStats};
pub use url::{BusUrl, BusUrlError};

use std::time::Duration;

/// Lines that wait for the publisher while it is not connected.
pub const DEFAULT_BUS_QUEUE: usize = 1024;

/// Unsent bytes past which a connected publisher is considered stuck and new lines
/// are dropped for the bus.
pub const MAX_BUS_BUFFERED: usize = 1024 * 1024;

/// The longest wait between two reconnection attempts to the bus.
pub const BUS_MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
