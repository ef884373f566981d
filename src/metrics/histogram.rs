//! User histograms: a family with one set of bucket cells per shard, rendered as a
//! Prometheus histogram (`_bucket{le}`, `_sum`, `_count`) labelled by shard.
//!
//! As with counters, the shard that owns a set of cells is its only writer:
//! [`ShardHistogram::observe`] finds the bucket (a binary search over the bounds)
//! and does a plain load and store on two `AtomicU64`s (the bucket and the sum's
//! bits), with no lock and no line another core writes. The exporter reads them
//! with relaxed loads; the count it prints is the sum of the buckets it read, so a
//! page is always a consistent histogram.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One shard's cells: a count per bucket (the last for values above every bound)
/// and the sum of the values observed, as `f64` bits.
#[derive(Debug)]
pub(crate) struct Cells {
    pub(crate) buckets: Box<[AtomicU64]>,
    pub(crate) sum_bits: AtomicU64,
}

impl Cells {
    fn new(buckets: usize) -> Cells {
        Cells {
            buckets: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// The bucket counts (not cumulative) and the sum, read from any thread.
    pub(crate) fn read(&self) -> (Vec<u64>, f64) {
        let counts = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        (
            counts,
            f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        )
    }
}

pub(crate) struct HistogramFamily {
    pub(crate) name: String,
    pub(crate) help: String,
    /// Upper bounds, strictly increasing and finite.
    pub(crate) bounds: Vec<f64>,
    /// Shard index → that shard's cells, created when the shard first asks.
    pub(crate) cells: Mutex<BTreeMap<usize, Arc<Cells>>>,
}

impl HistogramFamily {
    pub(crate) fn new(name: &str, help: &str, bounds: Vec<f64>) -> HistogramFamily {
        HistogramFamily {
            name: name.to_string(),
            help: help.to_string(),
            bounds,
            cells: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Whether `bounds` can be a histogram's: not empty, finite, strictly increasing.
pub(crate) fn valid_bounds(bounds: &[f64]) -> bool {
    !bounds.is_empty()
        && bounds.iter().all(|b| b.is_finite())
        && bounds.windows(2).all(|w| w[0] < w[1])
}

/// A registered per-shard histogram; [`Histogram::shard`] hands a shard its writer.
#[derive(Clone)]
pub struct Histogram {
    pub(crate) family: Arc<HistogramFamily>,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("name", &self.family.name)
            .field("bounds", &self.family.bounds)
            .finish()
    }
}

impl Histogram {
    /// Returns the writer of shard `index`'s cells, creating them the first time.
    /// Call it on that shard (in the factory closure) and clone the result into its
    /// protocols: each shard's cells must have one writing thread.
    pub fn shard(&self, index: usize) -> ShardHistogram {
        let mut cells = self.family.cells.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.family.bounds.len() + 1;
        ShardHistogram {
            cells: Arc::clone(
                cells
                    .entry(index)
                    .or_insert_with(|| Arc::new(Cells::new(n))),
            ),
            family: Arc::clone(&self.family),
            _one_thread: PhantomData,
        }
    }

    /// Returns the observations over every shard (read from any thread).
    pub fn count(&self) -> u64 {
        let cells = self.family.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.values().map(|c| c.read().0.iter().sum::<u64>()).sum()
    }
}

/// One shard's cells of a [`Histogram`]: their only writer.
///
/// Neither `Send` nor `Sync`, so it stays on the shard that asked for it.
#[derive(Clone)]
pub struct ShardHistogram {
    cells: Arc<Cells>,
    family: Arc<HistogramFamily>,
    _one_thread: PhantomData<*const ()>,
}

impl fmt::Debug for ShardHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardHistogram")
            .field("name", &self.family.name)
            .finish()
    }
}

impl ShardHistogram {
    /// Records one observation of `v` (in the histogram's unit, seconds for a
    /// `_seconds` histogram). A value equal to a bound counts in that bound's
    /// bucket, as Prometheus' `le` says; NaN is ignored.
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.family.bounds.partition_point(|&b| b < v);
        let bucket = &self.cells.buckets[i];
        // One writer: plain loads and stores, no read-modify-write.
        bucket.store(bucket.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        let sum = f64::from_bits(self.cells.sum_bits.load(Ordering::Relaxed)) + v;
        self.cells.sum_bits.store(sum.to_bits(), Ordering::Relaxed);
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(bounds: &[f64]) -> Histogram {
        Histogram {
            family: Arc::new(HistogramFamily::new("h", "H.", bounds.to_vec())),
        }
    }

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = histogram(&[1.0, 2.0]);
        let s = h.shard(0);
        for v in [0.5, 1.0, 1.5, 3.0, f64::NAN] {
            s.observe(v);
        }
        let (counts, sum) = s.cells.read();
        assert_eq!(counts, vec![2, 1, 1]);
        assert_eq!(sum, 6.0);
        h.shard(1).observe(0.1);
        assert_eq!(h.count(), 5);
    }

    #[test]
    fn bounds_must_be_finite_and_increasing() {
        assert!(valid_bounds(&[0.001, 0.01, 1.0]));
        assert!(!valid_bounds(&[]));
        assert!(!valid_bounds(&[1.0, 1.0]));
        assert!(!valid_bounds(&[2.0, 1.0]));
        assert!(!valid_bounds(&[1.0, f64::INFINITY]));
    }
}
