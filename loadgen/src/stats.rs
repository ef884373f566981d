//! Per-thread measurement: three latency histograms and the counters that go with them.
//!
//! Each event-loop thread owns its [`Recorder`]; nothing is shared or locked while a run is
//! under way. Histograms are merged by *adding* them ([`Metrics::add`]): percentiles of the
//! merged histogram are the percentiles of all samples, which averaging per-thread
//! percentiles would not give.
//!
//! Three times are recorded per request, in nanoseconds:
//!
//! ```text
//!   intended ──lag──► sent ──service──► done
//!   └────────────── response ────────────┘
//! ```
//!
//! In a closed loop a request is intended when it is sent, so lag is zero and response
//! equals service. In an open loop the intended time comes from the schedule, and response
//! time is what a user of the server would see; service time alone hides every stall
//! behind which requests queued (coordinated omission).
//!
//! Histograms start with a one-minute range and resize themselves beyond it: no sample is
//! ever clamped. The initial range is allocated up front so that steady-state recording
//! does not allocate.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::clock::Nanos;

/// Significant decimal digits kept by every histogram (0.1 % resolution).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Returns an empty, auto-resizing nanosecond histogram pre-sized to one minute.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 60_000_000_000, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

fn record(h: &mut Histogram<u64>, v: u64) {
    // With auto-resize on, recording fails only for values beyond u64 range, which a
    // nanosecond difference of two u64 clock readings cannot reach.
    let _ = h.record(v);
}

/// The three latency histograms of a run or an interval.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Intended send → response complete.
    pub response: Histogram<u64>,
    /// Actual send → response complete.
    pub service: Histogram<u64>,
    /// Intended send → actual send: the generator's own lateness.
    pub lag: Histogram<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            response: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
        }
    }
}

impl Metrics {
    /// Adds every sample of `other` to these histograms.
    pub fn add(&mut self, other: &Metrics) {
        // Adding auto-resizing histograms of the same precision cannot fail.
        let _ = self.response.add(&other.response);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
    }

    /// Empties the histograms, keeping their allocation.
    pub fn reset(&mut self) {
        self.response.reset();
        self.service.reset();
        self.lag.reset();
    }
}

/// Counts kept beside the histograms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Requests completed (echo), connects completed (connect), lines sent (chat).
    pub requests: u64,
    /// Chat lines delivered to a client (each line is delivered to every client).
    pub deliveries: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Open-loop requests that found the connection at its depth limit and waited in the
    /// generator's queue (their response time includes that wait).
    pub queued: u64,
    /// Errors by kind (`mismatch`, `connect:ECONNREFUSED`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
}

impl Counters {
    /// Adds `other` into these counters.
    pub fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.deliveries += other.deliveries;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.queued += other.queued;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// Returns the total number of errors of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One thread's measurements: the whole measured phase and the current one-second interval.
#[derive(Debug)]
pub struct Recorder {
    /// Samples whose intended time falls in the measured phase (after the warm-up).
    pub total: Metrics,
    /// Counters of the measured phase (errors are counted whenever they happen).
    pub counts: Counters,
    /// Samples of the current interval, warm-up included.
    pub interval: Metrics,
    /// Counters of the current interval.
    pub interval_counts: Counters,
    /// Connections currently open.
    pub open_connections: u64,
    measure_from: Nanos,
}

impl Recorder {
    /// Returns an empty recorder that counts samples intended at or after `measure_from`.
    pub fn new(measure_from: Nanos) -> Self {
        Recorder {
            total: Metrics::default(),
            counts: Counters::default(),
            interval: Metrics::default(),
            interval_counts: Counters::default(),
            open_connections: 0,
            measure_from,
        }
    }

    /// Returns whether a request intended at `intended` belongs to the measured phase.
    #[inline]
    pub fn measured(&self, intended: Nanos) -> bool {
        intended >= self.measure_from
    }

    /// Records one completed request; `own_lag` says whether `sent - intended` is the
    /// generator's own lateness (false for a request that waited for a free slot, whose
    /// wait is the server's doing and shows in `response` and `queued` instead).
    #[inline]
    pub fn complete(&mut self, intended: Nanos, sent: Nanos, done: Nanos, own_lag: bool) {
        let response = done.saturating_sub(intended);
        let service = done.saturating_sub(sent);
        let lag = sent.saturating_sub(intended);
        record(&mut self.interval.response, response);
        record(&mut self.interval.service, service);
        if own_lag {
            record(&mut self.interval.lag, lag);
        }
        self.interval_counts.requests += 1;
        if self.measured(intended) {
            record(&mut self.total.response, response);
            record(&mut self.total.service, service);
            if own_lag {
                record(&mut self.total.lag, lag);
            }
            self.counts.requests += 1;
        }
    }

    /// Records one chat delivery's latency (the delivery is counted by the caller).
    #[inline]
    pub fn complete_delivery(&mut self, intended: Nanos, sent: Nanos, done: Nanos) {
        let response = done.saturating_sub(intended);
        let service = done.saturating_sub(sent);
        record(&mut self.interval.response, response);
        record(&mut self.interval.service, service);
        if self.measured(intended) {
            record(&mut self.total.response, response);
            record(&mut self.total.service, service);
        }
    }

    /// Records a request that never completed: its response time is at least its age.
    pub fn unfinished(&mut self, intended: Nanos, now: Nanos) {
        let age = now.saturating_sub(intended);
        record(&mut self.interval.response, age);
        if self.measured(intended) {
            record(&mut self.total.response, age);
        }
    }

    /// Counts one error of `kind`, in the run and in the current interval.
    pub fn error(&mut self, kind: &str) {
        *self.counts.errors.entry(kind.to_string()).or_insert(0) += 1;
        *self
            .interval_counts
            .errors
            .entry(kind.to_string())
            .or_insert(0) += 1;
    }

    /// Counts bytes sent.
    #[inline]
    pub fn sent_bytes(&mut self, n: usize) {
        self.interval_counts.bytes_sent += n as u64;
    }

    /// Counts bytes received.
    #[inline]
    pub fn received_bytes(&mut self, n: usize) {
        self.interval_counts.bytes_received += n as u64;
    }

    /// Takes the current interval's measurements, leaving empty ones (one allocation per
    /// interval: the clone handed to the coordinator).
    pub fn take_interval(&mut self) -> (Metrics, Counters) {
        let m = self.interval.clone();
        self.interval.reset();
        let c = std::mem::take(&mut self.interval_counts);
        self.counts.bytes_sent += c.bytes_sent;
        self.counts.bytes_received += c.bytes_received;
        (m, c)
    }
}

/// One thread's report for one interval of the live output and the interval log.
#[derive(Debug)]
pub struct IntervalReport {
    /// Interval number: second `index` since the start.
    pub index: u64,
    /// Start of the interval, nanoseconds since the run's start.
    pub start: Nanos,
    /// End of the interval.
    pub end: Nanos,
    /// The interval's histograms.
    pub metrics: Metrics,
    /// The interval's counters.
    pub counts: Counters,
    /// Connections open at the end of the interval.
    pub open_connections: u64,
}

/// What a thread hands back at the end of a run.
#[derive(Debug)]
pub struct ThreadResult {
    /// Histograms of the measured phase.
    pub metrics: Metrics,
    /// Counters of the measured phase.
    pub counts: Counters,
    /// CPU time the thread used between the start and its end, in nanoseconds.
    pub cpu_ns: u64,
    /// When the thread finished, nanoseconds since the start.
    pub end: Nanos,
}
