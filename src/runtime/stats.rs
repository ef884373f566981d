//! The counters a shard publishes, and its summary at the end.
//!
//! Each counter has a single writer (its shard) that updates it with a plain load
//! and store, so the hot path pays no atomic read-modify-write and touches no line
//! another core writes; readers (a metrics scrape, `ServerHandle::stats`) see values
//! at most one turn old.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::reason::Reason;

/// Counters one shard publishes for other threads to read.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) closed_done: AtomicU64,
    pub(crate) closed_lost: AtomicU64,
    pub(crate) closed_aborted: AtomicU64,
    pub(crate) closed_output_limit: AtomicU64,
    pub(crate) closed_shutdown: AtomicU64,
    pub(crate) closed_protocol_failure: AtomicU64,
    pub(crate) output_buffered: AtomicU64,
    pub(crate) pauses: AtomicU64,
    pub(crate) budget_aborts: AtomicU64,
    pub(crate) turns: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) longest_turn_ns: AtomicU64,
    pub(crate) ring_submitted: AtomicU64,
    pub(crate) ring_completed: AtomicU64,
    pub(crate) ring_enters: AtomicU64,
    pub(crate) ring_no_buffers: AtomicU64,
    pub(crate) stashed_bytes: AtomicU64,
    pub(crate) direct_sends: AtomicU64,
    /// Turns by duration: `turn_buckets[i]` counts the turns that took at most
    /// `TURN_BUCKETS_NS[i]` and more than the bound before; the last, longer ones.
    pub(crate) turn_buckets: [AtomicU64; TURN_BUCKETS_NS.len() + 1],
    pub(crate) turn_ns_total: AtomicU64,
    pub(crate) timers_fired: AtomicU64,
    pub(crate) tasks_polled: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) datagrams_truncated: AtomicU64,
    pub(crate) datagrams_dropped: AtomicU64,
    pub(crate) datagram_errors: AtomicU64,
    pub(crate) datagrams_gso: AtomicU64,
}

/// The upper bounds of the turn-duration histogram's buckets, in nanoseconds (a
/// last bucket holds the longer turns). A turn is the loop's work between two
/// sleeps or polls of the ring; the shard's sleep is not part of it.
pub const TURN_BUCKETS_NS: [u64; 14] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    1_000_000_000,
];

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> u64 {
                self.$name.load(Ordering::Relaxed)
            }
        )*
    };
}

impl ShardStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn set(counter: &AtomicU64, v: u64) {
        counter.store(v, Ordering::Relaxed);
    }

    /// Counts one turn of the loop that took `ns` nanoseconds.
    pub(crate) fn turn_took(&self, ns: u64) {
        let i = TURN_BUCKETS_NS.partition_point(|&b| b < ns);
        Self::add(&self.turn_buckets[i], 1);
        Self::add(&self.turn_ns_total, ns);
    }

    /// Returns the turns by duration: one count per bound of [`TURN_BUCKETS_NS`]
    /// (turns that took at most that long and more than the bound before), then
    /// the longer ones. Not cumulative.
    pub fn turns_by_duration(&self) -> [u64; TURN_BUCKETS_NS.len() + 1] {
        std::array::from_fn(|i| self.turn_buckets[i].load(Ordering::Relaxed))
    }

    /// Returns the time all turns took, in nanoseconds.
    pub fn turn_ns_total(&self) -> u64 {
        self.turn_ns_total.load(Ordering::Relaxed)
    }

    /// Counts a connection's end under its reason.
    pub(crate) fn closed(&self, reason: &Reason) {
        let c = match reason {
            Reason::ConnectionDone => &self.closed_done,
            Reason::ConnectionLost(_) => &self.closed_lost,
            Reason::ConnectionAborted => &self.closed_aborted,
            Reason::OutputLimitExceeded { .. } => &self.closed_output_limit,
            Reason::Shutdown { .. } => &self.closed_shutdown,
            Reason::ProtocolFailure(_) => &self.closed_protocol_failure,
        };
        Self::add(c, 1);
    }

    getters! {
        /// Returns the connections this shard accepted (refused ones included).
        accepted,
        /// Returns the connections the factory refused (`build_protocol` gave `None`).
        refused,
        /// Returns the connections open on this shard now.
        open,
        /// Returns the bytes read from peers.
        bytes_in,
        /// Returns the bytes the kernel took for sending.
        bytes_out,
        /// Returns the connections that ended cleanly (`ConnectionDone`).
        closed_done,
        /// Returns the connections that ended with an error (`ConnectionLost`).
        closed_lost,
        /// Returns the connections that were aborted (`ConnectionAborted`).
        closed_aborted,
        /// Returns the connections ended by the output cap or the shard's budget.
        closed_output_limit,
        /// Returns the connections ended by a server shutdown.
        closed_shutdown,
        /// Returns the connections ended by a panicking callback.
        closed_protocol_failure,
        /// Returns the bytes of output held for peers now (all connections).
        output_buffered,
        /// Returns how many times a connection's output passed its high watermark.
        pauses,
        /// Returns the connections aborted because the shard's output budget was spent.
        budget_aborts,
        /// Returns the turns of the shard's loop.
        turns,
        /// Returns the times the shard slept in its ring.
        parks,
        /// Returns the times another thread woke the shard through its doorbell.
        wakeups,
        /// Returns the longest turn of the loop so far, in nanoseconds (a stall detector).
        longest_turn_ns,
        /// Returns the SQEs the shard submitted.
        ring_submitted,
        /// Returns the CQEs the shard reaped.
        ring_completed,
        /// Returns the shard's io_uring_enter calls.
        ring_enters,
        /// Returns the receives that ended because the buffer pool ran dry.
        ring_no_buffers,
        /// Returns the bytes copied out of the receive pool for connections that
        /// stopped reading with buffers in hand (so they do not keep the pool).
        stashed_bytes,
        /// Returns the sends made straight to a socket, outside the ring (a lone
        /// connection's output at the end of a turn).
        direct_sends,
        /// Returns the `call_later` calls that ran.
        timers_fired,
        /// Returns the polls of spawned tasks.
        tasks_polled,
        /// Returns the panics caught in user code (callbacks, timers, tasks, handlers).
        panics,
        /// Returns the datagrams received by this shard's datagram ports.
        datagrams_in,
        /// Returns the datagrams the kernel took for sending.
        datagrams_out,
        /// Returns the datagrams cut to their port's `maxPacketSize`.
        datagrams_truncated,
        /// Returns the datagrams a protocol wrote while its port's outbox was full.
        datagrams_dropped,
        /// Returns the datagram receives and sends that failed (other than a
        /// refusal reported to `connection_refused`).
        datagram_errors,
        /// Returns the datagrams sent as segments of a GSO send (counted in
        /// `datagrams_out` too).
        datagrams_gso,
    }
}

/// A shard's totals at the end of its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSummary {
    /// The shard's index.
    pub shard: usize,
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes read from peers.
    pub bytes_in: u64,
    /// Bytes sent to peers.
    pub bytes_out: u64,
    /// Datagrams received by its datagram ports.
    pub datagrams_in: u64,
}

impl fmt::Display for ShardSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shard {}: {} connections accepted, {} bytes in, {} bytes out",
            self.shard, self.accepted, self.bytes_in, self.bytes_out
        )?;
        if self.datagrams_in > 0 {
            write!(f, ", {} datagrams in", self.datagrams_in)?;
        }
        Ok(())
    }
}
