//! The log bot's protocol: IRC line parsing and the bot's reactions, with no I/O
//! beyond the `Transport` it is handed (unit-tested with `StringTransport`).
//!
//! What it does, after Twisted's `ircLogBot.py`:
//!
//! ```text
//! connection_made  NICK <nick>, USER <nick> foo bar :None; log "[connected]"
//! PING x           PONG x
//! 001 (welcome)    JOIN <channel>
//! 433 (nick taken) NICK <nick>^   (again, as long as it is taken)
//! JOIN             log "[I have joined #c]" / "[n has joined #c]"
//! PRIVMSG          log "<n> text"; ACTION: log "* n text"
//!   to the bot     reply "It isn't nice to whisper! Play nice with the group."
//!   "<bot>: …"     reply in the channel "<n>: I am a log bot" (and log it)
//! NICK             log "old is now known as new"
//! connection_lost  log "[disconnected]"
//! ```
//!
//! Every log line starts with the time, `[HH:MM:SS]` (UTC).

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use weft::{Protocol, Reason, Transport};

/// What the bot answers a private message with.
pub const WHISPER_REPLY: &str = "It isn't nice to whisper! Play nice with the group.";

/// The longest unfinished line the bot buffers before hanging up.
pub const MAX_LINE: usize = 16 * 1024;

/// One IRC message: `[:prefix] COMMAND params… [:trailing]` (RFC 1459 §2.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender (`nick!user@host` or a server name), if given.
    pub prefix: Option<String>,
    /// The command or three-digit reply code, upper-cased.
    pub command: String,
    /// The parameters, the trailing one included.
    pub params: Vec<String>,
}

impl Message {
    /// Parses one line (without its line ending); `None` for a blank line.
    pub fn parse(line: &str) -> Option<Message> {
        let mut rest = line.trim_start_matches(' ');
        let prefix = if let Some(p) = rest.strip_prefix(':') {
            let (prefix, after) = p.split_once(' ')?;
            rest = after.trim_start_matches(' ');
            Some(prefix.to_string())
        } else {
            None
        };
        let (command, mut rest) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_string());
                break;
            }
            match rest.split_once(' ') {
                Some((p, r)) => {
                    params.push(p.to_string());
                    rest = r;
                }
                None => {
                    params.push(rest.to_string());
                    break;
                }
            }
        }
        Some(Message {
            prefix,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// The sender's nick: the prefix up to `!`.
    pub fn nick(&self) -> &str {
        let p = self.prefix.as_deref().unwrap_or("");
        p.split_once('!').map_or(p, |(n, _)| n)
    }
}

/// Where the bot writes its log, and how it tells the time.
#[derive(Clone)]
pub struct Logger {
    out: Rc<RefCell<dyn Write>>,
    clock: Rc<dyn Fn() -> String>,
}

impl Logger {
    /// Logs to `out`, stamping each line with `clock()` (`HH:MM:SS`).
    pub fn new(out: Rc<RefCell<dyn Write>>, clock: Rc<dyn Fn() -> String>) -> Logger {
        Logger { out, clock }
    }

    fn log(&self, msg: &str) {
        let mut out = self.out.borrow_mut();
        // A full disk must not take the bot down: the line is lost, the bot goes on.
        let _ = writeln!(out, "[{}] {msg}", (self.clock)());
        let _ = out.flush();
    }
}

/// The current UTC time of day as `HH:MM:SS`.
pub fn utc_clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
}

/// The log bot of one connection.
pub struct LogBot {
    nick: String,
    channel: String,
    logger: Logger,
    partial: Vec<u8>,
}

impl LogBot {
    /// A bot that registers as `nick` and logs `channel` through `logger`.
    pub fn new(nick: &str, channel: &str, logger: Logger) -> LogBot {
        LogBot {
            nick: nick.to_string(),
            channel: channel.to_string(),
            logger,
            partial: Vec::new(),
        }
    }

    /// The nick the bot uses now (it grows a `^` per collision).
    #[allow(dead_code)] // read by the tests
    pub fn nick(&self) -> &str {
        &self.nick
    }

    fn send(t: &mut Transport, line: &str) {
        t.write_sequence([line.as_bytes(), b"\r\n"]);
    }

    fn say(&self, t: &mut Transport, target: &str, text: &str) {
        Self::send(t, &format!("PRIVMSG {target} :{text}"));
    }

    /// Reacts to one message.
    pub fn handle(&mut self, m: &Message, t: &mut Transport) {
        let param = |i: usize| m.params.get(i).map(String::as_str).unwrap_or("");
        match m.command.as_str() {
            "PING" => Self::send(
                t,
                &format!("PONG :{}", param(m.params.len().saturating_sub(1))),
            ),
            "001" => Self::send(t, &format!("JOIN {}", self.channel)),
            "433" => {
                self.nick.push('^');
                Self::send(t, &format!("NICK {}", self.nick));
            }
            "JOIN" => {
                let who = m.nick();
                if who == self.nick {
                    self.logger.log(&format!("[I have joined {}]", param(0)));
                } else {
                    self.logger.log(&format!("[{who} has joined {}]", param(0)));
                }
            }
            "NICK" => {
                let (old, new) = (m.nick().to_string(), param(0));
                if old == self.nick {
                    self.nick = new.to_string();
                }
                self.logger.log(&format!("{old} is now known as {new}"));
            }
            "PRIVMSG" => self.privmsg(m.nick(), param(0), param(1), t),
            _ => {}
        }
    }

    fn privmsg(&mut self, user: &str, target: &str, text: &str, t: &mut Transport) {
        if let Some(action) = text
            .strip_prefix("\u{1}ACTION ")
            .map(|a| a.trim_end_matches('\u{1}'))
        {
            self.logger.log(&format!("* {user} {action}"));
            return;
        }
        self.logger.log(&format!("<{user}> {text}"));
        if target == self.nick {
            self.say(t, user, WHISPER_REPLY);
            return;
        }
        if text
            .strip_prefix(self.nick.as_str())
            .is_some_and(|r| r.starts_with(':'))
        {
            let reply = format!("{user}: I am a log bot");
            self.say(t, target, &reply);
            self.logger.log(&format!("<{}> {reply}", self.nick));
        }
    }
}

impl Protocol for LogBot {
    fn connection_made(&mut self, t: &mut Transport) {
        self.logger.log("[connected]");
        Self::send(t, &format!("NICK {}", self.nick));
        Self::send(t, &format!("USER {} foo bar :None", self.nick));
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            // As Twisted's IRCClient: drop every CR, split on LF.
            let line: Vec<u8> = line
                .into_iter()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect();
            if let Some(m) = Message::parse(&String::from_utf8_lossy(&line)) {
                self.handle(&m, t);
            }
        }
        if self.partial.len() > MAX_LINE {
            // Not IRC (its lines are at most 512 bytes): do not buffer without bound.
            self.partial.clear();
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _reason: Reason) {
        self.logger.log("[disconnected]");
    }
}
