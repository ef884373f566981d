//! Framed echo: every frame received is written back in the same framing.
//!
//! `weft serve echo --framing F` runs this; it is what benchmarks of the helper
//! protocols (`loadgen echo --framing F`) measure. Each framing is the matching
//! receiver of [`crate::protocols`] with a handler that echoes:
//!
//! | [`Framing`] | receiver | echo | default limit |
//! |---|---|---|---|
//! | `Raw` | none ([`Echo`]) | every chunk as it comes | none |
//! | `Line` | [`LineReceiver`] | `send_line(line)` | 16384 |
//! | `LineOnly` | [`LineOnlyReceiver`] | `send_line(line)` | 16384 |
//! | `Netstring` | [`NetstringReceiver`] | `send_string(s)` | 99999 |
//! | `Int8/16/32` | [`IntNStringReceiver`] | `send_string(s)` | 99999 |
//!
//! Errors are handled by the receivers' defaults, which are Twisted's: an over-long
//! line or frame, or a malformed netstring, closes *that* connection without sending
//! anything more (frames completed before it were echoed). Other connections are
//! untouched.
//!
//! # Delimiters
//! [`parse_delimiter`] turns the command line's `--delimiter` text into bytes; it knows
//! the escapes `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH`, so `--delimiter '\n'` means LF
//! and `--delimiter '\r\n'` (the default) means CRLF.

use crate::address::Address;
use crate::factory::Factory;
use crate::protocol::Protocol;
use crate::protocols::{
    Framing, IntNControl, IntNStringHandler, IntNStringReceiver, LineControl, LineHandler,
    LineOnlyControl, LineOnlyHandler, LineOnlyReceiver, LineReceiver, NetstringControl,
    NetstringHandler, NetstringReceiver, DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_NETSTRING_LENGTH, DEFAULT_MAX_STRING_LENGTH,
};
use crate::reason::Reason;
use crate::services::wire::Echo;
use crate::transport::Transport;

/// How a framed echo frames: the framing, its limit and (for lines) its delimiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoConfig {
    /// The framing.
    pub framing: Framing,
    /// The longest line or frame accepted (inclusive); `None` is the receiver's
    /// Twisted default (16384 for lines, 99999 otherwise). Ignored for `Raw`.
    pub max_length: Option<usize>,
    /// The line delimiter (line framings only); never empty.
    pub delimiter: Vec<u8>,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            framing: Framing::Raw,
            max_length: None,
            delimiter: DEFAULT_DELIMITER.to_vec(),
        }
    }
}

impl EchoConfig {
    /// A config for `framing` with the defaults.
    pub fn new(framing: Framing) -> Self {
        EchoConfig {
            framing,
            ..Self::default()
        }
    }

    /// The limit in force: the one given or the framing's default.
    pub fn effective_max_length(&self) -> usize {
        self.max_length.unwrap_or(match self.framing {
            Framing::Line | Framing::LineOnly => DEFAULT_MAX_LINE_LENGTH,
            Framing::Netstring => DEFAULT_MAX_NETSTRING_LENGTH,
            _ => DEFAULT_MAX_STRING_LENGTH,
        })
    }

    /// Builds one connection's protocol.
    ///
    /// # Panics
    /// If a line framing is given an empty delimiter.
    pub fn build(&self) -> FramedEcho {
        let max = self.effective_max_length();
        match self.framing {
            Framing::Raw => FramedEcho::Raw(Echo),
            Framing::Line => {
                FramedEcho::Line(LineReceiver::with_limits(LineEcho, &self.delimiter, max))
            }
            Framing::LineOnly => FramedEcho::LineOnly(LineOnlyReceiver::with_limits(
                LineEcho,
                &self.delimiter,
                max,
            )),
            Framing::Netstring => {
                FramedEcho::Netstring(NetstringReceiver::with_max_length(StringEcho, max))
            }
            Framing::Int8 => FramedEcho::Int8(IntNStringReceiver::with_max_length(StringEcho, max)),
            Framing::Int16 => {
                FramedEcho::Int16(IntNStringReceiver::with_max_length(StringEcho, max))
            }
            Framing::Int32 => {
                FramedEcho::Int32(IntNStringReceiver::with_max_length(StringEcho, max))
            }
        }
    }
}

/// Turns `--delimiter` text into bytes: `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` are
/// escapes, every other character stands for itself (UTF-8).
///
/// # Errors
/// An empty result, an unknown escape, or a bad `\x`.
///
/// # Examples
/// ```
/// use weft::services::framed::parse_delimiter;
/// assert_eq!(parse_delimiter(r"\r\n").unwrap(), b"\r\n");
/// assert_eq!(parse_delimiter(r"\x00|").unwrap(), b"\0|");
/// assert!(parse_delimiter("").is_err());
/// ```
pub fn parse_delimiter(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("bad escape \\x{hex} in delimiter {text:?}"))?;
                out.push(b);
            }
            Some(other) => return Err(format!("unknown escape \\{other} in delimiter {text:?}")),
            None => return Err(format!("delimiter {text:?} ends with a lone backslash")),
        }
    }
    if out.is_empty() {
        return Err("the delimiter cannot be empty".into());
    }
    Ok(out)
}

/// Echoes lines (for both line receivers).
#[derive(Debug, Default, Clone, Copy)]
pub struct LineEcho;

impl LineHandler for LineEcho {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        t.send_line(line);
    }
}

impl LineOnlyHandler for LineEcho {
    fn line_received(&mut self, line: &[u8], t: &mut LineOnlyControl<'_>) {
        t.send_line(line);
    }
}

/// Echoes netstrings and length-prefixed strings.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringEcho;

impl NetstringHandler for StringEcho {
    fn string_received(&mut self, s: &[u8], t: &mut NetstringControl<'_>) {
        t.send_string(s);
    }
}

impl<const N: usize> IntNStringHandler<N> for StringEcho {
    fn string_received(&mut self, s: &[u8], t: &mut IntNControl<'_, N>) {
        // A frame that arrived with an N-byte prefix always fits one going back.
        if t.send_string(s).is_err() {
            t.lose_connection();
        }
    }
}

/// One framed-echo connection: the receiver for the configured framing.
pub enum FramedEcho {
    /// Plain echo (RFC 862).
    Raw(Echo),
    /// `LineReceiver` echo.
    Line(LineReceiver<LineEcho>),
    /// `LineOnlyReceiver` echo.
    LineOnly(LineOnlyReceiver<LineEcho>),
    /// `NetstringReceiver` echo.
    Netstring(NetstringReceiver<StringEcho>),
    /// `Int8StringReceiver` echo.
    Int8(IntNStringReceiver<StringEcho, 1>),
    /// `Int16StringReceiver` echo.
    Int16(IntNStringReceiver<StringEcho, 2>),
    /// `Int32StringReceiver` echo.
    Int32(IntNStringReceiver<StringEcho, 4>),
}

/// Calls the same method on whichever receiver this is.
macro_rules! each {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            FramedEcho::Raw($p) => $e,
            FramedEcho::Line($p) => $e,
            FramedEcho::LineOnly($p) => $e,
            FramedEcho::Netstring($p) => $e,
            FramedEcho::Int8($p) => $e,
            FramedEcho::Int16($p) => $e,
            FramedEcho::Int32($p) => $e,
        }
    };
}

impl Protocol for FramedEcho {
    fn connection_made(&mut self, t: &mut Transport) {
        each!(self, p => p.connection_made(t))
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        each!(self, p => p.data_received(data, t))
    }

    fn connection_lost(&mut self, reason: Reason) {
        each!(self, p => p.connection_lost(reason))
    }

    fn pause_producing(&mut self, t: &mut Transport) {
        each!(self, p => p.pause_producing(t))
    }

    fn resume_producing(&mut self, t: &mut Transport) {
        each!(self, p => p.resume_producing(t))
    }

    fn half_closeable(&self) -> bool {
        each!(self, p => p.half_closeable())
    }

    fn read_connection_lost(&mut self, t: &mut Transport) {
        each!(self, p => p.read_connection_lost(t))
    }
}

/// The framed echo's factory: one [`FramedEcho`] per connection.
#[derive(Debug, Clone)]
pub struct FramedEchoFactory {
    config: EchoConfig,
}

impl FramedEchoFactory {
    /// Creates the factory.
    ///
    /// # Panics
    /// If a line framing is given an empty delimiter.
    pub fn new(config: EchoConfig) -> Self {
        assert!(
            !config.delimiter.is_empty(),
            "a line delimiter cannot be empty"
        );
        FramedEchoFactory { config }
    }
}

impl Factory for FramedEchoFactory {
    type Protocol = FramedEcho;
    fn build_protocol(&mut self, _peer: &Address) -> Option<FramedEcho> {
        Some(self.config.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{feed_chunked, StringTransport};

    fn echo(config: &EchoConfig, input: &[u8], chunk: usize) -> (Vec<u8>, bool) {
        let mut t = StringTransport::new();
        let mut p = config.build();
        p.connection_made(&mut t);
        feed_chunked(&mut p, &mut t, input, chunk);
        (t.value(), t.disconnecting())
    }

    #[test]
    fn every_framing_echoes_whole_frames_at_every_chunking() {
        let payloads: [&[u8]; 4] = [b"hello", b"", b"a\nb\rc", &[0x80; 200]];
        for name in [
            "raw",
            "line",
            "lineonly",
            "netstring",
            "int8",
            "int16",
            "int32",
        ] {
            let framing: Framing = name.parse().unwrap();
            let config = EchoConfig::new(framing);
            let mut wire = Vec::new();
            for p in payloads {
                framing.encode(p, b"\r\n", &mut wire).unwrap();
            }
            for chunk in [1, 2, 3, 7, wire.len()] {
                assert_eq!(
                    echo(&config, &wire, chunk),
                    (wire.clone(), false),
                    "{name} {chunk}"
                );
            }
        }
    }

    #[test]
    fn max_length_is_inclusive_and_one_more_closes_silently() {
        for name in ["line", "lineonly", "netstring", "int8", "int16", "int32"] {
            let framing: Framing = name.parse().unwrap();
            let config = EchoConfig {
                max_length: Some(8),
                ..EchoConfig::new(framing)
            };
            let mut ok = Vec::new();
            framing.encode(b"12345678", b"\r\n", &mut ok).unwrap();
            assert_eq!(echo(&config, &ok, ok.len()), (ok.clone(), false), "{name}");
            let mut bad = ok.clone();
            framing.encode(b"123456789", b"\r\n", &mut bad).unwrap();
            framing.encode(b"after", b"\r\n", &mut bad).unwrap();
            assert_eq!(echo(&config, &bad, bad.len()), (ok, true), "{name}");
        }
    }

    #[test]
    fn custom_delimiter() {
        let config = EchoConfig {
            delimiter: parse_delimiter(r"\n").unwrap(),
            ..EchoConfig::new(Framing::Line)
        };
        assert_eq!(echo(&config, b"a\r\nb\n", 1), (b"a\r\nb\n".to_vec(), false));
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(parse_delimiter("|").unwrap(), b"|");
        assert_eq!(parse_delimiter(r"\t\\\0").unwrap(), b"\t\\\0");
        assert_eq!(parse_delimiter("é").unwrap(), "é".as_bytes());
        assert!(parse_delimiter(r"\q").is_err());
        assert!(parse_delimiter(r"\x4").is_err());
        assert!(parse_delimiter(r"\xzz").is_err());
        assert!(parse_delimiter("\\").is_err());
    }
}
