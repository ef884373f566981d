//! The policy settings shared by every shard, changeable while serving.
//!
//! Each setting is an atomic read once per admitted connection (its value is then
//! copied into that connection's wrapper), so a reload changes them for the
//! connections that come next and the open ones keep what they started with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::throttle::RateLimit;

/// The stored form of "no limit".
const NONE: u64 = u64::MAX;

fn store(cell: &AtomicU64, v: Option<u64>) {
    cell.store(v.unwrap_or(NONE), Ordering::Relaxed);
}

fn load(cell: &AtomicU64) -> Option<u64> {
    match cell.load(Ordering::Relaxed) {
        NONE => None,
        v => Some(v),
    }
}

/// The limits every [`PolicyFactory`](super::PolicyFactory) of a service applies;
/// `None` everywhere by default (no policy).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use weft::policies::PolicySettings;
/// let s = PolicySettings::default();
/// s.set_max_connections_per_peer(Some(5)); // Twisted's maxConnectionsPerPeer
/// s.set_idle_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(s.max_connections_per_peer(), Some(5));
/// assert_eq!(s.read_rate(), None);
/// ```
#[derive(Debug)]
pub struct PolicySettings {
    max_connections: AtomicU64,
    max_per_peer: AtomicU64,
    idle_timeout_ms: AtomicU64,
    read_rate: AtomicU64,
    write_rate: AtomicU64,
    total_read: TotalRate,
    total_write: TotalRate,
}

/// A rate shared by every connection of every shard: one bucket behind a lock,
/// charged per read (or per callback that wrote) only when the limit is set.
#[derive(Debug)]
struct TotalRate {
    rate: AtomicU64,
    bucket: Mutex<Option<RateLimit>>,
    epoch: Instant,
}

impl TotalRate {
    fn new() -> Self {
        TotalRate {
            rate: AtomicU64::new(NONE),
            bucket: Mutex::new(None),
            epoch: Instant::now(),
        }
    }

    fn set(&self, rate: Option<u64>) {
        store(&self.rate, rate);
        *self.bucket.lock().unwrap_or_else(|e| e.into_inner()) =
            rate.map(|r| RateLimit::new(r, self.epoch.elapsed().as_secs_f64()));
    }

    fn spend(&self, n: usize) -> Option<Duration> {
        let now = self.epoch.elapsed().as_secs_f64();
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|b| b.spend(n, now))
    }
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            max_connections: AtomicU64::new(NONE),
            max_per_peer: AtomicU64::new(NONE),
            idle_timeout_ms: AtomicU64::new(NONE),
            read_rate: AtomicU64::new(NONE),
            write_rate: AtomicU64::new(NONE),
            total_read: TotalRate::new(),
            total_write: TotalRate::new(),
        }
    }
}

impl PolicySettings {
    /// Caps the connections open at once across every shard
    /// (`LimitTotalConnectionsFactory.connectionLimit`).
    pub fn set_max_connections(&self, max: Option<usize>) {
        store(&self.max_connections, max.map(|m| m as u64));
    }

    /// Returns the total cap.
    pub fn max_connections(&self) -> Option<usize> {
        load(&self.max_connections).map(|m| m as usize)
    }

    /// Caps the connections open at once from one IP address, across every shard
    /// (`LimitConnectionsByPeer.maxConnectionsPerPeer`).
    pub fn set_max_connections_per_peer(&self, max: Option<usize>) {
        store(&self.max_per_peer, max.map(|m| m as u64));
    }

    /// Returns the per-peer cap.
    pub fn max_connections_per_peer(&self) -> Option<usize> {
        load(&self.max_per_peer).map(|m| m as usize)
    }

    /// Closes a connection after this long without data received or written
    /// (`TimeoutFactory(timeoutPeriod)`).
    pub fn set_idle_timeout(&self, period: Option<Duration>) {
        store(
            &self.idle_timeout_ms,
            period.map(|p| p.as_millis().min(u128::from(NONE - 1)) as u64),
        );
    }

    /// Returns the idle timeout.
    pub fn idle_timeout(&self) -> Option<Duration> {
        load(&self.idle_timeout_ms).map(Duration::from_millis)
    }

    /// Limits the bytes read per second per connection (`ThrottlingFactory.readLimit`).
    pub fn set_read_rate(&self, bytes_per_sec: Option<u64>) {
        store(&self.read_rate, bytes_per_sec);
    }

    /// Returns the read rate limit.
    pub fn read_rate(&self) -> Option<u64> {
        load(&self.read_rate)
    }

    /// Limits the bytes written per second per connection
    /// (`ThrottlingFactory.writeLimit`).
    pub fn set_write_rate(&self, bytes_per_sec: Option<u64>) {
        store(&self.write_rate, bytes_per_sec);
    }

    /// Returns the write rate limit.
    pub fn write_rate(&self) -> Option<u64> {
        load(&self.write_rate)
    }

    /// Limits the bytes read per second by every connection together, across every
    /// shard (`ThrottlingFactory.readLimit` over all its protocols). Each read is
    /// then charged to one shared bucket (a short lock): the price of a global limit,
    /// paid only when it is set.
    pub fn set_total_read_rate(&self, bytes_per_sec: Option<u64>) {
        self.total_read.set(bytes_per_sec);
    }

    /// Returns the total read rate limit.
    pub fn total_read_rate(&self) -> Option<u64> {
        load(&self.total_read.rate)
    }

    /// Limits the bytes written per second by every connection together, across
    /// every shard; past it the connections that write pause reading.
    pub fn set_total_write_rate(&self, bytes_per_sec: Option<u64>) {
        self.total_write.set(bytes_per_sec);
    }

    /// Returns the total write rate limit.
    pub fn total_write_rate(&self) -> Option<u64> {
        load(&self.total_write.rate)
    }

    /// Charges `n` bytes read to the total; returns how long to pause if over.
    pub(crate) fn spend_total_read(&self, n: usize) -> Option<Duration> {
        self.total_read.spend(n)
    }

    /// Charges `n` bytes written to the total; returns how long to pause if over.
    pub(crate) fn spend_total_write(&self, n: usize) -> Option<Duration> {
        self.total_write.spend(n)
    }
}

/// What the policies did, across every shard: one atomic add per event (a refused,
/// timed-out or throttled connection), never per message.
#[derive(Debug, Default)]
pub struct PolicyStats {
    pub(crate) refused_total: AtomicU64,
    pub(crate) refused_peer: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) throttled: AtomicU64,
}

impl PolicyStats {
    /// Connections refused by the total cap.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    /// Connections refused by the per-peer cap.
    pub fn refused_peer(&self) -> u64 {
        self.refused_peer.load(Ordering::Relaxed)
    }

    /// Connections closed by the idle timeout.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Times a connection's reading was paused to keep it to its rate.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    pub(crate) fn count(cell: &AtomicU64) {
        cell.fetch_add(1, Ordering::Relaxed);
    }
}
