//! Rate limits for the log lines a flood of peers could multiply: refused and
//! aborted connections. Each shard keeps one [`LogLimit`] per kind of line; it lets
//! [`LINES_PER_WINDOW`] lines through per [`WINDOW`] and counts the rest, and the
//! first line of the next window says how many were left out. Nothing is lost from
//! the counters (`ShardStats` counts every refusal and abort); only the log is
//! thinned.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Lines of one kind a shard logs per window before it holds the rest back.
pub(crate) const LINES_PER_WINDOW: u32 = 10;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it; `suppressed` lines of its kind were left out since the last one.
    Log { suppressed: u64 },
    /// Leave it out (it is counted).
    Suppress,
}

/// One kind of line's budget on one shard (shard-local: `Cell`s, no lock).
#[derive(Debug)]
pub(crate) struct LogLimit {
    window_start: Cell<Option<Instant>>,
    in_window: Cell<u32>,
    suppressed: Cell<u64>,
}

impl LogLimit {
    pub(crate) const fn new() -> LogLimit {
        LogLimit {
            window_start: Cell::new(None),
            in_window: Cell::new(0),
            suppressed: Cell::new(0),
        }
    }

    /// Decides about a line at `now`.
    pub(crate) fn check(&self, now: Instant) -> Verdict {
        let fresh = match self.window_start.get() {
            Some(start) => now.saturating_duration_since(start) >= WINDOW,
            None => true,
        };
        if fresh {
            self.window_start.set(Some(now));
            self.in_window.set(0);
        }
        if self.in_window.get() >= LINES_PER_WINDOW {
            self.suppressed.set(self.suppressed.get() + 1);
            return Verdict::Suppress;
        }
        self.in_window.set(self.in_window.get() + 1);
        Verdict::Log {
            suppressed: self.suppressed.replace(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_window_s_worth_then_reports_what_it_left_out() {
        let l = LogLimit::new();
        let t0 = Instant::now();
        for _ in 0..LINES_PER_WINDOW {
            assert_eq!(l.check(t0), Verdict::Log { suppressed: 0 });
        }
        for _ in 0..25 {
            assert_eq!(l.check(t0 + Duration::from_millis(500)), Verdict::Suppress);
        }
        assert_eq!(l.check(t0 + WINDOW), Verdict::Log { suppressed: 25 });
        assert_eq!(l.check(t0 + WINDOW), Verdict::Log { suppressed: 0 });
    }

    #[test]
    fn a_trickle_is_never_held_back() {
        let l = LogLimit::new();
        let t0 = Instant::now();
        for i in 0..100u32 {
            let at = t0 + WINDOW * i;
            assert_eq!(l.check(at), Verdict::Log { suppressed: 0 });
        }
    }
}
