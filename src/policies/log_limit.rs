//! A shard-local limit on log lines about refused and aborted connections.
//!
//! Under a flood every refusal would otherwise write a line: a [`LogLimiter`] lets
//! `burst` lines through per second and counts the rest, which the next line that
//! is let through reports as `suppressed`.

/// Lets at most `burst` events per second through.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    burst: u32,
    window_start: f64,
    in_window: u32,
    suppressed: u64,
}

/// Lines let through per second by default.
pub const DEFAULT_LOG_BURST: u32 = 10;

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(DEFAULT_LOG_BURST)
    }
}

impl LogLimiter {
    /// A limiter letting `burst` lines through per second.
    pub fn new(burst: u32) -> Self {
        LogLimiter {
            burst,
            window_start: f64::NEG_INFINITY,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// At time `now` (seconds): `Some(n)` if this line may be written, `n` being the
    /// lines suppressed since the last one written; `None` if it is suppressed.
    pub fn admit(&mut self, now: f64) -> Option<u64> {
        if now - self.window_start >= 1.0 {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst_and_the_next_window_reports_the_rest() {
        let mut l = LogLimiter::new(3);
        let let_through = (0..100).filter(|_| l.admit(5.0).is_some()).count();
        assert_eq!(let_through, 3);
        assert_eq!(l.admit(6.0), Some(97));
        assert_eq!(l.admit(6.1), Some(0));
    }
}
