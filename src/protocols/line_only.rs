//! Lines only: the [`LineOnlyDecoder`] and Twisted's `LineOnlyReceiver` on top of it.
//!
//! Twisted's `LineOnlyReceiver` is the faster sibling of `LineReceiver`: no raw mode,
//! no pause, and its own length rule, kept here because the wire behaviour differs:
//!
//! * a complete line longer than `max_length` trips with *that line* as the argument;
//! * after the lines of one `data_received`, an unterminated rest longer than
//!   `max_length` (`>`, not `>= max_length + len(delimiter)`) trips with that rest.
//!
//! The second rule makes the outcome depend on segmentation: a line of exactly
//! `max_length` bytes whose `\r` and `\n` arrive in different reads is rejected, while
//! the same bytes in one read are accepted (Twisted #3353). The decoder therefore needs
//! to know where one read ends: the rest is checked when
//! [`next_event`](LineOnlyDecoder::next_event) runs out of lines after a
//! [`feed`](LineOnlyDecoder::feed), so drain the events of one `feed` before the next.
//!
//! ```text
//!   ┌─────────┐  Line(l)        ┌────────┐
//!   │ Parsing │ ──────────────► │ Broken │  after LengthExceeded, all input is dropped
//!   └─────────┘  LengthExceeded └────────┘
//! ```
//!
//! # Twisted
//! After `lineLengthExceeded` Twisted keeps its buffer and goes on parsing if the
//! handler did not close, re-reporting the same over-long rest on every read with a
//! buffer that grows without bound. Here the decoder stops after the first report
//! (the default handler closes anyway), which keeps memory within the limit.

use std::ops::{Deref, DerefMut};

use super::buffer::InputBuffer;
use super::delimiter;
use super::line::{LineEvent, DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH};
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::Transport;

/// Splits bytes into lines with `LineOnlyReceiver`'s rules, sans-IO.
///
/// Events are [`LineEvent::Line`] and [`LineEvent::LengthExceeded`] (never `Raw`).
///
/// # Examples
/// ```
/// use weft::protocols::{LineEvent, LineOnlyDecoder};
/// let mut d = LineOnlyDecoder::with_limits(b"\n", 3);
/// d.feed(b"abc\nabcd");
/// assert_eq!(d.next_event(), Some(LineEvent::Line(b"abc")));
/// assert_eq!(d.next_event(), Some(LineEvent::LengthExceeded(b"abcd")));
/// assert_eq!(d.next_event(), None);
/// ```
///
/// # Security
/// Once the events of a `feed` are drained the decoder holds at most `max_length`
/// bytes.
#[derive(Debug, Clone)]
pub struct LineOnlyDecoder {
    delimiter: Box<[u8]>,
    max_length: usize,
    buf: InputBuffer,
    scan: usize,
    /// The rest has not been checked since the last `feed`.
    check_rest: bool,
    broken: bool,
}

impl Default for LineOnlyDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl LineOnlyDecoder {
    /// Creates a decoder with Twisted's defaults: CRLF, 16384 bytes.
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH)
    }

    /// Creates a decoder with the given delimiter and longest accepted line.
    ///
    /// # Panics
    /// If `delimiter` is empty.
    pub fn with_limits(delimiter: &[u8], max_length: usize) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        LineOnlyDecoder {
            delimiter: delimiter.into(),
            max_length,
            buf: InputBuffer::default(),
            scan: 0,
            check_rest: false,
            broken: false,
        }
    }

    /// Returns the delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// Appends the bytes of one read; drain [`next_event`](Self::next_event) next.
    #[inline]
    pub fn feed(&mut self, data: &[u8]) {
        if !self.broken {
            self.buf.push(data);
            self.check_rest = true;
        }
    }

    /// Returns the next event, or `None` when more bytes are needed.
    #[inline]
    pub fn next_event(&mut self) -> Option<LineEvent<'_>> {
        if self.broken {
            return None;
        }
        let pending = self.buf.pending();
        match delimiter::find(&pending[self.scan..], &self.delimiter) {
            Ok(at) => {
                let at = self.scan + at;
                self.scan = 0;
                let too_long = at > self.max_length;
                self.broken = too_long;
                let (line, _) = self.buf.consume_with_rest(at, self.delimiter.len());
                Some(if too_long {
                    LineEvent::LengthExceeded(line)
                } else {
                    LineEvent::Line(line)
                })
            }
            Err(resume) => {
                self.scan += resume;
                let check = std::mem::take(&mut self.check_rest);
                if check && self.buf.len() > self.max_length {
                    self.broken = true;
                    self.scan = 0;
                    let n = self.buf.len();
                    Some(LineEvent::LengthExceeded(self.buf.consume(n)))
                } else {
                    None
                }
            }
        }
    }

    /// Drops the complete lines still buffered from the last `feed` and skips its rest
    /// check: what Twisted does when it finds the transport disconnecting.
    pub fn abandon_feed(&mut self) {
        if let Some(at) = delimiter::rfind(self.buf.pending(), &self.delimiter) {
            self.buf.consume(at + self.delimiter.len());
        }
        self.scan = 0;
        self.check_rest = false;
    }

    /// Returns how many bytes are buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Tells whether the decoder gave up after a `LengthExceeded`.
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

/// What a [`LineOnlyReceiver`]'s user writes: Twisted's `LineOnlyReceiver` callbacks.
pub trait LineOnlyHandler: 'static {
    /// Called once the connection is up.
    fn connection_made(&mut self, t: &mut LineOnlyControl<'_>) {
        let _ = t;
    }

    /// Called with each line, without its delimiter.
    fn line_received(&mut self, line: &[u8], t: &mut LineOnlyControl<'_>);

    /// Called with an over-long line or unterminated rest; the default closes the
    /// connection without sending anything, as Twisted's (since Twisted PR #918).
    fn line_length_exceeded(&mut self, line: &[u8], t: &mut LineOnlyControl<'_>) {
        let _ = line;
        t.lose_connection();
    }

    /// Called once, last, however the connection ended.
    fn connection_lost(&mut self, reason: Reason) {
        let _ = reason;
    }
}

/// The transport as a [`LineOnlyHandler`] sees it: a [`Transport`] plus `send_line`.
pub struct LineOnlyControl<'a> {
    transport: &'a mut Transport,
    delimiter: &'a [u8],
}

impl LineOnlyControl<'_> {
    /// Writes `line` and the delimiter as one `write_sequence` (Twisted's `sendLine`).
    pub fn send_line(&mut self, line: &[u8]) {
        self.transport.write_sequence([line, self.delimiter]);
    }

    /// Returns the delimiter.
    pub fn delimiter(&self) -> &[u8] {
        self.delimiter
    }
}

impl Deref for LineOnlyControl<'_> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        self.transport
    }
}

impl DerefMut for LineOnlyControl<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.transport
    }
}

/// Twisted's `LineOnlyReceiver`: a [`Protocol`] that delivers lines to a
/// [`LineOnlyHandler`], with the length rules of the module docs.
///
/// Before each line it checks `transport.disconnecting()`; if set, the lines left from
/// this read are dropped, as in Twisted.
///
/// # Examples
/// ```
/// use weft::protocols::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
/// use weft::{testing::StringTransport, Protocol};
///
/// struct Echo;
/// impl LineOnlyHandler for Echo {
///     fn line_received(&mut self, line: &[u8], t: &mut LineOnlyControl<'_>) {
///         t.send_line(line);
///     }
/// }
/// let mut t = StringTransport::new();
/// let mut p = LineOnlyReceiver::new(Echo);
/// p.data_received(b"a\r\nb\r\n", &mut t);
/// assert_eq!(t.value(), b"a\r\nb\r\n");
/// ```
pub struct LineOnlyReceiver<H> {
    handler: H,
    decoder: LineOnlyDecoder,
    delimiter: Box<[u8]>,
}

impl<H: LineOnlyHandler> LineOnlyReceiver<H> {
    /// Wraps `handler` with Twisted's defaults: CRLF, lines up to 16384 bytes.
    pub fn new(handler: H) -> Self {
        Self::with_limits(handler, DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH)
    }

    /// Wraps `handler` with the given delimiter and longest accepted line.
    ///
    /// # Panics
    /// If `delimiter` is empty.
    pub fn with_limits(handler: H, delimiter: &[u8], max_length: usize) -> Self {
        LineOnlyReceiver {
            handler,
            decoder: LineOnlyDecoder::with_limits(delimiter, max_length),
            delimiter: delimiter.into(),
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
    pub fn decoder(&self) -> &LineOnlyDecoder {
        &self.decoder
    }

    /// Writes `line` and the delimiter (Twisted's `sendLine`).
    pub fn send_line(&self, line: &[u8], t: &mut Transport) {
        t.write_sequence([line, &self.delimiter[..]]);
    }
}

impl<H: LineOnlyHandler> Protocol for LineOnlyReceiver<H> {
    fn connection_made(&mut self, t: &mut Transport) {
        let mut ctl = LineOnlyControl {
            transport: t,
            delimiter: &self.delimiter,
        };
        self.handler.connection_made(&mut ctl);
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.decoder.feed(data);
        loop {
            let disconnecting = t.disconnecting();
            let Some(event) = self.decoder.next_event() else {
                return;
            };
            let mut ctl = LineOnlyControl {
                transport: t,
                delimiter: &self.delimiter,
            };
            match event {
                LineEvent::Line(_) if disconnecting => {
                    self.decoder.abandon_feed();
                    return;
                }
                LineEvent::Line(line) => self.handler.line_received(line, &mut ctl),
                LineEvent::LengthExceeded(line) | LineEvent::Raw(line) => {
                    self.handler.line_length_exceeded(line, &mut ctl);
                    return;
                }
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
    fn a_line_of_max_length_split_before_its_last_delimiter_byte_is_rejected() {
        let mut d = LineOnlyDecoder::with_limits(b"\r\n", 4);
        d.feed(b"xxxx\r");
        assert_eq!(d.next_event(), Some(LineEvent::LengthExceeded(b"xxxx\r")));
        let mut whole = LineOnlyDecoder::with_limits(b"\r\n", 4);
        whole.feed(b"xxxx\r\n");
        assert_eq!(whole.next_event(), Some(LineEvent::Line(b"xxxx")));
    }

    #[test]
    fn the_rest_is_checked_once_per_feed() {
        let mut d = LineOnlyDecoder::with_limits(b"\n", 2);
        d.feed(b"ab");
        assert_eq!(d.next_event(), None);
        assert_eq!(d.next_event(), None);
        d.feed(b"c");
        assert_eq!(d.next_event(), Some(LineEvent::LengthExceeded(b"abc")));
        d.feed(b"\n");
        assert_eq!(d.next_event(), None);
    }
}
