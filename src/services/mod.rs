//! The built-in services `weft serve` runs (Twisted's `twisted.protocols.wire` and
//! `twisted.protocols.policies`), usable from the library as well.

pub mod chat;
pub mod datagram_wire;
pub mod finger;
pub mod framed;
pub mod limits;
pub mod logger;
pub mod wire;
