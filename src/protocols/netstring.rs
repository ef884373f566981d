//! Netstrings (`LEN:payload,`): the [`NetstringDecoder`] and Twisted's
//! `NetstringReceiver` on top of it.
//!
//! The grammar is Twisted's, which is stricter than D. J. Bernstein's text: the length
//! is `0` or a digit 1–9 followed by digits (no leading zeros, no sign, no spaces), and
//! the payload must be followed by a comma. Errors are raised as early as the bytes
//! allow: a length that passes the limit fails on the digit that passes it, before
//! the colon arrives; the comma is checked once `length + 1` payload bytes are in.
//!
//! ```text
//!   ┌────────┐  digits, ':'   ┌─────────┐  length bytes, ','  ┌────────┐
//!   │ Length │ ─────────────► │ Payload │ ──────────────────► │ Length │ …
//!   └────────┘                └─────────┘                     └────────┘
//!        │ bad byte / too long     │ no comma
//!        └──────────► Broken ◄─────┘   (all later input is dropped)
//! ```
//!
//! Digits are consumed as they arrive, so the buffer holds at most the payload and its
//! comma: `max_length + 1` bytes.
//!
//! # Twisted
//! * Every error is a `NetstringParseError` in Twisted; here each has its own
//!   [`NetstringError`] variant. The connection is closed silently either way.
//! * After an error Twisted keeps the bad bytes and fails again on every later read
//!   (with a buffer that grows); the decoder stops for good instead.

use std::fmt;
use std::io::Write as _;
use std::ops::{Deref, DerefMut};

use super::buffer::InputBuffer;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::Transport;

/// Twisted's `NetstringReceiver.MAX_LENGTH`: the longest payload accepted (inclusive).
pub const DEFAULT_MAX_NETSTRING_LENGTH: usize = 99_999;

/// Why a netstring stream was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetstringError {
    /// A netstring did not start with a digit (`:abc,`, `abc`).
    MissingLength,
    /// The length had a leading zero (`05:`, `00:`); `0:,` alone is valid.
    LeadingZero,
    /// The digits were followed by something other than a colon (`3abc,`).
    MissingColon,
    /// The length is larger than the limit; raised on the digit that passed it.
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The byte after the payload was not a comma (`4:abcde`).
    MissingComma,
}

impl fmt::Display for NetstringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetstringError::MissingLength => f.write_str("netstring does not start with a length"),
            NetstringError::LeadingZero => f.write_str("netstring length has a leading zero"),
            NetstringError::MissingColon => {
                f.write_str("netstring length is not followed by a colon")
            }
            NetstringError::TooLong { max } => {
                write!(f, "netstring is longer than the maximum of {max} bytes")
            }
            NetstringError::MissingComma => f.write_str("netstring is not terminated by a comma"),
        }
    }
}

impl std::error::Error for NetstringError {}

/// Where the decoder is in the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the length: its value and number of digits so far.
    Length { value: usize, digits: u32 },
    /// Waiting for `len` payload bytes and the comma.
    Payload { len: usize },
    /// An error was reported; input is dropped.
    Broken,
}

const START: State = State::Length {
    value: 0,
    digits: 0,
};

/// Decodes netstrings, sans-IO: [`feed`](Self::feed) bytes, then call
/// [`next_event`](Self::next_event) until it returns `None`.
///
/// # Examples
/// ```
/// use weft::protocols::{NetstringDecoder, NetstringError};
/// let mut d = NetstringDecoder::new();
/// d.feed(b"5:hello,0:,4:1:a,,05:");
/// assert_eq!(d.next_event(), Some(Ok(&b"hello"[..])));
/// assert_eq!(d.next_event(), Some(Ok(&b""[..])));
/// assert_eq!(d.next_event(), Some(Ok(&b"1:a,"[..])));
/// assert_eq!(d.next_event(), Some(Err(NetstringError::LeadingZero)));
/// assert_eq!(d.next_event(), None);
/// ```
///
/// # Security
/// Once its events are drained the decoder holds at most `max_length + 1` bytes.
#[derive(Debug, Clone)]
pub struct NetstringDecoder {
    max_length: usize,
    /// Twisted's `ceil(log10(MAX_LENGTH)) + 1`: more digits than this is an error.
    max_digits: u32,
    buf: InputBuffer,
    state: State,
}

impl Default for NetstringDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl NetstringDecoder {
    /// Creates a decoder with Twisted's limit of 99999 bytes.
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_NETSTRING_LENGTH)
    }

    /// Creates a decoder that accepts payloads up to `max_length` bytes.
    pub fn with_max_length(max_length: usize) -> Self {
        // ceil(log10(m)) is the number of digits of m - 1 (for m >= 2).
        let ceil_log10 = if max_length <= 1 {
            0
        } else {
            (max_length - 1).checked_ilog10().unwrap_or(0) + 1
        };
        NetstringDecoder {
            max_length,
            max_digits: ceil_log10 + 1,
            buf: InputBuffer::default(),
            state: START,
        }
    }

    /// Returns the longest payload accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Appends bytes; call [`next_event`](Self::next_event) next. Ignored once broken.
    #[inline]
    pub fn feed(&mut self, data: &[u8]) {
        if self.state != State::Broken {
            self.buf.push(data);
        }
    }

    /// Returns the next payload or error, or `None` when more bytes are needed. After
    /// an error the decoder is broken and returns `None` for good.
    #[inline]
    pub fn next_event(&mut self) -> Option<Result<&[u8], NetstringError>> {
        loop {
            match self.state {
                State::Broken => return None,
                State::Length { value, digits } => {
                    let &b = self.buf.pending().first()?;
                    let next = match b {
                        b'0'..=b'9' if digits > 0 && value == 0 => Err(NetstringError::LeadingZero),
                        b'0'..=b'9' => {
                            let value = value
                                .saturating_mul(10)
                                .saturating_add(usize::from(b - b'0'));
                            let digits = digits + 1;
                            if digits > self.max_digits || value > self.max_length {
                                Err(NetstringError::TooLong {
                                    max: self.max_length,
                                })
                            } else {
                                Ok(State::Length { value, digits })
                            }
                        }
                        b':' if digits > 0 => Ok(State::Payload { len: value }),
                        _ if digits == 0 => Err(NetstringError::MissingLength),
                        _ => Err(NetstringError::MissingColon),
                    };
                    match next {
                        Ok(s) => {
                            self.buf.consume(1);
                            self.state = s;
                        }
                        Err(e) => return Some(Err(self.fail(e))),
                    }
                }
                State::Payload { len } => {
                    let pending = self.buf.pending();
                    if pending.len() <= len {
                        return None;
                    }
                    if pending[len] != b',' {
                        return Some(Err(self.fail(NetstringError::MissingComma)));
                    }
                    self.state = START;
                    let (payload, _) = self.buf.consume_with_rest(len, 1);
                    return Some(Ok(payload));
                }
            }
        }
    }

    fn fail(&mut self, e: NetstringError) -> NetstringError {
        self.state = State::Broken;
        self.buf.clear();
        e
    }

    /// Returns how many bytes are buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Tells whether the decoder gave up after an error.
    pub fn is_broken(&self) -> bool {
        self.state == State::Broken
    }
}

/// Appends `payload` as a netstring (`LEN:payload,`) to `out`.
///
/// # Examples
/// ```
/// let mut out = Vec::new();
/// weft::protocols::netstring::encode(b"abc", &mut out);
/// assert_eq!(out, b"3:abc,");
/// ```
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    write!(out, "{}:", payload.len()).expect("writing to a Vec cannot fail");
    out.extend_from_slice(payload);
    out.push(b',');
}

/// What a [`NetstringReceiver`]'s user writes: Twisted's `NetstringReceiver` callbacks.
pub trait NetstringHandler: 'static {
    /// Called once the connection is up.
    fn connection_made(&mut self, t: &mut NetstringControl<'_>) {
        let _ = t;
    }

    /// Called with each payload.
    fn string_received(&mut self, string: &[u8], t: &mut NetstringControl<'_>);

    /// Called once when the stream breaks the grammar; the default closes the
    /// connection without sending anything (Twisted's `_handleParseError`).
    fn parse_error(&mut self, error: NetstringError, t: &mut NetstringControl<'_>) {
        let _ = error;
        t.lose_connection();
    }

    /// Called once, last, however the connection ended.
    fn connection_lost(&mut self, reason: Reason) {
        let _ = reason;
    }
}

/// The transport as a [`NetstringHandler`] sees it: a [`Transport`] plus `send_string`.
pub struct NetstringControl<'a> {
    transport: &'a mut Transport,
}

impl NetstringControl<'_> {
    /// Writes `string` as a netstring (Twisted's `sendString`). Any length can be sent:
    /// the limit applies to receiving only, as in Twisted.
    pub fn send_string(&mut self, string: &[u8]) {
        send_string(self.transport, string);
    }
}

fn send_string(t: &mut Transport, string: &[u8]) {
    let mut head = [0u8; 24];
    let mut cursor = &mut head[..];
    write!(cursor, "{}:", string.len()).expect("24 bytes hold any usize");
    let n = 24 - cursor.len();
    t.write_sequence([&head[..n], string, b","]);
}

impl Deref for NetstringControl<'_> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        self.transport
    }
}

impl DerefMut for NetstringControl<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.transport
    }
}

/// Twisted's `NetstringReceiver`: a [`Protocol`] that delivers netstring payloads to a
/// [`NetstringHandler`].
///
/// As in Twisted there is no `disconnecting` check and no pause: if `string_received`
/// closes the connection, the strings already buffered from the same read are still
/// delivered.
///
/// # Examples
/// ```
/// use weft::protocols::{NetstringControl, NetstringHandler, NetstringReceiver};
/// use weft::{testing::StringTransport, Protocol};
///
/// struct Echo;
/// impl NetstringHandler for Echo {
///     fn string_received(&mut self, s: &[u8], t: &mut NetstringControl<'_>) {
///         t.send_string(s);
///     }
/// }
/// let mut t = StringTransport::new();
/// let mut p = NetstringReceiver::new(Echo);
/// p.data_received(b"3:abc,", &mut t);
/// assert_eq!(t.value(), b"3:abc,");
/// p.data_received(b"03:", &mut t);
/// assert!(t.disconnecting());
/// ```
pub struct NetstringReceiver<H> {
    handler: H,
    decoder: NetstringDecoder,
}

impl<H: NetstringHandler> NetstringReceiver<H> {
    /// Wraps `handler` with Twisted's limit of 99999 bytes.
    pub fn new(handler: H) -> Self {
        Self::with_max_length(handler, DEFAULT_MAX_NETSTRING_LENGTH)
    }

    /// Wraps `handler`, accepting payloads up to `max_length` bytes.
    pub fn with_max_length(handler: H, max_length: usize) -> Self {
        NetstringReceiver {
            handler,
            decoder: NetstringDecoder::with_max_length(max_length),
        }
    }

    /// Returns the handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Returns the handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Returns the decoder.
    pub fn decoder(&self) -> &NetstringDecoder {
        &self.decoder
    }

    /// Writes `string` as a netstring (Twisted's `sendString`).
    pub fn send_string(&self, string: &[u8], t: &mut Transport) {
        send_string(t, string);
    }
}

impl<H: NetstringHandler> Protocol for NetstringReceiver<H> {
    fn connection_made(&mut self, t: &mut Transport) {
        self.handler
            .connection_made(&mut NetstringControl { transport: t });
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.decoder.feed(data);
        while let Some(event) = self.decoder.next_event() {
            let mut ctl = NetstringControl { transport: t };
            match event {
                Ok(s) => self.handler.string_received(s, &mut ctl),
                Err(e) => self.handler.parse_error(e, &mut ctl),
            }
        }
    }

    fn connection_lost(&mut self, reason: Reason) {
        self.handler.connection_lost(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_digits_follows_twisteds_formula() {
        let digits = |m| NetstringDecoder::with_max_length(m).max_digits;
        assert_eq!(digits(99_999), 6);
        assert_eq!(digits(100_000), 6);
        assert_eq!(digits(100_001), 7);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(11), 3);
        assert_eq!(digits(1), 1);
    }

    #[test]
    fn a_length_past_the_limit_fails_before_the_colon() {
        let mut d = NetstringDecoder::with_max_length(50);
        d.feed(b"5");
        assert_eq!(d.next_event(), None);
        d.feed(b"1");
        assert_eq!(
            d.next_event(),
            Some(Err(NetstringError::TooLong { max: 50 }))
        );
        assert!(d.is_broken());
    }
}
