//! The Prometheus text format (version 0.0.4) of the shards' counters, the PROXY
//! protocol wrappers' counters, the user metrics and the meshes.
//!
//! Every series the engine has is listed once, in [`SERIES`], with its name, type,
//! help and the [`ShardStats`] getter it reads; the page and docs/operations.md
//! follow that table. A scrape only loads the shards' counters (relaxed loads of
//! single-writer cells), so it never disturbs a shard.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::metrics::registry::Registry;
use crate::runtime::{ShardStats, TURN_BUCKETS_NS};

/// The turn-duration histogram's name.
const TURNS_NAME: &str = "weft_loop_turn_duration_seconds";

/// Prometheus' content type for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a series is typed on the page.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// How a counter's raw value becomes the page's number.
#[derive(Clone, Copy)]
enum Unit {
    /// As is.
    Count,
    /// Nanoseconds shown as seconds.
    NanosAsSeconds,
}

/// Reads one counter of a shard.
type ShardGetter = fn(&ShardStats) -> u64;
/// Reads one counter of a shard's mesh endpoint.
type MeshGetter = fn(&crate::mesh::MeshStats) -> u64;

/// One per-shard series: its name, type, help and where its value comes from.
struct Series {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    unit: Unit,
    value: ShardGetter,
}

macro_rules! series {
    ($name:literal, $kind:ident, $unit:ident, $get:ident, $help:literal) => {
        Series {
            name: $name,
            kind: Kind::$kind,
            help: $help,
            unit: Unit::$unit,
            value: ShardStats::$get,
        }
    };
}

/// Every per-shard series but the closed connections (labelled by reason).
const SERIES: &[Series] = &[
    series!(
        "weft_connections_accepted_total",
        Counter,
        Count,
        accepted,
        "Connections the shard accepted, refused ones included."
    ),
    series!(
        "weft_connections_refused_total",
        Counter,
        Count,
        refused,
        "Connections the factory refused (build_protocol returned None)."
    ),
    series!(
        "weft_connections_open",
        Gauge,
        Count,
        open,
        "Connections open on the shard now."
    ),
    series!(
        "weft_bytes_received_total",
        Counter,
        Count,
        bytes_in,
        "Bytes read from peers."
    ),
    series!(
        "weft_bytes_sent_total",
        Counter,
        Count,
        bytes_out,
        "Bytes the kernel took for sending."
    ),
    series!(
        "weft_output_buffered_bytes",
        Gauge,
        Count,
        output_buffered,
        "Bytes of output held for peers now, all connections of the shard."
    ),
    series!(
        "weft_backpressure_pauses_total",
        Counter,
        Count,
        pauses,
        "Times a connection's output passed its high watermark."
    ),
    series!(
        "weft_receive_stashed_bytes_total",
        Counter,
        Count,
        stashed_bytes,
        "Bytes copied out of the receive buffer pool for connections that stopped reading with buffers in hand."
    ),
    series!(
        "weft_sends_direct_total",
        Counter,
        Count,
        direct_sends,
        "Sends made straight to a socket outside the ring (a lone connection's output at the end of a turn)."
    ),
    series!(
        "weft_output_budget_aborts_total",
        Counter,
        Count,
        budget_aborts,
        "Connections aborted because the shard's output budget was spent."
    ),
    series!(
        "weft_loop_turns_total",
        Counter,
        Count,
        turns,
        "Turns of the shard's event loop."
    ),
    series!(
        "weft_loop_parks_total",
        Counter,
        Count,
        parks,
        "Times the shard slept in its ring."
    ),
    series!(
        "weft_loop_wakeups_total",
        Counter,
        Count,
        wakeups,
        "Times another thread woke the shard through its doorbell."
    ),
    series!(
        "weft_loop_longest_turn_seconds",
        Gauge,
        NanosAsSeconds,
        longest_turn_ns,
        "The longest turn of the shard's loop so far (a stall detector)."
    ),
    series!(
        "weft_ring_submissions_total",
        Counter,
        Count,
        ring_submitted,
        "Submission queue entries the shard submitted to its io_uring."
    ),
    series!(
        "weft_ring_completions_total",
        Counter,
        Count,
        ring_completed,
        "Completion queue entries the shard reaped from its io_uring."
    ),
    series!(
        "weft_ring_enters_total",
        Counter,
        Count,
        ring_enters,
        "io_uring_enter system calls the shard made."
    ),
    series!(
        "weft_ring_buffer_exhausted_total",
        Counter,
        Count,
        ring_no_buffers,
        "Receives that ended because the shard's provided-buffer pool ran dry."
    ),
    series!(
        "weft_timers_fired_total",
        Counter,
        Count,
        timers_fired,
        "call_later calls that ran."
    ),
    series!(
        "weft_tasks_polled_total",
        Counter,
        Count,
        tasks_polled,
        "Polls of spawned tasks."
    ),
    series!(
        "weft_panics_total",
        Counter,
        Count,
        panics,
        "Panics caught in user code (callbacks, timers, tasks, handlers)."
    ),
    series!(
        "weft_datagrams_received_total",
        Counter,
        Count,
        datagrams_in,
        "Datagrams the shard's datagram ports received."
    ),
    series!(
        "weft_datagrams_sent_total",
        Counter,
        Count,
        datagrams_out,
        "Datagrams the kernel took for sending."
    ),
    series!(
        "weft_datagrams_truncated_total",
        Counter,
        Count,
        datagrams_truncated,
        "Datagrams cut to their port's maxPacketSize."
    ),
    series!(
        "weft_datagrams_dropped_total",
        Counter,
        Count,
        datagrams_dropped,
        "Datagrams written while their port's outbox was full (dropped)."
    ),
    series!(
        "weft_datagram_errors_total",
        Counter,
        Count,
        datagram_errors,
        "Datagram receives and sends that failed."
    ),
];

/// The connections' ends by reason: the `reason` label and its getter.
const CLOSED: &[(&str, ShardGetter)] = &[
    ("done", ShardStats::closed_done),
    ("lost", ShardStats::closed_lost),
    ("aborted", ShardStats::closed_aborted),
    ("output_limit", ShardStats::closed_output_limit),
    ("shutdown", ShardStats::closed_shutdown),
    ("protocol_failure", ShardStats::closed_protocol_failure),
];
const CLOSED_NAME: &str = "weft_connections_closed_total";

/// The mesh series: name, help, getter.
const MESH: &[(&str, &str, MeshGetter)] = &[
    (
        "weft_mesh_messages_sent_total",
        "Mesh messages the shard sent (every receiver counts once).",
        |s| s.sent,
    ),
    (
        "weft_mesh_messages_delivered_total",
        "Mesh messages the shard delivered to its handler.",
        |s| s.delivered,
    ),
    (
        "weft_mesh_messages_deferred_total",
        "Mesh messages the shard sent that waited in its outbox (a full inbox).",
        |s| s.deferred,
    ),
    (
        "weft_mesh_messages_dropped_total",
        "Mesh messages dropped at shutdown after the barrier's deadline.",
        |s| s.dropped,
    ),
    (
        "weft_mesh_wakeups_total",
        "Times a mesh sender found the shard asleep and woke it.",
        |s| s.wakeups,
    ),
];

/// Whether `name` is, or could become, one of weft's own series.
pub(crate) fn is_reserved(name: &str) -> bool {
    name.starts_with("weft_") || name.starts_with("process_")
}

/// Seconds since the Unix epoch at which this process started.
///
/// Read from `/proc/self/stat` (field 22, in clock ticks since boot) and
/// `/proc/stat`'s `btime`. The kernel reports those ticks in `USER_HZ`, which is
/// 100 on every Linux ABI, so no `sysconf` call (and no `unsafe`) is needed. If
/// `/proc` cannot be read, the first call's time stands in.
pub fn process_start_time() -> f64 {
    static START: OnceLock<f64> = OnceLock::new();
    *START.get_or_init(|| {
        from_proc().unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        })
    })
}

fn from_proc() -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the
    // last ')'. Field 22 is then the 20th after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / USER_HZ)
}

/// Writes one labelled histogram: cumulative `_bucket` lines for `bounds` (then
/// `+Inf`) from the non-cumulative `counts`, `_sum` and `_count` (the sum of the
/// counts, so the page is consistent even while a shard writes).
fn histogram_lines(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: impl Iterator<Item = f64>,
    counts: &[u64],
    sum: f64,
) {
    let mut cumulative = 0u64;
    let mut bounds = bounds;
    for n in counts {
        cumulative += n;
        match bounds.next() {
            Some(le) => {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            None => {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
            }
        }
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

fn header(out: &mut String, name: &str, kind: Kind, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

/// `\` and newlines escaped, as the format wants in a HELP line.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `\`, `"` and newlines escaped, as the format wants in a label value.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the page: every engine series for each shard of `stats` (index =
/// shard), weft's build info, the process start time, then `registry`'s meshes
/// and user counters.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use weft::metrics::{render, Registry};
/// use weft::ShardStats;
///
/// let shards = vec![Arc::new(ShardStats::default()), Arc::new(ShardStats::default())];
/// let page = render(&shards, &Registry::new());
/// assert!(page.contains("weft_connections_accepted_total{shard=\"1\"} 0\n"));
/// ```
pub fn render(stats: &[Arc<ShardStats>], registry: &Registry) -> String {
    let mut out = String::with_capacity(4096 + 2048 * stats.len());
    for s in SERIES {
        header(&mut out, s.name, s.kind, s.help);
        for (shard, st) in stats.iter().enumerate() {
            let v = (s.value)(st);
            match s.unit {
                Unit::Count => {
                    let _ = writeln!(out, "{}{{shard=\"{shard}\"}} {v}", s.name);
                }
                Unit::NanosAsSeconds => {
                    let _ = writeln!(out, "{}{{shard=\"{shard}\"}} {}", s.name, v as f64 / 1e9);
                }
            }
        }
    }
    header(
        &mut out,
        CLOSED_NAME,
        Kind::Counter,
        "Connections that ended, by reason (done, lost, aborted, output_limit, shutdown, protocol_failure).",
    );
    for (shard, st) in stats.iter().enumerate() {
        for (reason, get) in CLOSED {
            let _ = writeln!(
                out,
                "{CLOSED_NAME}{{shard=\"{shard}\",reason=\"{reason}\"}} {}",
                get(st)
            );
        }
    }
    header(
        &mut out,
        TURNS_NAME,
        Kind::Histogram,
        "Time each turn of the shard's loop took (its work between two sleeps or polls of the ring).",
    );
    for (shard, st) in stats.iter().enumerate() {
        histogram_lines(
            &mut out,
            TURNS_NAME,
            &format!("shard=\"{shard}\""),
            TURN_BUCKETS_NS.iter().map(|&ns| ns as f64 / 1e9),
            &st.turns_by_duration(),
            st.turn_ns_total() as f64 / 1e9,
        );
    }
    header(
        &mut out,
        "weft_build_info",
        Kind::Gauge,
        "Always 1; the labels name the weft build serving this page.",
    );
    let _ = writeln!(
        out,
        "weft_build_info{{version=\"{}\"}} 1",
        escape_label(env!("CARGO_PKG_VERSION"))
    );
    header(
        &mut out,
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since the Unix epoch, in seconds.",
    );
    let _ = writeln!(out, "process_start_time_seconds {}", process_start_time());
    proxy_lines(&mut out, &crate::haproxy::process_totals());

    registry.with(|counters, histograms, meshes| {
        if !meshes.is_empty() {
            let per_mesh: Vec<_> = meshes.iter().map(|m| (&m.name, (m.stats)())).collect();
            for (name, help, get) in MESH {
                header(&mut out, name, Kind::Counter, help);
                for (mesh, shards) in &per_mesh {
                    let mesh = escape_label(mesh);
                    for (shard, st) in shards.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{name}{{mesh=\"{mesh}\",shard=\"{shard}\"}} {}",
                            get(st)
                        );
                    }
                }
            }
        }
        for c in counters {
            header(&mut out, &c.name, Kind::Counter, &c.help);
            let cells = c.cells.lock().unwrap_or_else(|e| e.into_inner());
            for (shard, cell) in cells.iter() {
                let v = cell.load(std::sync::atomic::Ordering::Relaxed);
                let _ = writeln!(out, "{}{{shard=\"{shard}\"}} {v}", c.name);
            }
        }
        for h in histograms {
            header(&mut out, &h.name, Kind::Histogram, &h.help);
            let cells = h.cells.lock().unwrap_or_else(|e| e.into_inner());
            for (shard, cell) in cells.iter() {
                let (counts, sum) = cell.read();
                histogram_lines(
                    &mut out,
                    &h.name,
                    &format!("shard=\"{shard}\""),
                    h.bounds.iter().copied(),
                    &counts,
                    sum,
                );
            }
        }
    });
    out
}

/// The PROXY-protocol series (`haproxy:` endpoints): none without such a listener.
fn proxy_lines(out: &mut String, shards: &[(usize, crate::haproxy::ShardProxyCounts)]) {
    if shards.is_empty() {
        return;
    }
    header(
        out,
        PROXY_ACCEPTED_NAME,
        Kind::Counter,
        "Connections of haproxy: endpoints whose PROXY header was read and handed on.",
    );
    for (shard, s) in shards {
        let _ = writeln!(
            out,
            "{PROXY_ACCEPTED_NAME}{{shard=\"{shard}\"}} {}",
            s.accepted
        );
    }
    header(
        out,
        PROXY_REJECTED_NAME,
        Kind::Counter,
        "Connections of haproxy: endpoints closed for their PROXY header, by reason (not_proxy, malformed, unsupported, bad_length, too_long, timeout).",
    );
    for (shard, s) in shards {
        for r in crate::haproxy::RejectReason::ALL {
            let _ = writeln!(
                out,
                "{PROXY_REJECTED_NAME}{{shard=\"{shard}\",reason=\"{}\"}} {}",
                r.label(),
                s.rejected(r)
            );
        }
    }
}

/// The PROXY-header series' names.
const PROXY_ACCEPTED_NAME: &str = "weft_proxy_headers_accepted_total";
const PROXY_REJECTED_NAME: &str = "weft_proxy_headers_rejected_total";

/// The names of every engine series (without the mesh's), for the docs test.
pub fn engine_series_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SERIES.iter().map(|s| s.name).collect();
    names.push(CLOSED_NAME);
    names.push(TURNS_NAME);
    names.push("weft_build_info");
    names.push("process_start_time_seconds");
    names.push(PROXY_ACCEPTED_NAME);
    names.push(PROXY_REJECTED_NAME);
    names.extend(MESH.iter().map(|m| m.0));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_durations_are_a_cumulative_histogram() {
        let shards: Vec<Arc<ShardStats>> = vec![Arc::default()];
        shards[0].turn_took(3_000); // le 5 µs
        shards[0].turn_took(5_000); // le 5 µs (bounds are inclusive)
        shards[0].turn_took(40_000); // le 50 µs
        shards[0].turn_took(5_000_000_000); // +Inf
        let page = render(&shards, &Registry::new());
        let name = TURNS_NAME;
        assert!(page.contains(&format!("# TYPE {name} histogram\n")));
        assert!(
            page.contains(&format!("{name}_bucket{{shard=\"0\",le=\"0.000005\"}} 2\n")),
            "{page}"
        );
        assert!(page.contains(&format!("{name}_bucket{{shard=\"0\",le=\"0.00001\"}} 2\n")));
        assert!(page.contains(&format!("{name}_bucket{{shard=\"0\",le=\"0.00005\"}} 3\n")));
        assert!(page.contains(&format!("{name}_bucket{{shard=\"0\",le=\"1\"}} 3\n")));
        assert!(page.contains(&format!("{name}_bucket{{shard=\"0\",le=\"+Inf\"}} 4\n")));
        assert!(page.contains(&format!("{name}_count{{shard=\"0\"}} 4\n")));
        assert!(page.contains(&format!("{name}_sum{{shard=\"0\"}} 5.000048\n")));
    }

    #[test]
    fn every_shard_gets_every_series() {
        let shards: Vec<Arc<ShardStats>> = (0..2).map(|_| Arc::default()).collect();
        ShardStats::add(&shards[1].accepted, 7);
        ShardStats::set(&shards[0].longest_turn_ns, 1_500_000);
        ShardStats::add(&shards[1].closed_lost, 2);
        let page = render(&shards, &Registry::new());
        assert!(
            page.contains("weft_connections_accepted_total{shard=\"0\"} 0\n"),
            "{page}"
        );
        assert!(page.contains("weft_connections_accepted_total{shard=\"1\"} 7\n"));
        assert!(page.contains("weft_loop_longest_turn_seconds{shard=\"0\"} 0.0015\n"));
        assert!(page.contains("weft_connections_closed_total{shard=\"1\",reason=\"lost\"} 2\n"));
        assert!(page.contains("# TYPE weft_output_buffered_bytes gauge\n"));
        assert!(page.contains("weft_build_info{version=\""));
        for s in SERIES {
            assert_eq!(
                page.matches(&format!("\n{}{{", s.name)).count(),
                2,
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn user_counters_and_meshes_are_rendered() {
        let r = Registry::new();
        let c = r
            .counter("app_lines_total", "Lines \\ with\nnewline.")
            .unwrap();
        c.shard(1).add(5);
        let mesh = crate::mesh::Mesh::<u32>::new(2, 4);
        r.mesh("chat", &mesh);
        let page = render(&[Arc::default()], &r);
        assert!(
            page.contains("# HELP app_lines_total Lines \\\\ with\\nnewline.\n"),
            "{page}"
        );
        assert!(page.contains("app_lines_total{shard=\"1\"} 5\n"));
        assert!(page.contains("weft_mesh_messages_sent_total{mesh=\"chat\",shard=\"1\"} 0\n"));
    }

    #[test]
    fn the_process_started_in_the_past() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let t = process_start_time();
        assert!(t <= now + 1.0 && t > now - 86_400.0 * 365.0, "{t} vs {now}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn proxy_series_list_every_reason_per_shard_and_nothing_without_a_listener() {
        let mut none = String::new();
        proxy_lines(&mut none, &[]);
        assert!(none.is_empty());
        let mut one = crate::haproxy::ShardProxyCounts {
            accepted: 5,
            ..Default::default()
        };
        one.rejected[crate::haproxy::RejectReason::BadLength as usize] = 2;
        let mut out = String::new();
        proxy_lines(&mut out, &[(0, Default::default()), (1, one)]);
        assert!(out.contains("# TYPE weft_proxy_headers_accepted_total counter\n"));
        assert!(out.contains("weft_proxy_headers_accepted_total{shard=\"1\"} 5\n"));
        assert!(out
            .contains("weft_proxy_headers_rejected_total{shard=\"1\",reason=\"bad_length\"} 2\n"));
        assert!(
            out.contains("weft_proxy_headers_rejected_total{shard=\"0\",reason=\"timeout\"} 0\n")
        );
        assert_eq!(
            out.matches("weft_proxy_headers_rejected_total{").count(),
            12
        );
    }
}
