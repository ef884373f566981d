//! The one crypto provider weft's TLS uses: rustls on *ring*.
//!
//! Why ring and not aws-lc-rs (the issue asks for the choice by build time and
//! handshake cost; figures in `docs/benchmarks.md`, "TLS provider", measured on
//! this project's 2-core box under load):
//!
//! * **Build time.** A clean debug build spends about 13 s on ring (6 s of it its C
//!   and assembly) and about 42 s on aws-lc-rs (35 s of it compiling AWS-LC in
//!   `aws-lc-sys`'s build script), on every clean CI build, where a full release
//!   build already takes about 13 minutes.
//! * **Handshake cost.** Server CPU per full TLS 1.3 handshake with an ECDSA P-256
//!   certificate, in memory (`benches/tls_provider`): ring 88–150 µs, aws-lc-rs
//!   74–148 µs over six interleaved runs; aws-lc-rs is about 10–15 % cheaper. That
//!   is smaller than the per-connection engine cost the same runs showed, and the
//!   issue's handshake target is relative to tokio-rustls on the *same* provider.
//!
//! So ring: a third of the build cost for a handshake within 15 %.
//! Every config weft builds takes its provider from [`provider`], so switching is a
//! one-line change here plus the Cargo feature.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// Returns the crypto provider every weft TLS config is built with (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
