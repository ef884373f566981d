//! The built-in services: each one's options, on the command line (a `serve`
//! subcommand) and in a config file (a `[[service]]` table with `kind = "…"`), and
//! how each becomes a listening service.
//!
//! One struct per service serves both: clap reads it from `weft serve KIND …`,
//! serde from the file, so an option exists in both places or in neither, and an
//! option of another service is an error in both.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::{Deserialize, Deserializer};
use weft::application::ListeningService;
use weft::policies::{ConnectionCounts, PolicyFactory, PolicySettings, PolicyStats};
use weft::protocols::Framing;
use weft::services::wire::{self, SimpleFactory};
use weft::services::{chat, finger, framed, logger};
use weft::Factory;

use crate::cli::parse_endpoint;

/// A built-in service and its options.
#[derive(Debug, Clone, Subcommand, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ServiceSpec {
    /// Write back every byte (RFC 862), or every frame in a framing.
    #[command(after_help = concat!(
        "Examples:\n",
        "  weft serve echo tcp:8000\n",
        "  weft serve echo --framing line tcp:8000   then: nc -C localhost 8000\n",
        "  weft serve echo --framing netstring --max-length 1000 unix:/run/echo.sock\n\n",
        "Line-based framings wait for CRLF: plain `nc` sends LF only, so use `nc -C`."))]
    Echo(EchoOpts),
    /// Read and ignore everything (RFC 863).
    #[command(after_help = "Example: weft serve discard tcp:9009")]
    Discard(PlainOpts),
    /// Send the character pattern while the peer reads (RFC 864).
    #[command(
        after_help = "Example: weft serve chargen tcp:1919   then: nc localhost 1919 | head"
    )]
    Chargen(PlainOpts),
    /// Send the date and time, then close (RFC 867).
    #[command(
        after_help = "Example: weft serve daytime tcp:1313   then: nc -N localhost 1313 </dev/null"
    )]
    Daytime(PlainOpts),
    /// Send a quote, then close (RFC 865).
    #[command(after_help = "Example: weft serve qotd --quote 'Less is more.' tcp:8007")]
    Qotd(QotdOpts),
    /// The chat server: every line to every client on every core.
    #[command(after_help = concat!(
        "Example: weft serve chat tcp:8123   then, in two terminals: nc -C localhost 8123\n\n",
        "Lines must end in CRLF: plain `nc` sends LF only, so use `nc -C`."))]
    Chat(ChatOpts),
    /// Answer one query line with the user's status, then close (RFC 1288).
    #[command(after_help = concat!(
        "Example: weft serve finger --users users.txt tcp:79 --uid nobody --gid nogroup\n",
        "  then: finger moshez@localhost   or: printf 'moshez\\r\\n' | nc -N localhost 79\n\n",
        "The query line must end in CRLF: plain `nc` sends LF only, so use `nc -C`."))]
    Finger(FingerOpts),
    /// Append every line received to a file.
    #[command(after_help = concat!(
        "Example: weft serve logger --file /var/log/lines.log tcp:5140   then: nc -C localhost 5140\n\n",
        "Lines must end in CRLF: plain `nc` sends LF only, so use `nc -C`."))]
    Logger(LoggerOpts),
}

/// The options of a service that has none of its own: where it listens (the
/// positional ENDPOINTs, or the file's `listen`).
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainOpts {
    /// Endpoints in Twisted's syntax.
    #[arg(value_name = "ENDPOINT", default_value = "tcp:8000", value_parser = parse_endpoint)]
    #[serde(deserialize_with = "endpoints")]
    pub listen: Vec<String>,
}

/// `echo`'s options.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoOpts {
    /// Endpoints in Twisted's syntax.
    #[arg(value_name = "ENDPOINT", default_value = "tcp:8000", value_parser = parse_endpoint)]
    #[serde(deserialize_with = "endpoints")]
    pub listen: Vec<String>,
    /// The framing: raw, line, lineonly, netstring, int8, int16, int32.
    #[arg(long, default_value = "raw", value_parser = |s: &str| s.parse::<Framing>())]
    #[serde(default = "raw", deserialize_with = "from_str")]
    pub framing: Framing,
    /// The longest frame kept; longer ones close the connection [default:
    /// Twisted's MAX_LENGTH, 16384 for lines, 99999 otherwise].
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub max_length: Option<usize>,
    /// What ends a line (line and lineonly framings) [default: '\r\n']; the escapes
    /// \r \n \t \0 \\ \xHH are understood.
    #[arg(long, value_name = "STR", value_parser = |s: &str| framed::parse_delimiter(s).map(|_| s.to_string()))]
    #[serde(default)]
    pub delimiter: Option<String>,
}

/// `qotd`'s options.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QotdOpts {
    /// Endpoints in Twisted's syntax.
    #[arg(value_name = "ENDPOINT", default_value = "tcp:8000", value_parser = parse_endpoint)]
    #[serde(deserialize_with = "endpoints")]
    pub listen: Vec<String>,
    /// The quote.
    #[arg(long, value_name = "TEXT", default_value = wire::DEFAULT_QUOTE)]
    #[serde(default = "default_quote")]
    pub quote: String,
}

/// `chat`'s options.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatOpts {
    /// Endpoints in Twisted's syntax.
    #[arg(value_name = "ENDPOINT", default_value = "tcp:8000", value_parser = parse_endpoint)]
    #[serde(deserialize_with = "endpoints")]
    pub listen: Vec<String>,
    /// Lines each core's inbox holds for the others.
    #[arg(long, value_name = "N", default_value_t = weft::mesh::DEFAULT_INBOX_CAPACITY)]
    #[serde(default = "default_inbox")]
    pub inbox_capacity: usize,
    /// Joins the rooms of other weft processes over Redis pub/sub
    /// (redis://HOST[:PORT]/ROOM): every process on the same ROOM is one room.
    #[arg(long, value_name = "URL", value_parser = parse_bus)]
    #[serde(default, deserialize_with = "bus_url")]
    pub bus: Option<weft::bus::BusUrl>,
    /// Lines kept for the bus while it is unreachable; later ones are dropped for
    /// the other processes (and counted).
    #[arg(long, value_name = "N", default_value_t = weft::bus::DEFAULT_BUS_QUEUE)]
    #[serde(default = "default_bus_queue")]
    pub bus_queue: usize,
}

fn parse_bus(s: &str) -> Result<weft::bus::BusUrl, String> {
    s.parse().map_err(|e: weft::bus::BusUrlError| e.to_string())
}

fn bus_url<'de, D>(d: D) -> Result<Option<weft::bus::BusUrl>, D::Error>
where
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    parse_bus(&s).map(Some).map_err(serde::de::Error::custom)
}

fn default_bus_queue() -> usize {
    weft::bus::DEFAULT_BUS_QUEUE
}

/// `finger`'s options.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerOpts {
    /// Endpoints in Twisted's syntax.
    #[arg(value_name = "ENDPOINT", default_value = "tcp:8000", value_parser = parse_endpoint)]
    #[serde(deserialize_with = "endpoints")]
    pub listen: Vec<String>,
    /// The users file: `user:status` or `user=status` lines.
    #[arg(long, value_name = "FILE")]
    pub users: PathBuf,
}

/// `logger`'s options.
#[derive(Debug, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggerOpts {
    /// Endpoints in Twisted's syntax.
    #[arg(value_name = "ENDPOINT", default_value = "tcp:8000", value_parser = parse_endpoint)]
    #[serde(deserialize_with = "endpoints")]
    pub listen: Vec<String>,
    /// The file every line is appended to.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
}

fn raw() -> Framing {
    Framing::Raw
}

fn default_quote() -> String {
    wire::DEFAULT_QUOTE.to_string()
}

fn default_inbox() -> usize {
    weft::mesh::DEFAULT_INBOX_CAPACITY
}

fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn endpoints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(
            "`listen` needs at least one endpoint",
        ));
    }
    for e in &v {
        parse_endpoint(e).map_err(|m| serde::de::Error::custom(format!("{e:?}: {m}")))?;
    }
    Ok(v)
}

/// The policies every service of the process shares.
#[derive(Clone, Default)]
pub struct Policies {
    /// The settings (changed by SIGHUP).
    pub settings: Arc<PolicySettings>,
    /// The counts across every shard.
    pub counts: Arc<ConnectionCounts>,
    /// What the policies did.
    pub stats: Arc<PolicyStats>,
    /// Whether to wrap the factories at all (a policy is set, or may be by a reload).
    pub active: bool,
}

impl ServiceSpec {
    /// The service's kind, as written in a config file.
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceSpec::Echo(_) => "echo",
            ServiceSpec::Discard(_) => "discard",
            ServiceSpec::Chargen(_) => "chargen",
            ServiceSpec::Daytime(_) => "daytime",
            ServiceSpec::Qotd(_) => "qotd",
            ServiceSpec::Chat(_) => "chat",
            ServiceSpec::Finger(_) => "finger",
            ServiceSpec::Logger(_) => "logger",
        }
    }

    /// The endpoints it listens on.
    pub fn listen(&self) -> &[String] {
        match self {
            ServiceSpec::Echo(o) => &o.listen,
            ServiceSpec::Discard(o) | ServiceSpec::Chargen(o) | ServiceSpec::Daytime(o) => {
                &o.listen
            }
            ServiceSpec::Qotd(o) => &o.listen,
            ServiceSpec::Chat(o) => &o.listen,
            ServiceSpec::Finger(o) => &o.listen,
            ServiceSpec::Logger(o) => &o.listen,
        }
    }

    /// Builds the listening service, named `name`, for `shards` shards.
    ///
    /// # Errors
    /// A message naming the bad option or the file that cannot be read.
    pub fn build(
        &self,
        name: &str,
        shards: usize,
        policies: &Policies,
    ) -> Result<ListeningService, String> {
        let (datagram, listen): (Vec<String>, Vec<String>) =
            self.listen().iter().cloned().partition(|e| is_datagram(e));
        let stream = if listen.is_empty() {
            None
        } else {
            Some(self.build_stream(name, shards, policies, &listen)?)
        };
        if datagram.is_empty() {
            return stream.ok_or_else(|| "no endpoint to listen on".to_string());
        }
        let d = self.build_datagram(name, &datagram)?;
        Ok(match stream {
            Some(s) => s.and(d),
            None => d,
        })
    }

    /// The service's datagram form (RFCs 862 to 867 over UDP) on `listen`.
    fn build_datagram(&self, name: &str, listen: &[String]) -> Result<ListeningService, String> {
        use weft::services::datagram_wire as dw;
        Ok(match self {
            ServiceSpec::Echo(o) if o.framing == Framing::Raw => {
                ListeningService::datagram(name, listen, |_| dw::Echo)
            }
            ServiceSpec::Echo(_) => {
                return Err("--framing applies to stream endpoints only (udp: echoes each datagram whole)".into())
            }
            ServiceSpec::Discard(_) => ListeningService::datagram(name, listen, |_| dw::Discard),
            ServiceSpec::Chargen(_) => {
                ListeningService::datagram(name, listen, |_| dw::Chargen::default())
            }
            ServiceSpec::Daytime(_) => ListeningService::datagram(name, listen, |_| dw::Daytime),
            ServiceSpec::Qotd(o) => {
                let quote = o.quote.clone();
                ListeningService::datagram(name, listen, move |_| dw::Qotd::new(&quote))
            }
            other => {
                return Err(format!(
                    "{} has no datagram form: udp:, udp6: and unixgram: serve echo, discard, chargen, daytime and qotd",
                    other.kind()
                ))
            }
        })
    }

    /// The service on its stream endpoints `listen`.
    fn build_stream(
        &self,
        name: &str,
        shards: usize,
        policies: &Policies,
        listen: &[String],
    ) -> Result<ListeningService, String> {
        let listen = listen.to_vec();
        Ok(match self {
            ServiceSpec::Echo(o) if o.framing == Framing::Raw => {
                if o.max_length.is_some() || o.delimiter.is_some() {
                    return Err(
                        "--max-length and --delimiter need a --framing other than raw".into(),
                    );
                }
                listening(name, &listen, policies, |_| {
                    SimpleFactory::new(|| wire::Echo)
                })
            }
            ServiceSpec::Echo(o) => {
                let line = matches!(o.framing, Framing::Line | Framing::LineOnly);
                if o.delimiter.is_some() && !line {
                    return Err("--delimiter applies to --framing line and lineonly only".into());
                }
                let mut config = framed::EchoConfig::new(o.framing);
                config.max_length = o.max_length;
                if let Some(d) = &o.delimiter {
                    config.delimiter = framed::parse_delimiter(d)?;
                }
                listening(name, &listen, policies, move |_| {
                    framed::FramedEchoFactory::new(config.clone())
                })
            }
            ServiceSpec::Discard(_) => listening(name, &listen, policies, |_| {
                SimpleFactory::new(|| wire::Discard)
            }),
            ServiceSpec::Chargen(_) => listening(name, &listen, policies, |_| {
                SimpleFactory::new(|| wire::Chargen)
            }),
            ServiceSpec::Daytime(_) => listening(name, &listen, policies, |_| {
                SimpleFactory::new(|| wire::Daytime)
            }),
            ServiceSpec::Qotd(o) => {
                let quote = o.quote.clone();
                listening(name, &listen, policies, move |_| {
                    let q: Rc<str> = Rc::from(quote.as_str());
                    SimpleFactory::new(move || wire::Qotd::new(Rc::clone(&q)))
                })
            }
            ServiceSpec::Chat(o) => {
                let mesh = chat::ChatMesh::new(shards, o.inbox_capacity);
                let bus = o.bus.clone().map(|url| chat::ChatBus {
                    queue: o.bus_queue,
                    ..chat::ChatBus::new(url)
                });
                listening(name, &listen, policies, move |shard| {
                    chat::ChatFactory::join_with_bus(&mesh, shard, bus.as_ref())
                })
            }
            ServiceSpec::Finger(o) => {
                let users = finger::StaticUsers::from_file(&o.users)?;
                listening(name, &listen, policies, move |_| {
                    finger::FingerFactory::new(users.clone())
                })
            }
            ServiceSpec::Logger(o) => {
                let path = o.file.clone();
                logger::LoggerFactory::open(&path)
                    .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))?;
                let path = path.display().to_string();
                listening(name, &listen, policies, move |_| {
                    logger::LoggerFactory::new(&path)
                })
            }
        })
    }
}

/// Tells whether `endpoint` carries datagrams (`udp:`, `udp6:`, `unixgram:`).
fn is_datagram(endpoint: &str) -> bool {
    endpoint
        .parse::<weft::endpoints::ServerEndpoint>()
        .is_ok_and(|e| e.is_datagram())
}

/// A listening service for `build`, behind the policies if they are active.
fn listening<F, B>(name: &str, listen: &[String], policies: &Policies, build: B) -> ListeningService
where
    F: Factory,
    B: Fn(usize) -> F + Send + Sync + 'static,
{
    if !policies.active {
        return ListeningService::new(name, listen, build);
    }
    let p = policies.clone();
    ListeningService::new(name, listen, move |shard| {
        PolicyFactory::new(
            build(shard),
            Arc::clone(&p.settings),
            Arc::clone(&p.counts),
            Arc::clone(&p.stats),
        )
    })
}
