//! The JSON report (`--json FILE`); its schema is documented in `docs/loadgen.md`.
//!
//! Latencies are in microseconds (floating point, nanosecond resolution); every rate is
//! divided by the measured phase's length, `duration_s`. The field `schema` names the
//! version of the layout: fields are only ever added within a version.

use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::report::at;
use crate::runner::Outcome;

/// The schema name written in every report.
pub const SCHEMA: &str = "weft-loadgen/1";

/// Fields every report has, for the schema test and the docs.
pub const REQUIRED_FIELDS: [&str; 24] = [
    "schema",
    "mode",
    "target",
    "framing",
    "connections",
    "depth",
    "size",
    "rate",
    "threads",
    "warmup_s",
    "duration_s",
    "requests",
    "throughput_rps",
    "deliveries",
    "deliveries_per_s",
    "queued",
    "latency_us",
    "service_us",
    "lag_us",
    "percentiles_us",
    "errors",
    "error_count",
    "loadgen",
    "warnings",
];

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// Returns the summary of a histogram: `p50`, `p90`, `p99`, `p999`, `max`, `min`, `mean`,
/// `count`, in microseconds.
pub fn summary(h: &Histogram<u64>) -> Value {
    let mean = if h.is_empty() { 0.0 } else { h.mean() / 1e3 };
    json!({
        "p50": us(at(h, 0.50)),
        "p90": us(at(h, 0.90)),
        "p99": us(at(h, 0.99)),
        "p999": us(at(h, 0.999)),
        "max": us(at(h, 1.0)),
        "min": if h.is_empty() { 0.0 } else { us(h.min()) },
        "mean": mean,
        "count": h.len(),
    })
}

/// Returns the percentile curve of a histogram as `[[percentile, microseconds], ...]`,
/// five points per halving of the tail (HdrHistogram's percentile distribution).
pub fn curve(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Array(Vec::new());
    }
    let mut pts: Vec<Value> = h
        .iter_quantiles(5)
        .map(|v| json!([v.quantile_iterated_to() * 100.0, us(v.value_iterated_to())]))
        .collect();
    pts.dedup();
    Value::Array(pts)
}

/// Returns the report as a JSON value.
pub fn to_value(o: &Outcome) -> Value {
    let c = &o.cfg;
    let errors: Map<String, Value> = o
        .counts
        .errors
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let requests = o.counts.requests;
    json!({
        "schema": SCHEMA,
        "mode": c.mode.name(),
        "target": c.target,
        "framing": format!("{:?}", c.framing).to_lowercase(),
        "connections": c.connections,
        "depth": c.depth,
        "size": c.size,
        "rate": c.rate,
        "threads": c.threads,
        "warmup_s": c.warmup.as_secs_f64(),
        "duration_s": o.measured_s,
        "requests": requests,
        "throughput_rps": requests as f64 / o.measured_s,
        "deliveries": o.counts.deliveries,
        "deliveries_per_s": o.counts.deliveries as f64 / o.measured_s,
        "bytes_sent": o.counts.bytes_sent,
        "bytes_received": o.counts.bytes_received,
        "queued": o.counts.queued,
        "latency_us": summary(&o.metrics.response),
        "service_us": summary(&o.metrics.service),
        "lag_us": summary(&o.metrics.lag),
        "percentiles_us": curve(&o.metrics.response),
        "errors": errors,
        "error_count": o.counts.error_count(),
        "loadgen": {
            "cpu_s": o.cpu_ns as f64 / 1e9,
            "cpu_us_per_request": o.cpu_ns as f64 / 1e3 / requests.max(1) as f64,
            "cpu_utilisation": o.cpu_ns as f64 / (o.wall_ns.max(1) as f64 * c.threads as f64),
            "cpus": c.cpus,
        },
        "warnings": o.warnings,
        "started_unix_s": o.started_unix_s,
    })
}

/// Writes the report to `path`.
///
/// # Errors
/// A message naming the file when it cannot be written.
pub fn write(o: &Outcome, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&to_value(o))
        .map_err(|e| format!("cannot encode the JSON report: {e}"))?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}
