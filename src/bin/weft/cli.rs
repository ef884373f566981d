//! The command line: clap's derive, one subcommand per built-in service.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::catalog::ServiceSpec;

/// Exit codes and the environment, shown at the end of `weft --help`.
const AFTER_HELP: &str = "\
Exit codes:
  0        stopped cleanly (SIGINT or SIGTERM, connections drained)
  1        failed while running (io_uring unavailable, a shard failed)
  2        usage or configuration error: a bad flag or value, a bad config file, a bad
           endpoint, a port in use or below 1024 without root, an unknown user
  130/143  a second SIGINT/SIGTERM stopped the server at once, without draining

Every option of `serve` and `run` can also be set by an environment variable
WEFT_<OPTION> (WEFT_CORES=2); the command line wins over the environment, which wins
over the config file. Logs are filtered by --log-level, else RUST_LOG (default info).

Examples:
  weft serve echo tcp:8000
  weft serve finger --users /etc/weft/users tcp:79 --uid nobody --gid nogroup
  weft run /etc/weft/weft.toml
  weft print-config > weft.toml
  weft completions bash > /etc/bash_completion.d/weft";

/// Twisted's Protocol/Factory/Transport model on one io_uring executor per core.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve one built-in service on every core.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Run the services of a TOML config file in one process.
    #[command(
        after_help = "Example: weft run weft.toml --cores 2\nSee `weft print-config` for every setting."
    )]
    Run(RunArgs),
    /// Validate a config file: prints nothing and exits 0 if it is good, else names
    /// the line and the field and exits 2.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print every setting of a config file with its default and a comment.
    PrintConfig,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

const SERVE_HELP: &str = "\
ENDPOINT uses Twisted's syntax: tcp:PORT[:interface=ADDR][:backlog=N],
tcp6:PORT[:interface=\\:\\:1], unix:PATH[:mode=660]; the default is tcp:8000.

Examples:
  weft serve echo tcp:8000 --cores 2
  weft serve qotd --quote 'Less is more.' tcp:8007
  printf 'moshez\\r\\n' | nc -N localhost 79     (or: finger moshez@localhost)";

/// `weft serve SERVICE [ENDPOINT...] [options]`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service.
    #[command(subcommand)]
    pub service: ServiceSpec,
    /// Settings shared by every service.
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// `weft run FILE [options]`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The TOML config file (see `weft print-config`).
    pub file: PathBuf,
    /// Settings that override the file's.
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// How log events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings shared by every service of a process; each is also a config-file key
/// and a WEFT_* variable. `None` means "not given here". The same struct reads the
/// config file (`services` is the file's `[[service]]` tables), so a setting exists
/// in both places or in neither.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedArgs {
    /// Shards (one executor per core) [default: every core this process may use;
    /// more than that is refused].
    #[arg(long, global = true, env = "WEFT_CORES", value_name = "N", value_parser = parse_cores)]
    pub cores: Option<usize>,
    /// Most connections open at once, across every core [default: no limit].
    #[arg(long, global = true, env = "WEFT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most connections open at once from one IP address, across every core
    /// (Twisted's LimitConnectionsByPeer) [default: no limit].
    #[arg(
        long,
        global = true,
        env = "WEFT_MAX_CONNECTIONS_PER_PEER",
        value_name = "N"
    )]
    pub max_connections_per_peer: Option<usize>,
    /// Close a connection after this many seconds with nothing received or written
    /// (Twisted's TimeoutMixin) [default: never].
    #[arg(long, global = true, env = "WEFT_IDLE_TIMEOUT", value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<f64>,
    /// Most bytes read per second per connection (ThrottlingFactory's readLimit)
    /// [default: no limit].
    #[arg(long, global = true, env = "WEFT_READ_RATE", value_name = "BYTES")]
    pub read_rate: Option<u64>,
    /// Most bytes written per second per connection; past it reading pauses
    /// (ThrottlingFactory's writeLimit) [default: no limit].
    #[arg(long, global = true, env = "WEFT_WRITE_RATE", value_name = "BYTES")]
    pub write_rate: Option<u64>,
    /// Most bytes read per second by all connections together, across every core
    /// (ThrottlingFactory's readLimit over all its protocols) [default: no limit].
    #[arg(
        long,
        global = true,
        env = "WEFT_TOTAL_READ_RATE",
        value_name = "BYTES"
    )]
    pub total_read_rate: Option<u64>,
    /// Most bytes written per second by all connections together, across every
    /// core; past it the connections that write pause reading [default: no limit].
    #[arg(
        long,
        global = true,
        env = "WEFT_TOTAL_WRITE_RATE",
        value_name = "BYTES"
    )]
    pub total_write_rate: Option<u64>,
    /// Seconds a graceful stop waits for connections to drain [default: 5].
    #[arg(long, global = true, env = "WEFT_DRAIN_TIMEOUT", value_name = "SECS", value_parser = parse_secs)]
    pub drain_timeout: Option<f64>,
    /// Bytes of output one connection may buffer before it is aborted
    /// [default: 16777216].
    #[arg(
        long,
        global = true,
        env = "WEFT_MAX_OUTPUT_BUFFER",
        value_name = "BYTES"
    )]
    pub max_output_buffer: Option<usize>,
    /// Share a TCP port another process already listens on (SO_REUSEPORT: the
    /// kernel splits the connections), as a rolling restart does; without it such
    /// a port is refused.
    #[arg(long, global = true)]
    #[serde(default)]
    pub join_port_group: bool,
    /// Run every thread as this user (name or number) once the listeners are
    /// bound; needs root.
    #[arg(long, global = true, env = "WEFT_UID", value_name = "USER")]
    pub uid: Option<String>,
    /// Run every thread as this group (name or number) [default: the user's
    /// primary group]; supplementary groups are dropped.
    #[arg(long, global = true, env = "WEFT_GID", value_name = "GROUP")]
    pub gid: Option<String>,
    /// Write logs to this file instead of stderr; SIGUSR1 reopens it (logrotate).
    #[arg(long, global = true, env = "WEFT_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// How log events are written [default: text].
    #[arg(long, global = true, env = "WEFT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Which events are logged, in RUST_LOG's syntax (info, debug,
    /// weft::runtime=debug…) [default: RUST_LOG, else info].
    #[arg(long, global = true, env = "WEFT_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Serve Prometheus metrics at http://ENDPOINT/metrics, for example
    /// tcp:9100:interface=127.0.0.1 (tcp: or tcp6: only) [default: off].
    #[arg(long, global = true, env = "WEFT_METRICS", value_name = "ENDPOINT", value_parser = parse_metrics_endpoint)]
    pub metrics: Option<String>,
    /// The config file's services (`[[service]]` tables); never on the command line.
    #[arg(skip)]
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSpec>,
}

impl SharedArgs {
    /// These settings where given, else `lower`'s (command line over file).
    pub fn or(self, lower: SharedArgs) -> SharedArgs {
        SharedArgs {
            cores: self.cores.or(lower.cores),
            max_connections: self.max_connections.or(lower.max_connections),
            max_connections_per_peer: self
                .max_connections_per_peer
                .or(lower.max_connections_per_peer),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            read_rate: self.read_rate.or(lower.read_rate),
            write_rate: self.write_rate.or(lower.write_rate),
            total_read_rate: self.total_read_rate.or(lower.total_read_rate),
            total_write_rate: self.total_write_rate.or(lower.total_write_rate),
            drain_timeout: self.drain_timeout.or(lower.drain_timeout),
            max_output_buffer: self.max_output_buffer.or(lower.max_output_buffer),
            join_port_group: self.join_port_group || lower.join_port_group,
            uid: self.uid.or(lower.uid),
            gid: self.gid.or(lower.gid),
            log_file: self.log_file.or(lower.log_file),
            log_format: self.log_format.or(lower.log_format),
            log_level: self.log_level.or(lower.log_level),
            metrics: self.metrics.or(lower.metrics),
            services: if self.services.is_empty() {
                lower.services
            } else {
                self.services
            },
        }
    }

    /// Whether any connection policy is set.
    pub fn has_policy(&self) -> bool {
        self.max_connections.is_some()
            || self.max_connections_per_peer.is_some()
            || self.idle_timeout.is_some()
            || self.read_rate.is_some()
            || self.write_rate.is_some()
            || self.total_read_rate.is_some()
            || self.total_write_rate.is_some()
    }

    /// Applies the connection policies to `p` (at start, and at each reload).
    pub fn apply_policies(&self, p: &weft::policies::PolicySettings) {
        p.set_max_connections(self.max_connections);
        p.set_max_connections_per_peer(self.max_connections_per_peer);
        p.set_idle_timeout(self.idle_timeout.map(std::time::Duration::from_secs_f64));
        p.set_read_rate(self.read_rate);
        p.set_write_rate(self.write_rate);
        p.set_total_read_rate(self.total_read_rate);
        p.set_total_write_rate(self.total_write_rate);
    }
}

/// The cores this process may run on (the default shard count).
pub fn available_cores() -> usize {
    weft::Server::builder().shard_count()
}

fn parse_cores(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    check_cores(n)
}

/// Refuses 0 cores and more than this process may run on.
pub fn check_cores(n: usize) -> Result<usize, String> {
    let max = available_cores();
    if n == 0 {
        Err("must be at least 1".into())
    } else if n > max {
        Err(format!(
            "{n} is more than the {max} cores this process may run on"
        ))
    } else {
        Ok(n)
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    check_secs(secs)
}

/// Refuses negative, infinite and NaN durations.
pub fn check_secs(secs: f64) -> Result<f64, String> {
    if secs.is_finite() && secs >= 0.0 {
        Ok(secs)
    } else {
        Err("must be a number of seconds, 0 or more".into())
    }
}

/// Checks an endpoint string (clap's value parser for ENDPOINT).
pub fn parse_endpoint(s: &str) -> Result<String, String> {
    // `haproxy:` wraps any other endpoint; the inner one is what is checked.
    let inner = weft::haproxy::inner_endpoint(s).unwrap_or(s);
    if weft::tls::is_ssl(inner) {
        // The options are checked here; the files are read when the server starts.
        return weft::tls::parse_ssl_endpoint(inner)
            .map(|_| s.to_string())
            .map_err(|e| e.to_string());
    }
    inner
        .parse::<weft::endpoints::ServerEndpoint>()
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Checks the metrics endpoint: Twisted's syntax, and TCP (the exporter is HTTP).
pub fn parse_metrics_endpoint(s: &str) -> Result<String, String> {
    match s.parse::<weft::endpoints::ServerEndpoint>() {
        Ok(weft::endpoints::ServerEndpoint::Tcp { .. }) => Ok(s.to_string()),
        Ok(_) => Err("the metrics endpoint must be tcp: or tcp6:".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
