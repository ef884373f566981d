//! Per-shard TLS counters: handshakes started, finished, failed, timed out, refused.
//!
//! One shard writes them (a plain load and store, no read-modify-write: the same
//! single-writer rule as `ShardStats`); any thread may read them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The TLS counters of one shard's wrapping factory.
#[derive(Debug, Default)]
pub struct TlsStats {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    refused: AtomicU64,
    in_progress: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl TlsStats {
    pub(crate) fn on_start(&self) {
        bump(&self.started);
        bump(&self.in_progress);
    }

    /// Ends a handshake that `on_start` counted; `how` says how it ended.
    pub(crate) fn on_end(&self, how: HandshakeEnd) {
        let n = self.in_progress.load(Ordering::Relaxed);
        self.in_progress
            .store(n.saturating_sub(1), Ordering::Relaxed);
        bump(match how {
            HandshakeEnd::Completed => &self.completed,
            HandshakeEnd::Failed => &self.failed,
            HandshakeEnd::TimedOut => &self.timed_out,
        });
    }

    pub(crate) fn on_refused(&self) {
        bump(&self.refused);
    }

    /// Returns the handshakes begun.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Returns the handshakes that completed.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Returns the handshakes that failed (a TLS error, or the connection closed first).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Returns the handshakes ended by the handshake timeout.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Returns the connections refused because the shard's cap on handshakes in
    /// progress was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Returns the handshakes in progress now.
    pub fn in_progress(&self) -> u64 {
        self.in_progress.load(Ordering::Relaxed)
    }
}

/// How a handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeEnd {
    Completed,
    Failed,
    TimedOut,
}
