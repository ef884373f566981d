//! The one crypto provider weft's TLS uses: rustls on *ring*.
//!
//! Why ring and not aws-lc-rs (the issue asks for the choice by build time and
//! handshake cost):
//!
//! * **Build time.** aws-lc-rs compiles AWS-LC, a large C/assembly library, through
//!   `aws-lc-sys` (a cmake-or-cc build of several hundred C files); ring compiles a
//!   few dozen C and assembly files. On this project's 2-core CI box, where a full
//!   release build already takes about 13 minutes, the difference is minutes per
//!   clean build (figures in `docs/benchmarks.md`, "TLS provider").
//! * **Handshake cost.** What a TLS 1.3 server handshake spends is one X25519 key
//!   exchange and one ECDSA P-256 (or Ed25519/RSA) signature. ring's X25519 and
//!   P-256 are hand-written assembly on x86-64 and aarch64, in the same class as
//!   AWS-LC's; aws-lc-rs is ahead mainly on RSA signing and post-quantum hybrids
//!   (X25519MLKEM768), neither of which weft's defaults need.
//!
//! Every config weft builds takes its provider from [`provider`], so switching is a
//! one-line change here plus the Cargo feature.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// Returns the crypto provider every weft TLS config is built with (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
