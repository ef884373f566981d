//! A token bucket: bytes per second with one second of burst.
//!
//! Twisted's `ThrottlingFactory` checks once a second and pauses every connection
//! for `bytes/limit - 1` seconds; a bucket per connection gives the same long-run
//! rate without a shared timer: each read (or write) spends tokens, and a deficit
//! says how long to pause until the bucket is back at zero.

use std::time::Duration;

/// A rate limit of `rate` bytes per second, holding at most one second of tokens.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use weft::policies::RateLimit;
/// let mut r = RateLimit::new(1000, 0.0);
/// assert_eq!(r.spend(600, 0.0), None);            // within the first second's tokens
/// assert_eq!(r.spend(900, 0.0), Some(Duration::from_millis(500))); // 500 bytes short
/// assert_eq!(r.spend(0, 0.5), None);              // refilled by then
/// ```
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    last: f64,
}

impl RateLimit {
    /// A full bucket for `bytes_per_sec` at time `now` (seconds).
    pub fn new(bytes_per_sec: u64, now: f64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimit {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Spends `n` bytes at time `now`; returns how long to pause if the bucket is in
    /// deficit (the time it takes to refill to zero).
    pub fn spend(&mut self, n: usize, now: f64) -> Option<Duration> {
        let elapsed = (now - self.last).max(0.0);
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate) - n as f64;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}
