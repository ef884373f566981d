//! The open-loop schedule does not drift: tick k is where k intervals say it is.

use loadgen::schedule::Schedule;

#[test]
fn schedule_does_not_drift_over_ten_million_ticks() {
    // Rates whose interval is not a whole number of nanoseconds.
    for rate in [3.0, 7.0, 33_333.0, 123_456.789] {
        let s = Schedule::new(rate, 5).unwrap();
        let rate_milli = (rate * 1000.0_f64).round() as u128;
        let mut prev = s.intended(0);
        assert_eq!(prev, 5);
        let interval = 1e9 / (rate_milli as f64 / 1000.0);
        for k in 1..10_000_000u64 {
            let t = s.intended(k);
            let gap = (t - prev) as f64;
            assert!(
                (gap - interval).abs() <= 1.0,
                "rate {rate}: gap {gap} at tick {k}, interval {interval}"
            );
            prev = t;
        }
        // The last tick is exactly k * 1e12 / rate_milli after the phase (floor).
        let k = 10_000_000u128 - 1;
        let exact = 5 + (k * 1_000_000_000_000 / rate_milli) as u64;
        assert_eq!(prev, exact, "rate {rate}");
        // An accumulating schedule with a rounded interval would be off by far more.
        let rounded = (1e9 / rate).round() as u64;
        let naive = 5 + rounded * k as u64;
        if (1e9 / rate).fract() > 0.01 {
            assert!(naive.abs_diff(exact) > 100_000, "rate {rate}");
        }
    }
}

#[test]
fn ticks_due_counts_exactly_the_ticks_at_or_before_now() {
    let s = Schedule::new(123_456.789, 17).unwrap();
    for k in (0..10_000_000u64).step_by(99_991) {
        let t = s.intended(k);
        assert_eq!(s.ticks_due(t), k + 1);
        assert_eq!(s.ticks_due(t.saturating_sub(1)), if t > 17 { k } else { 0 });
    }
}
