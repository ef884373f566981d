//! The open-loop schedule: when request `k` is meant to be sent.
//!
//! An open-loop (constant-throughput) generator must never let the server decide when the
//! next request goes out, or a stall hides itself (coordinated omission). Each request
//! therefore has an *intended* send time fixed in advance, and its response time is measured
//! from that instant, however late it actually left.
//!
//! The intended time of tick `k` is computed directly from `k`, never by adding an
//! interval to the previous tick: `phase + k * 1e9 / rate` in 128-bit integer arithmetic.
//! Accumulating a rounded interval (`t += 1e9 / rate`) drifts by the rounding error times
//! the number of ticks; this form is exact to within one nanosecond at any `k`
//! (see `tests/schedule_no_drift.rs`).

use crate::clock::Nanos;

/// A fixed-rate schedule of intended send times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Offset of tick 0 from the run's start, in nanoseconds.
    phase: Nanos,
    /// The rate as a rational number of ticks per `per_ns` nanoseconds, so that
    /// fractional rates (`--rate 0.5`) stay exact enough: ticks = rate_milli / 1000 per second.
    rate_milli: u128,
}

impl Schedule {
    /// Returns a schedule of `rate` ticks per second whose tick 0 is at `phase`.
    ///
    /// The rate is kept to a thousandth of a tick per second. Returns `None` when the rate
    /// is not a positive finite number or rounds to zero.
    pub fn new(rate: f64, phase: Nanos) -> Option<Self> {
        if !rate.is_finite() || rate <= 0.0 {
            return None;
        }
        let rate_milli = (rate * 1000.0).round();
        if !(1.0..=1e18).contains(&rate_milli) {
            return None;
        }
        Some(Schedule {
            phase,
            rate_milli: rate_milli as u128,
        })
    }

    /// Returns the rate in ticks per second.
    pub fn rate(&self) -> f64 {
        self.rate_milli as f64 / 1000.0
    }

    /// Returns the intended time of tick `k`: `phase + floor(k * 1e12 / rate_milli)`.
    #[inline]
    pub fn intended(&self, k: u64) -> Nanos {
        let offset = (k as u128) * 1_000_000_000_000u128 / self.rate_milli;
        self.phase
            .saturating_add(offset.min(u64::MAX as u128) as u64)
    }

    /// Returns the number of ticks whose intended time is at or before `t`.
    pub fn ticks_due(&self, t: Nanos) -> u64 {
        if t < self.phase {
            return 0;
        }
        let elapsed = (t - self.phase) as u128;
        // Largest k with floor(k * 1e12 / r) <= elapsed, i.e. k * 1e12 < (elapsed + 1) * r,
        // plus one for tick 0.
        let k = ((elapsed + 1) * self.rate_milli - 1) / 1_000_000_000_000u128;
        (k as u64).saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_due_agrees_with_intended() {
        let s = Schedule::new(3.0, 5).unwrap();
        for k in 0..100 {
            let t = s.intended(k);
            assert_eq!(s.ticks_due(t), k + 1, "at tick {k}");
            if t > 0 {
                assert!(s.ticks_due(t - 1) <= k);
            }
        }
    }

    #[test]
    fn rejects_nonsense_rates() {
        assert!(Schedule::new(0.0, 0).is_none());
        assert!(Schedule::new(-1.0, 0).is_none());
        assert!(Schedule::new(f64::NAN, 0).is_none());
    }
}
