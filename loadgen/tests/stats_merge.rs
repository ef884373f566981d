//! Per-thread histograms merged by adding equal one histogram that saw every sample.

use loadgen::stats::{new_histogram, Metrics, Recorder};

/// A small deterministic generator (xorshift) so the test needs no dependency.
fn samples(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Latencies from 1 us to beyond the pre-sized minute, heavy tailed.
            let base = 1_000 + (x % 1_000_000);
            if x % 1000 == 7 {
                base * 100_000
            } else {
                base
            }
        })
        .collect()
}

#[test]
fn merging_per_thread_histograms_equals_recording_into_one() {
    let threads: Vec<Vec<u64>> = (1..=4).map(|t| samples(t * 7919, 50_000)).collect();
    let mut one = Recorder::new(0);
    let mut merged = Metrics::default();
    for values in &threads {
        let mut rec = Recorder::new(0);
        for &v in values {
            rec.complete(0, v / 2, v, true);
            one.complete(0, v / 2, v, true);
        }
        merged.add(&rec.total);
    }
    assert_eq!(merged.response, one.total.response);
    assert_eq!(merged.service, one.total.service);
    assert_eq!(merged.lag, one.total.lag);
    assert_eq!(merged.response.len(), 200_000);
    for q in [0.5, 0.9, 0.99, 0.999, 0.9999] {
        assert_eq!(
            merged.response.value_at_quantile(q),
            one.total.response.value_at_quantile(q),
            "quantile {q}"
        );
    }
    assert_eq!(merged.response.max(), one.total.response.max());
}

#[test]
fn values_beyond_the_initial_range_are_not_clamped() {
    let mut h = new_histogram();
    let hour = 3_600_000_000_000u64;
    h.record(hour).unwrap();
    assert!(h.max() >= hour, "max {} was clamped", h.max());
}
