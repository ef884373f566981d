//! A monotonic clock in nanoseconds since the run's common start.
//!
//! Every thread reads the same [`Instant`] chosen by the coordinator just before the start
//! barrier opens, so a timestamp taken on one thread (a chat line's send time) can be
//! compared with one taken on another (its arrival at a client on another thread).
//! `Instant::now` is `clock_gettime(CLOCK_MONOTONIC)` through the vDSO: no system call.

use std::time::Instant;

/// Nanoseconds since the run's start.
pub type Nanos = u64;

/// The shared time origin of a run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// Returns a clock whose zero is `start`.
    pub fn new(start: Instant) -> Self {
        Clock { start }
    }

    /// Returns a clock whose zero is now.
    pub fn starting_now() -> Self {
        Clock::new(Instant::now())
    }

    /// Returns the nanoseconds elapsed since the start (saturating at zero before it).
    #[inline]
    pub fn now(&self) -> Nanos {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos()
            .min(u64::MAX as u128) as u64
    }

    /// Returns the start instant.
    pub fn start(&self) -> Instant {
        self.start
    }
}
