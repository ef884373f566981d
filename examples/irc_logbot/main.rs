//! An IRC log bot, after Twisted's `ircLogBot.py`: joins a channel, logs what is
//! said there to a file, answers mentions and whispers, and reconnects (with
//! back-off) whenever the connection is lost.
//!
//! ```text
//! cargo run --release --example irc_logbot -- --server tcp:host=HOST:port=PORT \
//!     --channel '#CHANNEL' --log FILE [--nick NICK]
//! ```
//!
//! `--server tls:host=HOST:port=PORT[:trustRoots=ca.pem]` connects over TLS (the
//! server's certificate is verified against HOST; the system's trust store by
//! default), as Twisted's `clientFromString(reactor, "tls:…")`.
//!
//! The protocol lives in `irc.rs` (no sockets, unit-tested with
//! `StringTransport`); this file wires it to a reconnecting client factory and
//! runs it on a one-shard reactor until SIGINT or SIGTERM.

mod irc;

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::process::ExitCode;
use std::rc::Rc;

use weft::client::{
    connect, react_with, ClientFactory, ConnectError, Connector, Reconnect,
    ReconnectingClientFactory,
};
use weft::tls::TlsClientFactory;
use weft::{Address, Reason, Server};

use irc::{LogBot, Logger};

const USAGE: &str = "usage: irc_logbot --server tcp:host=HOST:port=PORT|tls:host=HOST:port=PORT[:trustRoots=ca.pem] --channel '#CHANNEL' --log FILE [--nick NICK]";

struct Options {
    server: String,
    channel: String,
    log: String,
    nick: String,
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut server, mut channel, mut log) = (None, None, None);
    let mut nick = "twistedbot".to_string();
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--server" => server = Some(value()?),
            "--channel" => channel = Some(value()?),
            "--log" => log = Some(value()?),
            "--nick" => nick = value()?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options {
        server: server.ok_or("missing --server")?,
        channel: channel.ok_or("missing --channel")?,
        log: log.ok_or("missing --log")?,
        nick,
    })
}

/// Builds one bot per connection; the back-off restarts once connected.
struct LogBotFactory {
    nick: String,
    channel: String,
    logger: Logger,
    retry: Reconnect,
}

impl ClientFactory for LogBotFactory {
    type Protocol = LogBot;

    fn build_protocol(&mut self, _server: &Address) -> Option<LogBot> {
        self.retry.reset_delay();
        Some(LogBot::new(&self.nick, &self.channel, self.logger.clone()))
    }

    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        eprintln!("irc_logbot: {connector}: {reason}");
    }

    fn client_connection_lost(&mut self, _connector: &Connector, reason: &Reason) {
        eprintln!("irc_logbot: {reason}; reconnecting");
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("irc_logbot: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // A `tls:` server: the TCP endpoint plus the TLS config, built before the
    // reactor starts so that a bad file is reported at once.
    let (endpoint, tls) = if o.server.starts_with("tls:") {
        let built = weft::tls::parse_tls_endpoint(&o.server)
            .map_err(|e| e.to_string())
            .and_then(|(tcp, options)| {
                let config = options.config().map_err(|e| e.to_string())?;
                let name = weft::tls::rustls::pki_types::ServerName::try_from(options.server_name)
                    .map_err(|e| e.to_string())?;
                Ok((tcp, Some((config, name, options.handshake_timeout))))
            });
        match built {
            Ok(b) => b,
            Err(e) => {
                eprintln!("irc_logbot: --server: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        match o.server.parse() {
            Ok(e) => (e, None),
            Err(e) => {
                eprintln!("irc_logbot: --server: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let file = match OpenOptions::new().create(true).append(true).open(&o.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("irc_logbot: cannot open {}: {e}", o.log);
            return ExitCode::FAILURE;
        }
    };
    let reactor = Server::builder().cores(1).pin(false).handle_signals(true);
    let outcome = react_with(reactor, move |reactor| async move {
        let logger = Logger::new(Rc::new(RefCell::new(file)), Rc::new(irc::utc_clock));
        let retry = Reconnect::new();
        let factory = LogBotFactory {
            nick: o.nick,
            channel: o.channel,
            logger,
            retry: retry.clone(),
        };
        let factory = ReconnectingClientFactory::with_policy(retry, factory);
        match tls {
            Some((config, name, timeout)) => {
                let tls = TlsClientFactory::with_config(config, name, timeout, factory);
                connect(&reactor, endpoint, tls);
            }
            None => {
                connect(&reactor, endpoint, factory);
            }
        }
        // Runs until a signal stops the reactor.
        std::future::pending::<()>().await
    });
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("irc_logbot: {e}");
            ExitCode::FAILURE
        }
    }
}
