//! The command line: `loadgen echo|connect|chat --target HOST:PORT [options]`, `loadgen plot`.
//!
//! Hand-rolled rather than a derive-based parser to keep the harness's build small; every
//! malformed value is reported with the option's name and the expected form.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{CloseStyle, Command, Mode, PlotConfig, RunConfig};

/// The usage text.
pub const USAGE: &str = "\
usage:
  loadgen echo    --target HOST:PORT [options]   framed requests, echoed and checked
  loadgen connect --target HOST:PORT [options]   connection storm (connect, close)
  loadgen chat    --target HOST:PORT [options]   chat lines broadcast to every client
  loadgen plot    --out FILE.png [--title T] INPUT[=LABEL]...
                  (INPUT: a --json report or an --hlog interval log)

load:
  --connections N   connections (echo, chat; default 16) or connects in flight (connect; 64)
  --depth D         requests in flight per connection (default 1 = ping-pong); with --rate,
                    the most allowed in flight, later ones queue (and are counted)
  --size BYTES      payload bytes per request or chat line (default 64)
  --rate R          open loop: R requests (connects, lines) per second in total, each timed
                    from its intended send time; without it the load is closed-loop
  --framing F       raw|line|lineonly|netstring|int8|int16|int32 (default raw)
  --delimiter D     crlf|lf (line framings; default crlf)
  --close rst|fin   how `connect` closes each connection (default rst: no TIME_WAIT)
threads:
  --threads N       event-loop threads (default 1)
  --cpus LIST       pin threads to these cores, e.g. 1 or 0,2-3
bounds:
  --duration T      measure for T (e.g. 10s, 500ms; default 10s)
  --requests N      measure N requests (bounded by --timeout, default 60s)
  --warmup T        run T before measuring (default 0)
  --drain T         wait up to T for outstanding responses at the end (default 2s)
output:
  --json FILE       JSON report (schema: docs/loadgen.md)
  --hlog FILE       HdrHistogram interval log, one response-time histogram per second
  --plot FILE.png   latency-percentile plot of this run
  --quiet           no per-second lines on stderr
exit status: 0 when the run had no error, 1 when it had errors, 2 on bad usage.
";

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

fn number<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("invalid value {v:?} for {opt} (expected a number)"))
}

/// Parses the arguments after the program name.
///
/// # Errors
/// A message for the first unknown option, missing value or out-of-range value.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some(sub) = args.first() else {
        return Ok(Command::Help);
    };
    let mode = match sub.as_str() {
        "echo" => Mode::Echo,
        "connect" => Mode::Connect,
        "chat" => Mode::Chat,
        "plot" => return parse_plot(&args[1..]),
        "-h" | "--help" | "help" => return Ok(Command::Help),
        other => {
            return Err(format!(
                "unknown command {other:?} (echo, connect, chat, plot)"
            ))
        }
    };
    let mut cfg = RunConfig::new(mode, "");
    let mut connections_given = false;
    let mut it = args[1..].iter();
    while let Some(opt) = it.next() {
        if opt == "--quiet" {
            cfg.quiet = true;
            continue;
        }
        if opt == "-h" || opt == "--help" {
            return Ok(Command::Help);
        }
        let v = it
            .next()
            .ok_or_else(|| format!("option {opt} needs a value"))?
            .as_str();
        match opt.as_str() {
            "--target" => cfg.target = v.to_string(),
            "--connections" | "-c" => {
                cfg.connections = number(opt, v)?;
                connections_given = true;
            }
            "--depth" => cfg.depth = number(opt, v)?,
            "--size" => cfg.size = number(opt, v)?,
            "--rate" => cfg.rate = Some(number(opt, v)?),
            "--framing" => cfg.framing = v.parse()?,
            "--delimiter" => {
                cfg.delimiter = match v {
                    "crlf" => b"\r\n".to_vec(),
                    "lf" => b"\n".to_vec(),
                    _ => return Err(format!("invalid --delimiter {v:?} (crlf or lf)")),
                }
            }
            "--close" => {
                cfg.close = match v {
                    "rst" => CloseStyle::Reset,
                    "fin" => CloseStyle::Fin,
                    _ => return Err(format!("invalid --close {v:?} (rst or fin)")),
                }
            }
            "--threads" | "-t" => cfg.threads = number(opt, v)?,
            "--cpus" => cfg.cpus = Some(parse_cpus(v)?),
            "--duration" | "-d" => cfg.duration = Some(parse_duration(v)?),
            "--requests" | "-n" => cfg.requests = Some(number(opt, v)?),
            "--warmup" => cfg.warmup = parse_duration(v)?,
            "--drain" => cfg.drain = parse_duration(v)?,
            "--timeout" => cfg.timeout = parse_duration(v)?,
            "--json" => cfg.json = Some(PathBuf::from(v)),
            "--hlog" => cfg.hlog = Some(PathBuf::from(v)),
            "--plot" => cfg.plot = Some(PathBuf::from(v)),
            other => return Err(format!("unknown option {other:?} (see loadgen --help)")),
        }
    }
    if cfg.target.is_empty() {
        return Err("missing --target HOST:PORT".into());
    }
    if cfg.connections == 0 || cfg.connections > 1_000_000 {
        return Err("--connections must be between 1 and 1000000".into());
    }
    if cfg.depth == 0 || cfg.depth > 65_536 {
        return Err("--depth must be between 1 and 65536".into());
    }
    if cfg.size > 64 << 20 {
        return Err("--size must be at most 64 MiB".into());
    }
    if mode == Mode::Chat && cfg.size < 48 {
        // The chat line carries its sender, sequence and two timestamps.
        cfg.size = 48;
    }
    if cfg.threads == 0 || cfg.threads > 1024 {
        return Err("--threads must be between 1 and 1024".into());
    }
    if !connections_given && cfg.connections < cfg.threads {
        cfg.connections = cfg.threads;
    }
    if cfg.connections < cfg.threads {
        return Err(format!(
            "--connections ({}) must be at least --threads ({})",
            cfg.connections, cfg.threads
        ));
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

fn parse_plot(args: &[String]) -> Result<Command, String> {
    let mut out = None;
    let mut title = "Latency by percentile".to_string();
    let mut inputs = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" | "-o" => {
                out = Some(PathBuf::from(it.next().ok_or("--out needs a file name")?));
            }
            "--title" => title = it.next().ok_or("--title needs a value")?.clone(),
            _ if a.starts_with("--") => return Err(format!("unknown plot option {a:?}")),
            _ => {
                let (path, label) = match a.split_once('=') {
                    Some((p, l)) => (p.to_string(), l.to_string()),
                    None => {
                        let stem = std::path::Path::new(a)
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| a.clone());
                        (a.clone(), stem)
                    }
                };
                inputs.push((PathBuf::from(path), label));
            }
        }
    }
    let out = out.ok_or("plot needs --out FILE.png")?;
    if inputs.is_empty() {
        return Err("plot needs at least one input (a --json report or an --hlog log)".into());
    }
    Ok(Command::Plot(PlotConfig { inputs, out, title }))
}
