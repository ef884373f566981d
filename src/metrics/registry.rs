//! User metrics: per-shard counters and histograms (`histogram.rs`) a library user
//! registers by name and help, and the meshes whose counters join the page.
//!
//! A [`Counter`] is a family with one cell per shard. The shard that owns a cell is
//! its only writer: [`ShardCounter::inc`] is a plain load and store on an
//! `AtomicU64` (no read-modify-write, no lock, no line another core writes), the
//! same rule as [`ShardStats`](crate::ShardStats). The exporter's thread reads the
//! cells with relaxed loads; a value is at most one increment old.
//!
//! The registry's lock is taken only when something is registered, when a shard
//! asks for its cell (once, when its factory is built) and by a scrape: never on
//! the hot path.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::mesh::{Mesh, MeshStats};
use crate::metrics::histogram::{valid_bounds, Histogram, HistogramFamily};

/// Why a metric could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsError {
    /// The name is not a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    InvalidName(String),
    /// A metric of this name is already registered (or is one of weft's own).
    Duplicate(String),
    /// A histogram's bucket bounds are empty, not finite or not increasing.
    InvalidBuckets(String),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::InvalidName(n) => write!(
                f,
                "{n:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
            ),
            MetricsError::Duplicate(n) => write!(f, "a metric named {n:?} is already registered"),
            MetricsError::InvalidBuckets(n) => write!(
                f,
                "histogram {n:?}: bucket bounds must be finite, strictly increasing, and at least one"
            ),
        }
    }
}

impl std::error::Error for MetricsError {}

/// The user metrics and meshes one exporter renders.
///
/// Clones share the same metrics: give one to
/// [`ServerBuilder::metrics_registry`](crate::ServerBuilder::metrics_registry) and
/// keep another to register counters from.
///
/// # Examples
/// ```
/// use weft::metrics::Registry;
///
/// let registry = Registry::new();
/// let lines = registry.counter("myapp_lines_total", "Lines received.").unwrap();
/// // In the factory closure, on shard `index`:
/// let on_shard_0 = lines.shard(0);
/// on_shard_0.inc();
/// assert_eq!(lines.total(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    counters: Vec<Arc<Family>>,
    histograms: Vec<Arc<HistogramFamily>>,
    meshes: Vec<MeshSource>,
}

impl Inner {
    fn taken(&self, name: &str) -> bool {
        crate::metrics::render::is_reserved(name)
            || self.counters.iter().any(|c| c.name == name)
            || self.histograms.iter().any(|h| h.name == name)
    }
}

/// A mesh's counters, type-erased: the exporter does not know the message type.
pub(crate) struct MeshSource {
    pub(crate) name: String,
    pub(crate) stats: Box<dyn Fn() -> Vec<MeshStats> + Send + Sync>,
}

pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) help: String,
    /// Shard index → that shard's cell, created when the shard first asks.
    pub(crate) cells: Mutex<BTreeMap<usize, Arc<AtomicU64>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Registry")
            .field(
                "counters",
                &inner
                    .counters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "histograms",
                &inner
                    .histograms
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("meshes", &inner.meshes.len())
            .finish()
    }
}

/// Whether `name` is a Prometheus metric name.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Registry {
    /// Creates an empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the lists whole: keep serving them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a per-shard counter rendered as `name{shard="N"}` with `help` as
    /// its `# HELP` line. By Prometheus' conventions a counter's name ends in
    /// `_total`.
    ///
    /// # Errors
    /// [`MetricsError::InvalidName`] if `name` is not a metric name,
    /// [`MetricsError::Duplicate`] if it is taken (by a user metric, or by one of
    /// weft's own, which all start with `weft_` or `process_`).
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricsError> {
        if !valid_name(name) {
            return Err(MetricsError::InvalidName(name.to_string()));
        }
        let mut inner = self.lock();
        if inner.taken(name) {
            return Err(MetricsError::Duplicate(name.to_string()));
        }
        let family = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            cells: Mutex::new(BTreeMap::new()),
        });
        inner.counters.push(Arc::clone(&family));
        Ok(Counter { family })
    }

    /// Registers a per-shard histogram with upper bucket bounds `bounds` (an
    /// implicit `+Inf` bucket follows), rendered as `name_bucket{shard,le}`,
    /// `name_sum{shard}` and `name_count{shard}`. By Prometheus' conventions a
    /// duration histogram is in seconds and named `…_seconds`.
    ///
    /// # Errors
    /// As [`counter`](Self::counter), and [`MetricsError::InvalidBuckets`] if the
    /// bounds are empty, not finite or not strictly increasing.
    ///
    /// # Examples
    /// ```
    /// use weft::metrics::Registry;
    ///
    /// let registry = Registry::new();
    /// let h = registry
    ///     .histogram("myapp_request_seconds", "Time to answer.", &[0.001, 0.01, 0.1])
    ///     .unwrap();
    /// h.shard(0).observe(0.004);
    /// assert_eq!(h.count(), 1);
    /// ```
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        bounds: &[f64],
    ) -> Result<Histogram, MetricsError> {
        if !valid_name(name) {
            return Err(MetricsError::InvalidName(name.to_string()));
        }
        if !valid_bounds(bounds) {
            return Err(MetricsError::InvalidBuckets(name.to_string()));
        }
        let mut inner = self.lock();
        if inner.taken(name) {
            return Err(MetricsError::Duplicate(name.to_string()));
        }
        let family = Arc::new(HistogramFamily::new(name, help, bounds.to_vec()));
        inner.histograms.push(Arc::clone(&family));
        Ok(Histogram { family })
    }

    /// Adds a mesh's per-shard counters to the page, labelled `mesh="name"`
    /// (`weft_mesh_messages_sent_total{mesh,shard}` and the others listed in
    /// docs/operations.md).
    pub fn mesh<M: Send + 'static>(&self, name: &str, mesh: &Mesh<M>) {
        let mesh = mesh.clone();
        self.lock().meshes.push(MeshSource {
            name: name.to_string(),
            stats: Box::new(move || mesh.stats()),
        });
    }

    /// Calls `f` with the registered counters, histograms and meshes (for
    /// rendering).
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&[Arc<Family>], &[Arc<HistogramFamily>], &[MeshSource]) -> R,
    ) -> R {
        let inner = self.lock();
        f(&inner.counters, &inner.histograms, &inner.meshes)
    }
}

/// A registered per-shard counter; [`Counter::shard`] hands a shard its writer.
#[derive(Clone)]
pub struct Counter {
    family: Arc<Family>,
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("name", &self.family.name)
            .field("total", &self.total())
            .finish()
    }
}

impl Counter {
    /// Returns the writer of shard `index`'s cell, creating the cell (starting at
    /// 0) the first time. Call it on that shard, in the factory closure, and clone
    /// the result into its protocols: each cell must have one writing thread.
    pub fn shard(&self, index: usize) -> ShardCounter {
        let mut cells = self.family.cells.lock().unwrap_or_else(|e| e.into_inner());
        ShardCounter {
            cell: Arc::clone(cells.entry(index).or_default()),
            _one_thread: PhantomData,
        }
    }

    /// Returns the sum over every shard (read from any thread).
    pub fn total(&self) -> u64 {
        let cells = self.family.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells
            .values()
            .fold(0u64, |sum, c| sum.wrapping_add(c.load(Ordering::Relaxed)))
    }
}

/// One shard's cell of a [`Counter`]: its only writer.
///
/// Neither `Send` nor `Sync`, so it stays on the shard that asked for it; clones
/// share the cell and belong on that same shard.
#[derive(Clone)]
pub struct ShardCounter {
    cell: Arc<AtomicU64>,
    /// Single writer: a plain load and store is only correct from one thread.
    _one_thread: PhantomData<*const ()>,
}

impl fmt::Debug for ShardCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ShardCounter").field(&self.get()).finish()
    }
}

impl ShardCounter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n` (wrapping at `u64::MAX`).
    #[inline]
    pub fn add(&self, n: u64) {
        // One writer: no read-modify-write needed, and none is paid for.
        self.cell.store(
            self.cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Returns this shard's count.
    pub fn get(&self) -> u64 {
        self.cell.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_sums_its_shards() {
        let r = Registry::new();
        let c = r.counter("app_events_total", "Events.").unwrap();
        c.shard(0).add(3);
        c.shard(1).inc();
        c.shard(0).inc();
        assert_eq!(c.total(), 5);
        assert_eq!(c.shard(0).get(), 4);
    }

    #[test]
    fn bad_and_duplicate_names_are_refused() {
        let r = Registry::new();
        assert_eq!(
            r.counter("9lives", "").unwrap_err(),
            MetricsError::InvalidName("9lives".into())
        );
        assert!(r.counter("a-b", "").is_err());
        r.counter("app_x_total", "").unwrap();
        assert_eq!(
            r.counter("app_x_total", "").unwrap_err(),
            MetricsError::Duplicate("app_x_total".into())
        );
        assert!(matches!(
            r.counter("weft_connections_accepted_total", ""),
            Err(MetricsError::Duplicate(_))
        ));
    }
}
