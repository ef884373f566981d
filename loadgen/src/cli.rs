//! The command line: `loadgen echo|connect|chat|udp --target HOST:PORT [options]`,
//! `loadgen plot`.
//!
//! Declared with clap's derive: one struct per mode, so `loadgen echo --help` lists only
//! what echo uses, with examples. What clap cannot check by itself (ranges that depend on
//! each other, chat's minimum size) is checked in [`parse`], so that a [`RunConfig`]
//! always holds valid values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use weft::protocols::Framing;

use crate::config::{CloseStyle, Command, Mode, PlotConfig, RunConfig};

/// Closing words of `loadgen --help`.
const AFTER_HELP: &str = "\
Exit status: 0 when the run had no error, 1 when it had errors, 2 on bad usage.
The JSON schema and what each figure means: docs/loadgen.md.

Examples:
  loadgen echo --target 127.0.0.1:8000 --connections 16 --duration 5s
  loadgen echo --target 127.0.0.1:8000 --rate 50000 --json run.json --hlog run.hlog
  loadgen connect --target 127.0.0.1:8000 --duration 5s
  loadgen chat --target 127.0.0.1:8000 --connections 8 --rate 200
  loadgen udp --target 127.0.0.1:9999 --connections 64 --duration 5s
  loadgen plot --out cmp.png weft.json=weft tokio.json=tokio";

const ECHO_EXAMPLES: &str = "\
Examples:
  # ping-pong: 16 connections, one 64-byte request in flight on each
  loadgen echo --target 127.0.0.1:8000 --connections 16 --duration 5s
  # open loop: 50 000 requests/s, each timed from its intended send time
  loadgen echo --target 127.0.0.1:8000 --rate 50000 --depth 4 --json run.json
  # line framing, 4 KiB lines, two pinned threads
  loadgen echo --target 127.0.0.1:8000 --framing line --size 4096 --threads 2 --cpus 0-1";

const CONNECT_EXAMPLES: &str = "\
Examples:
  # as many connects as 64 in flight allow, closed with a reset (no TIME_WAIT)
  loadgen connect --target 127.0.0.1:8000 --duration 5s
  # 2 000 connects per second, closed with a FIN
  loadgen connect --target 127.0.0.1:8000 --rate 2000 --close fin";

const CHAT_EXAMPLES: &str = "\
Examples:
  # 8 clients, each with one line in flight; every line reaches the other 7
  loadgen chat --target 127.0.0.1:8000 --connections 8 --duration 5s
  # 200 lines per second in total, latency timed from the schedule
  loadgen chat --target 127.0.0.1:8000 --connections 32 --rate 200 --json chat.json
  # two servers joined by a bus: clients alternate between them, every line expected at all
  loadgen chat --target 127.0.0.1:8000,127.0.0.1:8001 --connections 32 --duration 5s";

const UDP_EXAMPLES: &str = "\
Examples:
  # ping-pong: 64 flows (UDP sockets), one 64-byte datagram in flight on each
  loadgen udp --target 127.0.0.1:9999 --connections 64 --duration 5s
  # open loop: 100 000 datagrams/s, each timed from its intended send time
  loadgen udp --target 127.0.0.1:9999 --rate 100000 --depth 4 --json udp.json";

const PLOT_EXAMPLES: &str = "\
Examples:
  loadgen plot --out cmp.png --title \"64 B ping-pong, 16 connections\" \\
      weft.json=weft tokio.json=tokio run.hlog=glommio";

/// loadgen: weft's benchmark harness (closed- and open-loop load, connection storms, chat
/// fan-out), honest about coordinated omission and its own cost.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Framed requests, echoed back and checked byte for byte
    #[command(after_help = ECHO_EXAMPLES)]
    Echo(EchoArgs),
    /// A connection storm: connect, record the handshake time, close
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(ConnectArgs),
    /// Chat lines broadcast by the server to every client
    #[command(after_help = CHAT_EXAMPLES)]
    Chat(ChatArgs),
    /// UDP datagrams echoed back and checked, losses counted
    #[command(after_help = UDP_EXAMPLES)]
    Udp(UdpArgs),
    /// Draw latency-by-percentile curves of earlier runs into one PNG
    #[command(after_help = PLOT_EXAMPLES)]
    Plot(PlotArgs),
}

/// What every load mode takes: where, how many, how long, and where the results go.
#[derive(Debug, Args)]
struct Common {
    /// The server, as HOST:PORT (chat: several, comma-separated, clients round-robin)
    #[arg(long, value_name = "HOST:PORT", display_order = 0)]
    target: String,
    /// Open loop: R requests (connects, lines) per second in total, each timed from its
    /// intended send time; without it the load is closed-loop
    #[arg(help_heading = "Load", long, value_name = "R")]
    rate: Option<f64>,
    /// Event-loop threads
    #[arg(
        help_heading = "Threads",
        long,
        short = 't',
        value_name = "N",
        default_value_t = 1
    )]
    threads: usize,
    /// Pin the threads to these cores, round-robin (e.g. 1, 0,2 or 0-3)
    #[arg(help_heading = "Threads", long, value_name = "LIST", value_parser = parse_cpu_list)]
    cpus: Option<CpuList>,
    /// Measure for this long (e.g. 10s, 500ms) [default: 10s unless --requests]
    #[arg(help_heading = "Bounds", long, short = 'd', value_name = "T", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Measure this many requests (bounded by --timeout)
    #[arg(help_heading = "Bounds", long, short = 'n', value_name = "N")]
    requests: Option<u64>,
    /// Run this long before measuring
    #[arg(help_heading = "Bounds", long, value_name = "T", value_parser = parse_duration, default_value = "0")]
    warmup: Duration,
    /// Wait up to this long for outstanding responses at the end
    #[arg(help_heading = "Bounds", long, value_name = "T", value_parser = parse_duration, default_value = "2s")]
    drain: Duration,
    /// The bound on a --requests run
    #[arg(help_heading = "Bounds", long, value_name = "T", value_parser = parse_duration, default_value = "60s")]
    timeout: Duration,
    /// Write the JSON report here (schema: docs/loadgen.md)
    #[arg(help_heading = "Output", long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write an HdrHistogram interval log here: one response-time histogram per second
    #[arg(help_heading = "Output", long, value_name = "FILE")]
    hlog: Option<PathBuf>,
    /// Draw this run's latency by percentile into this PNG
    #[arg(help_heading = "Output", long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// No per-second lines on stderr
    #[arg(help_heading = "Output", long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct EchoArgs {
    /// Connections
    #[arg(long, short = 'c', value_name = "N", default_value_t = 16)]
    connections: usize,
    /// Requests in flight per connection (1 = ping-pong); with --rate, the most allowed in
    /// flight, later ones queue (and are counted)
    #[arg(long, value_name = "D", default_value_t = 1)]
    depth: usize,
    /// Payload bytes per request, before framing
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,
    /// How requests are framed (weft's Framing::encode)
    #[arg(long, value_name = "F", default_value = "raw", value_parser = parse_framing)]
    framing: Framing,
    /// The delimiter of line framings
    #[arg(long, value_enum, default_value_t = Delimiter::Crlf)]
    delimiter: Delimiter,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    common: Common,
}

/// `--tls` and its trust options (echo and connect).
#[derive(Debug, Args)]
struct TlsArgs {
    /// Speak TLS (rustls) to the server; trusts the system's CAs unless --ca or --insecure
    #[arg(help_heading = "TLS", long)]
    tls: bool,
    /// Trust the CA certificates in this PEM file
    #[arg(
        help_heading = "TLS",
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "insecure"
    )]
    ca: Option<PathBuf>,
    /// Accept any server certificate (the handshake's signatures are still checked)
    #[arg(help_heading = "TLS", long, requires = "tls")]
    insecure: bool,
    /// The name the server's certificate must carry [default: the target's host]
    #[arg(help_heading = "TLS", long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
}

impl TlsArgs {
    /// The run's TLS options, checked by building the client config once.
    fn options(self, target: &str) -> Result<Option<crate::tls::TlsOptions>, String> {
        use crate::tls::{TlsOptions, Trust};
        if !self.tls {
            return Ok(None);
        }
        let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let options = TlsOptions {
            trust: match (self.ca, self.insecure) {
                (Some(ca), _) => Trust::Ca(ca),
                (None, true) => Trust::Insecure,
                (None, false) => Trust::System,
            },
            server_name: self.server_name.unwrap_or_else(|| host.to_string()),
        };
        options.client()?;
        Ok(Some(options))
    }
}

#[derive(Debug, Args)]
struct ConnectArgs {
    /// Connection attempts in flight
    #[arg(long, short = 'c', value_name = "N", default_value_t = 64)]
    connections: usize,
    /// How each connection is closed: rst (SO_LINGER 0, no TIME_WAIT on the client, so
    /// a storm does not run out of ports) or fin
    #[arg(long, value_enum, default_value_t = Close::Rst)]
    close: Close,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ChatArgs {
    /// Chat clients
    #[arg(long, short = 'c', value_name = "N", default_value_t = 16)]
    connections: usize,
    /// Own lines in flight per client
    #[arg(long, value_name = "D", default_value_t = 1)]
    depth: usize,
    /// Bytes per chat line (at least 48: the line carries its sender, sequence and two
    /// timestamps)
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct UdpArgs {
    /// Flows: one connected UDP socket each (so the server sees N source ports)
    #[arg(long, short = 'c', value_name = "N", default_value_t = 64)]
    connections: usize,
    /// Datagrams in flight per flow (1 = ping-pong); with --rate, the most allowed in
    /// flight, later ones queue (and are counted)
    #[arg(long, value_name = "D", default_value_t = 1)]
    depth: usize,
    /// Bytes per datagram (at least 8: it carries its sequence number)
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,
    /// A datagram with no reply after this long is counted as lost (and, in closed
    /// loop, replaced)
    #[arg(long, value_name = "T", value_parser = parse_duration, default_value = "500ms")]
    loss_timeout: Duration,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// The PNG to write
    #[arg(long, short = 'o', value_name = "FILE.png")]
    out: PathBuf,
    /// The chart's title
    #[arg(long, default_value = "Latency by percentile")]
    title: String,
    /// A --json report or an --hlog interval log, optionally labelled (default label:
    /// the file's name without extension)
    #[arg(value_name = "INPUT[=LABEL]", required = true)]
    inputs: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Delimiter {
    /// \\r\\n
    Crlf,
    /// \\n
    Lf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Close {
    /// A reset (SO_LINGER 0)
    Rst,
    /// A normal FIN
    Fin,
}

/// A `--cpus` list as one value (clap would read a bare `Vec` as a repeated option).
#[derive(Debug, Clone)]
struct CpuList(Vec<usize>);

fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    parse_cpus(s).map(CpuList)
}

fn parse_framing(s: &str) -> Result<Framing, String> {
    s.parse()
}

/// Parses a duration: `10s`, `500ms`, `250us`, `2m`, or plain seconds (`1.5`).
///
/// # Errors
/// A message naming the value when it is not a non-negative duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 10s, 500ms, 2m)"))?;
    if !v.is_finite() || v < 0.0 || v * scale > 1e9 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Parses a CPU list: `1`, `0,2`, `0-3`, `0,2-3`.
///
/// # Errors
/// A message naming the list when an item is not a core number or range.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("invalid --cpus {s:?} (expected e.g. 1, 0,2 or 0-3)");
    let mut out = Vec::new();
    for part in s.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if a > b || b - a > 4096 {
                return Err(bad());
            }
            out.extend(a..=b);
        } else {
            out.push(part.trim().parse().map_err(|_| bad())?);
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// The outcome of reading a command line that is not a command to carry out.
#[derive(Debug)]
pub enum Usage {
    /// `--help` or `--version`: this text goes to standard output, exit status 0.
    Info(String),
    /// A mistake: this message goes to standard error, exit status 2.
    Error(String),
}

/// Parses the arguments after the program name.
///
/// # Errors
/// [`Usage::Info`] for `--help` and `--version`; [`Usage::Error`] for the first unknown
/// option, missing value or out-of-range value, with clap's usage line.
pub fn parse(args: &[String]) -> Result<Command, Usage> {
    let argv = std::iter::once("loadgen".to_string()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        let text = e.render().to_string();
        if e.use_stderr() {
            Usage::Error(text)
        } else {
            Usage::Info(text)
        }
    })?;
    let error = |m: String| {
        Usage::Error(format!(
            "error: {m}\n\nFor more information, try '--help'.\n"
        ))
    };
    match cli.command {
        Sub::Plot(p) => Ok(Command::Plot(plot_config(p))),
        Sub::Echo(a) => {
            let mut cfg = run_config(Mode::Echo, a.common, a.connections);
            cfg.depth = a.depth;
            cfg.size = a.size;
            cfg.framing = a.framing;
            cfg.delimiter = match a.delimiter {
                Delimiter::Crlf => b"\r\n".to_vec(),
                Delimiter::Lf => b"\n".to_vec(),
            };
            cfg.tls = a.tls.options(&cfg.target).map_err(error)?;
            validate(cfg).map_err(error)
        }
        Sub::Connect(a) => {
            let mut cfg = run_config(Mode::Connect, a.common, a.connections);
            cfg.close = match a.close {
                Close::Rst => CloseStyle::Reset,
                Close::Fin => CloseStyle::Fin,
            };
            cfg.tls = a.tls.options(&cfg.target).map_err(error)?;
            validate(cfg).map_err(error)
        }
        Sub::Udp(a) => {
            let mut cfg = run_config(Mode::Udp, a.common, a.connections);
            cfg.depth = a.depth;
            cfg.size = a.size;
            cfg.loss_timeout = a.loss_timeout;
            if a.size < crate::udp::MIN_SIZE || a.size > 65_507 {
                return Err(error("--size must be between 8 and 65507 for udp".into()));
            }
            if a.loss_timeout.is_zero() {
                return Err(error("--loss-timeout must be more than 0".into()));
            }
            validate(cfg).map_err(error)
        }
        Sub::Chat(a) => {
            let mut cfg = run_config(Mode::Chat, a.common, a.connections);
            cfg.depth = a.depth;
            // The chat line carries its sender, sequence and two timestamps.
            cfg.size = a.size.max(48);
            validate(cfg).map_err(error)
        }
    }
}

fn run_config(mode: Mode, c: Common, connections: usize) -> RunConfig {
    let mut cfg = RunConfig::new(mode, &c.target);
    cfg.connections = connections;
    cfg.rate = c.rate;
    cfg.threads = c.threads;
    cfg.cpus = c.cpus.map(|l| l.0);
    cfg.duration = c.duration;
    cfg.requests = c.requests;
    cfg.warmup = c.warmup;
    cfg.drain = c.drain;
    cfg.timeout = c.timeout;
    cfg.json = c.json;
    cfg.hlog = c.hlog;
    cfg.plot = c.plot;
    cfg.quiet = c.quiet;
    cfg
}

/// Checks what depends on more than one option; every check names the option.
fn validate(mut cfg: RunConfig) -> Result<Command, String> {
    if cfg.connections == 0 || cfg.connections > 1_000_000 {
        return Err("--connections must be between 1 and 1000000".into());
    }
    if cfg.depth == 0 || cfg.depth > 65_536 {
        return Err("--depth must be between 1 and 65536".into());
    }
    if cfg.size > 64 << 20 {
        return Err("--size must be at most 64 MiB".into());
    }
    if cfg.threads == 0 || cfg.threads > 1024 {
        return Err("--threads must be between 1 and 1024".into());
    }
    if cfg.connections < cfg.threads {
        // Each thread needs a connection; a count left at its default follows --threads.
        let default = RunConfig::new(cfg.mode, "").connections;
        if cfg.connections != default {
            return Err(format!(
                "--connections ({}) must be at least --threads ({})",
                cfg.connections, cfg.threads
            ));
        }
        cfg.connections = cfg.threads;
    }
    if let Some(r) = cfg.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(format!("--rate must be positive, got {r}"));
        }
    }
    if cfg.requests == Some(0) {
        return Err("--requests must be at least 1".into());
    }
    if cfg.duration == Some(Duration::ZERO) {
        return Err("--duration must be positive".into());
    }
    Ok(Command::Run(Box::new(cfg)))
}

fn plot_config(p: PlotArgs) -> PlotConfig {
    let inputs = p
        .inputs
        .iter()
        .map(|a| match a.split_once('=') {
            Some((path, label)) => (PathBuf::from(path), label.to_string()),
            None => {
                let stem = std::path::Path::new(a)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| a.clone());
                (PathBuf::from(a), stem)
            }
        })
        .collect();
    PlotConfig {
        inputs,
        out: p.out,
        title: p.title,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(s: &str) -> RunConfig {
        match parse(&args(s)) {
            Ok(Command::Run(cfg)) => *cfg,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_mode() {
        assert_eq!(run("echo --target h:1").connections, 16);
        assert_eq!(run("connect --target h:1").connections, 64);
        assert_eq!(run("chat --target h:1 --size 10").size, 48);
        assert_eq!(run("echo --target h:1 --threads 32").connections, 32);
        let e = run("echo --target h:1 --framing line --delimiter lf --warmup 500ms");
        assert_eq!(e.framing, Framing::Line);
        assert_eq!(e.delimiter, b"\n");
        assert_eq!(e.warmup, Duration::from_millis(500));
        assert_eq!(
            run("connect --target h:1 --close fin").close,
            CloseStyle::Fin
        );
    }

    #[test]
    fn every_option_reaches_the_config() {
        let c = run(
            "echo --target h:1 -c 8 --depth 3 --size 100 --rate 500.5 --threads 2 \
             --cpus 0,2-3 --requests 1000 --warmup 1s --drain 250ms --timeout 2m \
             --json a.json --hlog a.hlog --plot a.png --quiet",
        );
        assert_eq!((c.connections, c.depth, c.size, c.threads), (8, 3, 100, 2));
        assert_eq!(c.rate, Some(500.5));
        assert_eq!(c.cpus, Some(vec![0, 2, 3]));
        assert_eq!(c.requests, Some(1000));
        assert_eq!(c.warmup, Duration::from_secs(1));
        assert_eq!(c.drain, Duration::from_millis(250));
        assert_eq!(c.timeout, Duration::from_secs(120));
        assert_eq!(c.json, Some(PathBuf::from("a.json")));
        assert_eq!(c.hlog, Some(PathBuf::from("a.hlog")));
        assert_eq!(c.plot, Some(PathBuf::from("a.png")));
        assert!(c.quiet);
        let d = run("chat --target h:1 --duration 1.5 --cpus 1");
        assert_eq!(d.duration, Some(Duration::from_millis(1500)));
        assert_eq!(d.cpus, Some(vec![1]));
    }

    #[test]
    fn mistakes_are_usage_errors_that_name_the_option() {
        for (line, word) in [
            ("echo --target h:1 --size x", "--size"),
            ("echo --target h:1 --connections 0", "--connections"),
            ("echo --target h:1 --threads 4 --connections 2", "--threads"),
            ("echo", "--target"),
            ("connect --target h:1 --depth 2", "--depth"),
            ("echo --target h:1 --cpus 3-1", "--cpus"),
            ("echo --target h:1 --framing nope", "framing"),
            ("plot --out x.png", "INPUT"),
        ] {
            match parse(&args(line)) {
                Err(Usage::Error(m)) => assert!(m.contains(word), "{line}: {m}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn each_mode_has_its_own_help_with_examples() {
        for mode in ["echo", "connect", "chat", "plot"] {
            match parse(&args(&format!("{mode} --help"))) {
                Err(Usage::Info(h)) => {
                    assert!(h.contains("Examples:"), "{mode}: {h}");
                    assert!(h.contains(&format!("loadgen {mode}")), "{mode}: {h}");
                }
                other => panic!("{mode}: {other:?}"),
            }
        }
        let Err(Usage::Info(h)) = parse(&args("connect --help")) else {
            panic!("connect --help")
        };
        assert!(h.contains("--close") && !h.contains("--framing"), "{h}");
    }

    #[test]
    fn plot_labels_default_to_the_file_stem() {
        let Ok(Command::Plot(p)) = parse(&args("plot --out o.png a/weft.json b.hlog=tokio")) else {
            panic!("plot")
        };
        assert_eq!(p.inputs[0], (PathBuf::from("a/weft.json"), "weft".into()));
        assert_eq!(p.inputs[1], (PathBuf::from("b.hlog"), "tokio".into()));
    }
}
