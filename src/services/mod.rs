//! The built-in services `weft serve` runs (Twisted's `twisted.protocols.wire` and the
//! classic example servers).
