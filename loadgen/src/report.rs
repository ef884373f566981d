//! Human-readable output: the live line each second and the final report, plus the checks
//! that warn when the generator, not the server, may have set the numbers.

use hdrhistogram::Histogram;

use crate::config::Mode;
use crate::runner::Outcome;
use crate::stats::{Counters, Metrics};

/// Formats nanoseconds as a short latency (`850ns`, `45.2us`, `1.25ms`, `2.00s`).
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", v / 1e6)
    } else {
        format!("{:.2}s", v / 1e9)
    }
}

fn fmt_errors(c: &Counters) -> String {
    if c.errors.is_empty() {
        return "0".into();
    }
    c.errors
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Returns the live line of one interval.
pub fn live_line(
    index: u64,
    length_ns: u64,
    m: &Metrics,
    c: &Counters,
    open: u64,
    warmup: bool,
) -> String {
    let secs = (length_ns as f64 / 1e9).max(1e-9);
    let h = &m.response;
    let (p50, p99, max) = if h.is_empty() {
        ("-".into(), "-".into(), "-".into())
    } else {
        (
            fmt_ns(h.value_at_quantile(0.5)),
            fmt_ns(h.value_at_quantile(0.99)),
            fmt_ns(h.max()),
        )
    };
    let mut line = format!(
        "[{:>4}s] {:>10.0}/s  p50 {p50:>8}  p99 {p99:>8}  max {max:>8}  errors {}  open {open}",
        index + 1,
        c.requests as f64 / secs,
        fmt_errors(c)
    );
    if c.deliveries > 0 {
        line.push_str(&format!("  deliveries {:.0}/s", c.deliveries as f64 / secs));
    }
    if c.queued > 0 {
        line.push_str(&format!("  queued {}", c.queued));
    }
    if warmup {
        line.push_str("  (warm-up)");
    }
    line
}

/// Percentiles reported everywhere, as (label, quantile).
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
];

/// Returns a histogram's value at `q` (its maximum at 1.0), or 0 when empty.
pub fn at(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else if q >= 1.0 {
        h.max()
    } else {
        h.value_at_quantile(q)
    }
}

/// Returns the offered rate, the achieved rate and the generator's CPU utilisation checks
/// as warnings.
pub fn warnings(o: &Outcome) -> Vec<String> {
    let mut w = Vec::new();
    let achieved = o.counts.requests as f64 / o.measured_s;
    if let Some(rate) = o.cfg.rate {
        if achieved < 0.99 * rate {
            w.push(format!(
                "achieved {achieved:.0}/s is under 99% of the offered {rate:.0}/s: the generator \
                 or the server could not keep up ({} requests queued for a free slot; see lag)",
                o.counts.queued
            ));
        }
    }
    let lag99 = at(&o.metrics.lag, 0.99);
    let resp99 = at(&o.metrics.response, 0.99);
    if o.cfg.rate.is_some() && lag99 > 50_000 && lag99 * 10 > resp99 {
        w.push(format!(
            "the generator's own lag (p99 {}) is large against the response time (p99 {}): \
             loadgen itself is a bottleneck; give it more threads or cores",
            fmt_ns(lag99),
            fmt_ns(resp99)
        ));
    }
    let wall = o.wall_ns.max(1) as f64;
    let util = o.cpu_ns as f64 / (wall * o.cfg.threads as f64);
    if util > 0.9 {
        w.push(format!(
            "loadgen threads were busy {:.0}% of the time: the generator may be the bottleneck; \
             give it more threads or cores",
            util * 100.0
        ));
    }
    w
}

fn what(mode: Mode) -> &'static str {
    match mode {
        Mode::Echo => "requests",
        Mode::Connect => "connects",
        Mode::Chat => "lines",
        Mode::Udp => "datagrams",
    }
}

/// Returns the final report.
pub fn final_report(o: &Outcome) -> String {
    let c = &o.cfg;
    let mut s = String::new();
    let model = match c.rate {
        Some(r) => format!("open loop at {r}/s"),
        None => format!("closed loop, depth {}", c.depth),
    };
    s.push_str(&format!(
        "loadgen {} {}: {} connections, {} threads, {} bytes, {:?} framing, {model}\n",
        c.mode.name(),
        c.target,
        c.connections,
        c.threads,
        c.size,
        c.framing
    ));
    s.push_str(&format!(
        "  {} {} in {:.2}s: {:.0}/s\n",
        o.counts.requests,
        what(c.mode),
        o.measured_s,
        o.counts.requests as f64 / o.measured_s
    ));
    if c.mode == Mode::Chat {
        s.push_str(&format!(
            "  {} deliveries: {:.0}/s\n",
            o.counts.deliveries,
            o.counts.deliveries as f64 / o.measured_s
        ));
    }
    let row = |name: &str, h: &Histogram<u64>| {
        let mut r = format!("  {name:<9}");
        for (label, q) in PERCENTILES {
            r.push_str(&format!(" {label} {:>9}", fmt_ns(at(h, q))));
        }
        r.push('\n');
        r
    };
    let label = match c.mode {
        Mode::Echo | Mode::Udp => "response",
        Mode::Connect => "connect",
        Mode::Chat => "delivery",
    };
    s.push_str(&row(label, &o.metrics.response));
    s.push_str(&row("service", &o.metrics.service));
    if c.rate.is_some() {
        s.push_str(&row("lag", &o.metrics.lag));
        s.push_str(&format!("  queued for a free slot: {}\n", o.counts.queued));
    }
    let cpu_per = o.cpu_ns as f64 / 1e3 / (o.counts.requests.max(1) as f64);
    s.push_str(&format!(
        "  loadgen cpu: {:.2}s ({:.2}us per {})\n",
        o.cpu_ns as f64 / 1e9,
        cpu_per,
        what(c.mode).trim_end_matches('s')
    ));
    s.push_str(&format!("  errors: {}\n", fmt_errors(&o.counts)));
    for w in &o.warnings {
        s.push_str(&format!("  WARNING: {w}\n"));
    }
    s
}
