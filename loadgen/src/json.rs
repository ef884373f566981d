//! The JSON report (`--json FILE`): [`Report`] is its schema, documented field by field
//! in `docs/loadgen.md`.
//!
//! Latencies are in microseconds (floating point, nanosecond resolution); every rate is
//! divided by the measured phase's length, `duration_s`. The field `schema` names the
//! version of the layout: fields are only ever added within a version. The types derive
//! both `Serialize` and `Deserialize` (with `deny_unknown_fields`), so a report written by
//! this version reads back into the same value and `loadgen plot` reads reports through
//! the same type.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::report::at;
use crate::runner::Outcome;

/// The schema name written in every report.
pub const SCHEMA: &str = "weft-loadgen/1";

/// One run's report: what was asked, what was measured, and what the generator cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// `echo`, `connect` or `chat`.
    pub mode: String,
    /// `HOST:PORT` as given.
    pub target: String,
    /// `raw`, `line`, `lineonly`, `netstring`, `int8`, `int16` or `int32`.
    pub framing: String,
    /// Connections (echo, chat) or connects in flight (connect), as configured.
    pub connections: usize,
    /// Requests in flight per connection, as configured.
    pub depth: usize,
    /// Payload bytes per request, as configured.
    pub size: usize,
    /// Event-loop threads, as configured.
    pub threads: usize,
    /// The offered rate (open loop), `null` for closed loop.
    pub rate: Option<f64>,
    /// The warm-up's length in seconds.
    pub warmup_s: f64,
    /// The measured phase's length in seconds: the divisor of every rate.
    pub duration_s: f64,
    /// Completed requests (echo), connects (connect), lines sent (chat) in the measured phase.
    pub requests: u64,
    /// `requests / duration_s`.
    pub throughput_rps: f64,
    /// Chat deliveries (0 in other modes).
    pub deliveries: u64,
    /// `deliveries / duration_s`.
    pub deliveries_per_s: f64,
    /// Payload bytes sent, whole run.
    pub bytes_sent: u64,
    /// Payload bytes received, whole run.
    pub bytes_received: u64,
    /// Open-loop requests that waited for a free slot.
    pub queued: u64,
    /// Response time (intended send to response complete).
    pub latency_us: Summary,
    /// Service time (actual send to response complete).
    pub service_us: Summary,
    /// The generator's own lag (intended send to actual send).
    pub lag_us: Summary,
    /// The response-time percentile curve, `[percentile, us]` pairs, five points per
    /// halving of the tail.
    pub percentiles_us: Vec<(f64, f64)>,
    /// Error counts by kind (`mismatch`, `timeout`, `connect:ECONNREFUSED`, ...).
    pub errors: BTreeMap<String, u64>,
    /// The sum of `errors`.
    pub error_count: u64,
    /// What the generator cost.
    pub loadgen: Cost,
    /// Validity warnings (the generator as the bottleneck, a missed rate, ...).
    pub warnings: Vec<String>,
    /// Unix time of the start, in seconds.
    pub started_unix_s: f64,
}

/// A histogram's summary, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
    /// Smallest value (0 when empty).
    pub min: f64,
    /// Mean (0 when empty).
    pub mean: f64,
    /// Samples.
    pub count: u64,
}

/// The generator's own cost over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// CPU seconds of all loadgen threads.
    pub cpu_s: f64,
    /// CPU microseconds per completed request.
    pub cpu_us_per_request: f64,
    /// CPU time / (wall time × threads).
    pub cpu_utilisation: f64,
    /// The cores the threads were pinned to, `null` when unpinned.
    pub cpus: Option<Vec<usize>>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// Returns the summary of a histogram, in microseconds.
pub fn summary(h: &Histogram<u64>) -> Summary {
    Summary {
        p50: us(at(h, 0.50)),
        p90: us(at(h, 0.90)),
        p99: us(at(h, 0.99)),
        p999: us(at(h, 0.999)),
        max: us(at(h, 1.0)),
        min: if h.is_empty() { 0.0 } else { us(h.min()) },
        mean: if h.is_empty() { 0.0 } else { h.mean() / 1e3 },
        count: h.len(),
    }
}

/// Returns the percentile curve of a histogram as `(percentile, microseconds)` points,
/// five per halving of the tail (HdrHistogram's percentile distribution).
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to() * 100.0, us(v.value_iterated_to())))
        .collect();
    pts.dedup();
    pts
}

impl Report {
    /// Returns the report of a finished run.
    pub fn from_outcome(o: &Outcome) -> Report {
        let c = &o.cfg;
        let requests = o.counts.requests;
        Report {
            schema: SCHEMA.to_string(),
            mode: c.mode.name().to_string(),
            target: c.target.clone(),
            framing: format!("{:?}", c.framing).to_lowercase(),
            connections: c.connections,
            depth: c.depth,
            size: c.size,
            threads: c.threads,
            rate: c.rate,
            warmup_s: c.warmup.as_secs_f64(),
            duration_s: o.measured_s,
            requests,
            throughput_rps: requests as f64 / o.measured_s,
            deliveries: o.counts.deliveries,
            deliveries_per_s: o.counts.deliveries as f64 / o.measured_s,
            bytes_sent: o.counts.bytes_sent,
            bytes_received: o.counts.bytes_received,
            queued: o.counts.queued,
            latency_us: summary(&o.metrics.response),
            service_us: summary(&o.metrics.service),
            lag_us: summary(&o.metrics.lag),
            percentiles_us: curve(&o.metrics.response),
            errors: o.counts.errors.clone(),
            error_count: o.counts.error_count(),
            loadgen: Cost {
                cpu_s: o.cpu_ns as f64 / 1e9,
                cpu_us_per_request: o.cpu_ns as f64 / 1e3 / requests.max(1) as f64,
                cpu_utilisation: o.cpu_ns as f64 / (o.wall_ns.max(1) as f64 * c.threads as f64),
                cpus: c.cpus.clone(),
            },
            warnings: o.warnings.clone(),
            started_unix_s: o.started_unix_s,
        }
    }

    /// Reads a report written by [`write()`].
    ///
    /// # Errors
    /// A message naming the file when it cannot be read, is not JSON, or does not have
    /// this schema's fields.
    pub fn read(path: &Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a {SCHEMA} report: {e}", path.display()))
    }
}

/// Writes the report of a finished run to `path`.
///
/// # Errors
/// A message naming the file when it cannot be written.
pub fn write(o: &Outcome, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&Report::from_outcome(o))
        .map_err(|e| format!("cannot encode the JSON report: {e}"))?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}
