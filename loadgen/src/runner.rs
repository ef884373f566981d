//! The coordinator: splits the run across threads, starts them together, prints the live
//! line each second, writes the interval log, and merges the threads' results.
//!
//! Threads report each second through a channel (one histogram clone per thread per
//! second); the coordinator prints a line once every thread has reported that second.
//! Final results are merged by adding histograms.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Instant, SystemTime};

use crate::clock::Nanos;
use crate::config::{Mode, RunConfig};
use crate::hlog::HlogWriter;
use crate::payload::Payload;
use crate::report;
use crate::stats::{Counters, IntervalReport, Metrics, ThreadResult};
use crate::worker::{Shared, ThreadCtx, Timeline};
use crate::{chat, connect, echo, socket, udp};

/// The merged result of a run.
#[derive(Debug)]
pub struct Outcome {
    /// What was asked.
    pub cfg: RunConfig,
    /// Histograms of the measured phase, all threads added.
    pub metrics: Metrics,
    /// Counters of the measured phase, all threads added.
    pub counts: Counters,
    /// Length of the measured phase in seconds (the divisor of every rate).
    pub measured_s: f64,
    /// CPU time of all loadgen threads during the run, in nanoseconds.
    pub cpu_ns: u64,
    /// Wall time from the start to the last thread's end, in nanoseconds.
    pub wall_ns: Nanos,
    /// Unix time of the start, in seconds.
    pub started_unix_s: f64,
    /// Warnings about the run's validity (the generator as a bottleneck, ...).
    pub warnings: Vec<String>,
}

/// Splits `total` into `parts` shares that differ by at most one.
pub fn split(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// Runs `cfg` to its end.
///
/// # Errors
/// A message when the run cannot start (unresolvable target, unframeable payload, unwritable
/// output files). Errors during the run are counted in the outcome instead.
pub fn run(cfg: RunConfig) -> Result<Outcome, String> {
    let addrs: Arc<[SocketAddr]> = socket::resolve_all(&cfg.target)?.into();
    if addrs.len() > 1 && cfg.mode != Mode::Chat {
        return Err(format!(
            "several targets ({}) are for chat only; {} drives one server",
            cfg.target,
            cfg.mode.name()
        ));
    }
    let addr = addrs[0];
    if cfg.mode == Mode::Echo {
        Payload::new(cfg.framing, &cfg.delimiter, cfg.size)?;
    }
    let mut hlog = match &cfg.hlog {
        Some(path) => Some(HlogWriter::create(path, &cfg)?),
        None => None,
    };
    let cfg = Arc::new(cfg);
    let threads = cfg.threads;
    let shares = split(cfg.connections, threads);
    let ready = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let start_cell = Arc::new(OnceLock::new());
    let shared = Arc::new(Shared {
        issuing: AtomicUsize::new(threads),
        ..Shared::default()
    });
    let (tx, rx) = mpsc::channel::<IntervalReport>();
    let mut handles = Vec::with_capacity(threads);
    let mut first = 0;
    for (i, &share) in shares.iter().enumerate() {
        let fraction = share as f64 / cfg.connections as f64;
        let ctx = ThreadCtx {
            index: i,
            cfg: Arc::clone(&cfg),
            addr,
            addrs: Arc::clone(&addrs),
            connections: share,
            first_connection: first,
            rate: cfg.rate.map(|r| r * fraction),
            // Stagger the threads' schedules across one tick of the total rate.
            phase: cfg
                .rate
                .map(|r| (i as f64 * 1e9 / r / threads as f64) as Nanos)
                .unwrap_or(0),
            quota: cfg
                .requests
                .map(|n| ((n as f64 * fraction).round() as u64).max(1)),
            cpu: cfg.cpus.as_ref().map(|c| c[i % c.len()]),
            reports: tx.clone(),
            ready: Arc::clone(&ready),
            go: Arc::clone(&go),
            start: Arc::clone(&start_cell),
            shared: Arc::clone(&shared),
        };
        first += share;
        let mode = cfg.mode;
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{i}"))
            .spawn(move || match mode {
                Mode::Echo => echo::run_thread(ctx),
                Mode::Connect => connect::run_thread(ctx),
                Mode::Chat => chat::run_thread(ctx),
                Mode::Udp => udp::run_thread(ctx),
            })
            .map_err(|e| format!("cannot spawn thread {i}: {e}"))?;
        handles.push(handle);
    }
    drop(tx);
    ready.wait();
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let _ = start_cell.set(Instant::now());
    go.wait();

    let timeline = Timeline::of(&cfg);
    // index -> (threads reported, merged metrics, merged counters, open connections)
    let mut pending: BTreeMap<u64, (usize, Metrics, Counters, u64, Nanos, Nanos)> = BTreeMap::new();
    let emit = |index: u64,
                entry: (usize, Metrics, Counters, u64, Nanos, Nanos),
                hlog: &mut Option<HlogWriter>| {
        let (_, m, c, open, start, end) = entry;
        if !cfg.quiet {
            let warm = start < timeline.warmup_end;
            eprintln!(
                "{}",
                report::live_line(index, end.saturating_sub(start), &m, &c, open, warm)
            );
        }
        if let Some(h) = hlog.as_mut() {
            if let Err(e) = h.write(&m.response, start, end) {
                eprintln!("loadgen: {e}");
            }
        }
    };
    for r in rx {
        let e = pending.entry(r.index).or_insert_with(|| {
            (
                0,
                Metrics::default(),
                Counters::default(),
                0,
                r.start,
                r.end,
            )
        });
        e.0 += 1;
        e.1.add(&r.metrics);
        e.2.add(&r.counts);
        e.3 += r.open_connections;
        e.5 = e.5.max(r.end);
        // Print every complete second in order.
        while let Some((&idx, entry)) = pending.first_key_value() {
            if entry.0 < threads {
                break;
            }
            let entry = pending.remove(&idx).unwrap_or_else(|| unreachable!());
            emit(idx, entry, &mut hlog);
        }
    }
    // Threads are done: print what is left (last partial seconds).
    while let Some((idx, entry)) = pending.pop_first() {
        emit(idx, entry, &mut hlog);
    }

    let mut metrics = Metrics::default();
    let mut counts = Counters::default();
    let mut cpu_ns = 0;
    let mut end = 0;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(ThreadResult {
                metrics: m,
                counts: c,
                cpu_ns: cpu,
                end: e,
            }) => {
                metrics.add(&m);
                counts.add(&c);
                cpu_ns += cpu;
                end = end.max(e);
            }
            Err(_) => {
                *counts
                    .errors
                    .entry(format!("thread {i} panicked"))
                    .or_insert(0) += 1;
            }
        }
    }
    let measured_s = match cfg.duration {
        Some(d) if cfg.requests.is_none() => d.as_secs_f64(),
        _ => {
            let measured_end = end.min(timeline.measure_end);
            (measured_end.saturating_sub(timeline.warmup_end)) as f64 / 1e9
        }
    }
    .max(1e-9);
    if cfg.mode == Mode::Chat {
        // Every line is delivered to every client, its sender included.
        let expected = counts.requests.saturating_mul(cfg.connections as u64);
        if counts.deliveries < expected {
            *counts.errors.entry("chat_lost".into()).or_insert(0) += expected - counts.deliveries;
        }
    }
    if let Some(h) = hlog.as_mut() {
        h.finish()?;
    }
    let cfg = Arc::try_unwrap(cfg).unwrap_or_else(|a| (*a).clone());
    let mut outcome = Outcome {
        cfg,
        metrics,
        counts,
        measured_s,
        cpu_ns,
        wall_ns: end,
        started_unix_s,
        warnings: Vec::new(),
    };
    outcome.warnings = report::warnings(&outcome);
    Ok(outcome)
}
