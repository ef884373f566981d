//! The built-in services `weft serve` runs (Twisted's `twisted.protocols.wire` and
//! `twisted.protocols.policies`), usable from the library as well.

pub mod chat;
pub mod limits;
pub mod wire;
