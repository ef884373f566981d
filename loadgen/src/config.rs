//! What a run is asked to do: the parsed, validated command line.
//!
//! Parsing is strict ("parse, don't validate"): once a [`RunConfig`] exists every field is
//! in range, so the event loops never check their inputs again.

use std::path::PathBuf;
use std::time::Duration;

use weft::protocols::Framing;

/// Which workload a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Framed requests echoed back and checked byte for byte.
    Echo,
    /// A connection storm: connect, record, close.
    Connect,
    /// Chat lines broadcast by the server to every client.
    Chat,
    /// UDP datagrams echoed back and checked, losses counted.
    Udp,
}

impl Mode {
    /// Returns the name used on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Connect => "connect",
            Mode::Chat => "chat",
            Mode::Udp => "udp",
        }
    }
}

/// How a connect-storm connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseStyle {
    /// A reset (`SO_LINGER` 0): no `TIME_WAIT` on the client, so storms can run long.
    Reset,
    /// A normal FIN; the client's ports then wait in `TIME_WAIT` for 60 s.
    Fin,
}

/// A validated load-generation run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The workload.
    pub mode: Mode,
    /// `HOST:PORT` as given.
    pub target: String,
    /// Connections (echo, chat), or concurrent connects in flight (connect).
    pub connections: usize,
    /// Requests in flight per connection (closed loop), or the most allowed (open loop).
    pub depth: usize,
    /// Payload bytes per request (before framing).
    pub size: usize,
    /// Open-loop rate in requests (or connects, or chat lines) per second, all threads together.
    pub rate: Option<f64>,
    /// How requests are framed.
    pub framing: Framing,
    /// The delimiter of line framings.
    pub delimiter: Vec<u8>,
    /// Event-loop threads.
    pub threads: usize,
    /// Cores to pin threads to, round-robin.
    pub cpus: Option<Vec<usize>>,
    /// How long to measure, after the warm-up.
    pub duration: Option<Duration>,
    /// How many requests to measure, after the warm-up.
    pub requests: Option<u64>,
    /// How long to run before measuring.
    pub warmup: Duration,
    /// How long to wait for outstanding responses after the last request.
    pub drain: Duration,
    /// The hard bound on a `--requests` run (after the warm-up).
    pub timeout: Duration,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to write the HdrHistogram interval log.
    pub hlog: Option<PathBuf>,
    /// Where to write a latency-percentile plot.
    pub plot: Option<PathBuf>,
    /// Print no per-second lines.
    pub quiet: bool,
    /// How connect-storm connections are closed.
    pub close: CloseStyle,
    /// UDP: how long a datagram may wait for its reply before it counts as lost.
    pub loss_timeout: Duration,
    /// Echo and connect: speak TLS to the server (`--tls`).
    pub tls: Option<crate::tls::TlsOptions>,
}

impl RunConfig {
    /// Returns a configuration with the documented defaults for `mode` against `target`.
    pub fn new(mode: Mode, target: &str) -> Self {
        RunConfig {
            mode,
            target: target.to_string(),
            connections: if mode == Mode::Connect { 64 } else { 16 },
            depth: 1,
            size: 64,
            rate: None,
            framing: Framing::Raw,
            delimiter: b"\r\n".to_vec(),
            threads: 1,
            cpus: None,
            duration: None,
            requests: None,
            warmup: Duration::ZERO,
            drain: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
            json: None,
            hlog: None,
            plot: None,
            quiet: false,
            close: CloseStyle::Reset,
            loss_timeout: Duration::from_millis(500),
            tls: None,
        }
    }

    /// Returns how long the measured phase may last at most.
    pub fn measure_limit(&self) -> Duration {
        match (self.duration, self.requests) {
            (Some(d), _) => d,
            (None, Some(_)) => self.timeout,
            (None, None) => Duration::from_secs(10),
        }
    }
}

/// A plot request: inputs (JSON reports or interval logs) drawn as one series each.
#[derive(Debug, Clone)]
pub struct PlotConfig {
    /// `(path, label)` of each series.
    pub inputs: Vec<(PathBuf, String)>,
    /// The PNG to write.
    pub out: PathBuf,
    /// The title drawn above the plot.
    pub title: String,
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub enum Command {
    /// Drive load.
    Run(Box<RunConfig>),
    /// Draw a plot from earlier runs.
    Plot(PlotConfig),
}
