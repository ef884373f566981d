//! The config file of `weft run`: TOML, every key of `weft print-config`.
//!
//! Errors name the file, the line and the field, on one line:
//! `weft: weft.toml:7: unknown field `frming`, expected one of …`.

use std::path::Path;

use crate::cli::{check_cores, check_secs, parse_metrics_endpoint, SharedArgs};

/// The annotated default config that `weft print-config` prints. A test checks
/// that it parses and that its values are the defaults.
pub const DEFAULT_CONFIG: &str = r#"# weft config file: run it with `weft run FILE`, check it with `weft check-config FILE`.
# Precedence: command-line options, then WEFT_* environment variables, then this
# file, then the defaults shown here. SIGHUP re-reads the file and applies the
# connection limits and the log level without dropping a connection.

# Shards: one executor per core. Default: every core this process may run on
# (more than that is refused).
# cores = 2

# Seconds a graceful stop (SIGINT, SIGTERM) waits for connections to drain.
drain_timeout = 5.0

# Bytes of output one connection may buffer before it is aborted.
max_output_buffer = 16777216

# Connection policies, for every service; none by default. Reloaded by SIGHUP.
# max_connections = 10000          # open at once, across every core
# max_connections_per_peer = 50    # open at once from one IP address
# idle_timeout = 300.0             # seconds with nothing received or written
# read_rate = 1048576              # bytes per second per connection
# write_rate = 1048576             # bytes per second per connection
# total_read_rate = 104857600      # bytes per second, every connection together
# total_write_rate = 104857600     # bytes per second, every connection together

# Share a TCP port another process already listens on (rolling restarts).
join_port_group = false

# Run every thread as this user and group once the listeners are bound (root only).
# uid = "nobody"
# gid = "nogroup"

# Logs: to stderr unless log_file is set (SIGUSR1 reopens it); "text" or "json";
# the filter in RUST_LOG's syntax (RUST_LOG, when set, wins over this).
# log_file = "/var/log/weft/weft.log"
log_format = "text"
log_level = "info"

# Prometheus metrics at http://ENDPOINT/metrics, served by one thread outside the
# shards (tcp: or tcp6: only); off by default. Every series: docs/operations.md.
# metrics = "tcp:9100:interface=127.0.0.1"

# One table per service: `kind` is a `weft serve` service (echo, discard, chargen,
# daytime, qotd, chat, finger, logger), `listen` its endpoints in Twisted's syntax,
# and the other keys its options (the long options of `weft serve KIND --help`).
[[service]]
kind = "echo"
listen = ["tcp:8000"]
framing = "raw"            # raw, line, lineonly, netstring, int8, int16, int32
# max_length = 16384
# delimiter = "\r\n"

# [[service]]
# kind = "finger"
# listen = ["tcp:79", "unix:/run/weft/finger.sock"]
# users = "/etc/weft/users"     # user:status lines

# [[service]]
# kind = "echo"
# listen = ["udp:7", "unixgram:/run/weft/echo.sock"]   # datagrams: echo, discard, daytime, qotd, chargen

# [[service]]
# kind = "qotd"
# listen = ["tcp:8007"]
# quote = "An apple a day keeps the doctor away."

# [[service]]
# kind = "chat"
# listen = ["tcp:8123"]
# inbox_capacity = 4096
# bus = "redis://127.0.0.1:6379/lobby"   # one room with other weft processes
# bus_queue = 1024

# [[service]]
# kind = "logger"
# listen = ["tcp:5140"]
# file = "/var/log/weft/lines.log"
"#;

/// A config file error: where, and what.
#[derive(Debug)]
pub struct ConfigError(pub String);

/// The 1-based line of byte offset `at` in `text`.
fn line_at(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The line on which `key = …` first appears, for errors found after parsing.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// A service's error is reported at its `[[service]]` line (serde reads a tagged
/// table whole): move it to the line of the unknown key or of the bad value.
fn refine_line(text: &str, line: usize, msg: &str) -> usize {
    let after = |pred: &dyn Fn(&str) -> bool| {
        text.lines()
            .enumerate()
            .skip(line - 1)
            .take_while(|(i, l)| *i == line - 1 || !l.trim_start().starts_with('['))
            .find(|(_, l)| pred(l))
            .map_or(line, |(i, _)| i + 1)
    };
    if let Some(key) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        return after(&|l: &str| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        });
    }
    if let Some(value) = msg.strip_prefix('"').and_then(|r| r.split('"').next()) {
        let quoted = format!("\"{value}\"");
        return after(&|l: &str| l.contains(&quoted));
    }
    line
}

/// Parses `text` (read from `path`) and checks the values that TOML's types do
/// not: cores within the machine's, durations not negative, at least one service.
///
/// # Errors
/// [`ConfigError`] naming `path`, the line and the field.
pub fn parse(path: &Path, text: &str) -> Result<SharedArgs, ConfigError> {
    let name = path.display();
    let config: SharedArgs = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let line = refine_line(text, line_at(text, span.start), &msg);
                // A type error does not name its key: the line does.
                let key = text
                    .lines()
                    .nth(line - 1)
                    .and_then(|l| l.split_once('='))
                    .map(|(k, _)| k.trim())
                    .filter(|k| {
                        !k.is_empty()
                            && k.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                            && !msg.contains(&format!("`{k}`"))
                    });
                match key {
                    Some(k) => ConfigError(format!("{name}:{line}: {k}: {msg}")),
                    None => ConfigError(format!("{name}:{line}: {msg}")),
                }
            }
            None => ConfigError(format!("{name}: {msg}")),
        }
    })?;
    let at = |key: &str, msg: String| {
        ConfigError(match line_of_key(text, key) {
            Some(line) => format!("{name}:{line}: {key}: {msg}"),
            None => format!("{name}: {key}: {msg}"),
        })
    };
    if let Some(n) = config.cores {
        check_cores(n).map_err(|m| at("cores", m))?;
    }
    for (key, v) in [
        ("drain_timeout", config.drain_timeout),
        ("idle_timeout", config.idle_timeout),
    ] {
        if let Some(secs) = v {
            check_secs(secs).map_err(|m| at(key, m))?;
        }
    }
    if let Some(level) = &config.log_level {
        tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| at("log_level", e.to_string()))?;
    }
    if let Some(ep) = &config.metrics {
        parse_metrics_endpoint(ep).map_err(|m| at("metrics", m))?;
    }
    if config.services.is_empty() {
        return Err(ConfigError(format!(
            "{name}: no [[service]] table: nothing to run"
        )));
    }
    Ok(config)
}

/// Reads and parses the file at `path`.
///
/// # Errors
/// [`ConfigError`] if it cannot be read or is not a valid config.
pub fn load(path: &Path) -> Result<SharedArgs, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_config_parses_to_the_defaults() {
        let c = parse(Path::new("default.toml"), DEFAULT_CONFIG).unwrap();
        assert_eq!(
            c.drain_timeout,
            Some(weft::runtime::DEFAULT_DRAIN_TIMEOUT.as_secs_f64())
        );
        assert_eq!(
            c.max_output_buffer,
            Some(weft::OutputLimits::default().max_buffer)
        );
        assert_eq!(c.services.len(), 1);
        assert!(!c.has_policy());
        assert_eq!(c.metrics, None);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text =
            "cores = 1\n\n[[service]]\nkind = \"echo\"\nlisten = [\"tcp:0\"]\nfrming = \"line\"\n";
        let e = parse(Path::new("x.toml"), text).unwrap_err().0;
        assert!(e.starts_with("x.toml:6: unknown field `frming`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn the_metrics_endpoint_is_read_and_must_be_tcp() {
        let svc = "[[service]]\nkind = \"echo\"\nlisten = [\"tcp:0\"]\n";
        let c = parse(
            Path::new("x.toml"),
            &format!("metrics = \"tcp:9100:interface=127.0.0.1\"\n{svc}"),
        )
        .unwrap();
        assert_eq!(c.metrics.as_deref(), Some("tcp:9100:interface=127.0.0.1"));
        let e = parse(
            Path::new("x.toml"),
            &format!("\nmetrics = \"unix:/tmp/m.sock\"\n{svc}"),
        )
        .unwrap_err()
        .0;
        assert!(e.starts_with("x.toml:2: metrics: "), "{e}");
    }

    #[test]
    fn a_bad_endpoint_and_an_unknown_service_are_named() {
        let e = parse(
            Path::new("x.toml"),
            "[[service]]\nkind = \"echo\"\nlisten = [\"tcp:99999\"]\n",
        )
        .unwrap_err()
        .0;
        assert!(e.starts_with("x.toml:3: listen: \"tcp:99999\""), "{e}");
        assert!(e.contains("port"), "{e}");
        let e = parse(
            Path::new("x.toml"),
            "[[service]]\nkind = \"gopher\"\nlisten = [\"tcp:0\"]\n",
        )
        .unwrap_err()
        .0;
        assert!(e.contains("gopher"), "{e}");
    }
}
