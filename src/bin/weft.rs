//! `weft`: serve the built-in services on every core.
//!
//! ```text
//! weft serve SERVICE [ENDPOINT ...] [--cores N] [--max-connections N]
//!                    [--drain-timeout SECS] [--max-output-buffer BYTES] [--io native|glommio] [service options]
//! ```
//! The default endpoint is `tcp:8000`. When every shard listens, one line per
//! endpoint goes to stderr: `listening on tcp:127.0.0.1:PORT (N shards)`. SIGINT or
//! SIGTERM stops gracefully and prints one summary line per shard. With an `ssl:`
//! endpoint, SIGHUP reloads its certificates and keys for new handshakes
//! (`weft::tls::reload_all`; a bad file keeps the old one and the log says why).
//! Logs go through `tracing`, filtered by `RUST_LOG` (default `info`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use weft::protocols::Framing;
use weft::services::limits::{ConnectionCounter, LimitTotalConnections};
use weft::services::wire::{self, SimpleFactory};
use weft::services::{finger, framed, logger};
use weft::{Factory, Server, ServerBuilder};

const USAGE: &str = "usage: weft serve SERVICE [ENDPOINT ...] [--cores N] [--max-connections N]
                  [--drain-timeout SECS] [--max-output-buffer BYTES] [--io native|glommio] [service options]

services:
  echo [--framing F] [--max-length N] [--delimiter STR]
                       write back every byte (RFC 862), or every frame in framing F:
                       raw (default), line, lineonly, netstring, int8, int16, int32;
                       --max-length is the longest frame kept (Twisted's MAX_LENGTH:
                       16384 for lines, 99999 otherwise), longer ones close the
                       connection; --delimiter ends lines (default '\\r\\n'; the escapes
                       \\r \\n \\t \\0 \\\\ \\xHH are understood)
  discard              read and ignore (RFC 863)
  chargen              send the character pattern while the peer reads (RFC 864)
  qotd [--quote TEXT]  send a quote, then close (RFC 865)
  daytime              send the date and time, then close (RFC 867)
  chat [--inbox-capacity N]
                       the chat server: every line to every client on every core
  finger --users FILE  answer one query line with the user's status, then close
                       (RFC 1288; FILE has user:status or user=status lines)
  logger --file PATH   append every line received to PATH

--io chooses the TCP data path: native (the default: weft's own io_uring ring per
core, multishot receive and batched sends) or glommio (glommio's streams); the
environment variable WEFT_IO sets the default the same way.

ENDPOINT uses Twisted's syntax: tcp:PORT[:interface=ADDR][:backlog=N],
tcp6:PORT[:interface=\\:\\:1], unix:PATH[:mode=660]; the default is tcp:8000.";

struct Options {
    service: String,
    endpoints: Vec<String>,
    cores: Option<usize>,
    max_connections: Option<usize>,
    drain_timeout: Option<Duration>,
    max_output_buffer: Option<usize>,
    quote: String,
    inbox_capacity: usize,
    framing: Framing,
    max_length: Option<usize>,
    delimiter: Option<Vec<u8>>,
    users: Option<String>,
    log_file: Option<String>,
    /// `--io`: None leaves the library's default (native unless `WEFT_IO=glommio`).
    native_io: Option<bool>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("serve") => {}
        Some("-h" | "--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown command {other:?}")),
    }
    let service = it.next().ok_or("missing SERVICE")?.clone();
    let mut o = Options {
        service,
        endpoints: Vec::new(),
        cores: None,
        max_connections: None,
        drain_timeout: None,
        max_output_buffer: None,
        quote: wire::DEFAULT_QUOTE.to_string(),
        inbox_capacity: weft::mesh::DEFAULT_INBOX_CAPACITY,
        framing: Framing::Raw,
        max_length: None,
        delimiter: None,
        users: None,
        log_file: None,
        native_io: None,
    };
    fn value<'a>(
        it: &mut impl Iterator<Item = &'a String>,
        flag: &str,
    ) -> Result<&'a String, String> {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    }
    fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
        s.parse()
            .map_err(|_| format!("{flag}: {s:?} is not a valid number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cores" => o.cores = Some(number(value(&mut it, a)?, a)?),
            "--max-connections" => o.max_connections = Some(number(value(&mut it, a)?, a)?),
            "--drain-timeout" => {
                let secs: f64 = number(value(&mut it, a)?, a)?;
                o.drain_timeout = Some(
                    Duration::try_from_secs_f64(secs).map_err(|_| format!("{a}: bad duration"))?,
                );
            }
            "--max-output-buffer" => o.max_output_buffer = Some(number(value(&mut it, a)?, a)?),
            "--quote" => o.quote = value(&mut it, a)?.clone(),
            "--inbox-capacity" => o.inbox_capacity = number(value(&mut it, a)?, a)?,
            "--framing" => o.framing = value(&mut it, a)?.parse()?,
            "--max-length" => o.max_length = Some(number(value(&mut it, a)?, a)?),
            "--delimiter" => o.delimiter = Some(framed::parse_delimiter(value(&mut it, a)?)?),
            "--users" => o.users = Some(value(&mut it, a)?.clone()),
            "--file" => o.log_file = Some(value(&mut it, a)?.clone()),
            "--io" => {
                o.native_io = Some(match value(&mut it, a)?.as_str() {
                    "native" => true,
                    "glommio" => false,
                    other => return Err(format!("--io: {other:?} is neither native nor glommio")),
                })
            }
            "--native-io" => o.native_io = Some(true), // the flag of weft 0.1, kept
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            endpoint => o.endpoints.push(endpoint.to_string()),
        }
    }
    if o.endpoints.is_empty() {
        o.endpoints.push("tcp:8000".into());
    }
    Ok(o)
}

/// Adds the service to the builder, behind the cross-shard connection limit if set.
fn listen<F, B>(b: ServerBuilder, o: &Options, build: B) -> ServerBuilder
where
    F: Factory,
    B: Fn(usize) -> F + Send + Sync + 'static,
{
    match o.max_connections {
        None => b.listen_all(&o.endpoints, build),
        Some(max) => {
            let counter = Arc::new(ConnectionCounter::default());
            b.listen_all(&o.endpoints, move |shard| {
                LimitTotalConnections::new(build(shard), max, Arc::clone(&counter))
            })
        }
    }
}

fn run(o: Options) -> Result<(), String> {
    let mut b = Server::builder().handle_signals(true);
    if let Some(on) = o.native_io {
        b = b.native_io(on);
    }
    if let Some(n) = o.cores {
        b = b.cores(n);
    }
    if let Some(d) = o.drain_timeout {
        b = b.drain_timeout(d);
    }
    if let Some(n) = o.max_output_buffer {
        b = b.max_output_buffer(n);
    }
    b = match o.service.as_str() {
        "echo" if o.framing == Framing::Raw && o.max_length.is_none() && o.delimiter.is_none() => {
            listen(b, &o, |_| SimpleFactory::new(|| wire::Echo))
        }
        "echo" => {
            let line = matches!(o.framing, Framing::Line | Framing::LineOnly);
            if o.framing == Framing::Raw {
                return Err("--max-length and --delimiter need a --framing other than raw".into());
            }
            if o.delimiter.is_some() && !line {
                return Err("--delimiter applies to --framing line and lineonly only".into());
            }
            let mut config = framed::EchoConfig::new(o.framing);
            config.max_length = o.max_length;
            if let Some(d) = &o.delimiter {
                config.delimiter = d.clone();
            }
            listen(b, &o, move |_| {
                framed::FramedEchoFactory::new(config.clone())
            })
        }
        "finger" => {
            let path = o.users.as_deref().ok_or("finger needs --users FILE")?;
            let users = finger::StaticUsers::from_file(std::path::Path::new(path))?;
            listen(b, &o, move |_| finger::FingerFactory::new(users.clone()))
        }
        "logger" => {
            let path = o.log_file.clone().ok_or("logger needs --file PATH")?;
            logger::LoggerFactory::open(std::path::Path::new(&path))
                .map_err(|e| format!("cannot open {path} for appending: {e}"))?;
            listen(b, &o, move |_| logger::LoggerFactory::new(&path))
        }
        "discard" => listen(b, &o, |_| SimpleFactory::new(|| wire::Discard)),
        "chargen" => listen(b, &o, |_| SimpleFactory::new(|| wire::Chargen)),
        "daytime" => listen(b, &o, |_| SimpleFactory::new(|| wire::Daytime)),
        "qotd" => {
            let quote = o.quote.clone();
            listen(b, &o, move |_| {
                let q: Rc<str> = Rc::from(quote.as_str());
                SimpleFactory::new(move || wire::Qotd::new(Rc::clone(&q)))
            })
        }
        "chat" => {
            let mesh = weft::services::chat::ChatMesh::new(b.shard_count(), o.inbox_capacity);
            listen(b, &o, move |shard| {
                weft::services::chat::ChatFactory::join(&mesh, shard)
            })
        }
        other => return Err(format!("unknown service {other:?}")),
    };
    let server = b.start().map_err(|e| e.to_string())?;
    if o.endpoints.iter().any(|e| weft::tls::is_ssl(e)) {
        reload_on_sighup()?;
    }
    for addr in server.addresses() {
        eprintln!("listening on {addr} ({} shards)", server.shards());
    }
    let summaries = server.join().map_err(|e| e.to_string())?;
    for s in summaries {
        eprintln!("{s}");
    }
    Ok(())
}

/// Reloads every `ssl:` endpoint's certificates on SIGHUP, from a thread of its own
/// (signal-hook's safe iterator: no `unsafe` outside the engine).
fn reload_on_sighup() -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    std::thread::Builder::new()
        .name("weft-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                tracing::info!("Received SIGHUP, reloading TLS certificates.");
                weft::tls::reload_all();
            }
        })
        .map_err(|e| format!("cannot start the SIGHUP thread: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("weft: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("weft: {msg}");
            ExitCode::FAILURE
        }
    }
}
