//! Lines and raw data: the [`LineDecoder`] and Twisted's `LineReceiver` on top of it.
//!
//! The decoder has two modes. In line mode it splits the input at a delimiter (CRLF by
//! default; a lone `\n` or `\r` is ordinary content); in raw mode it hands out whatever
//! is buffered as one chunk. Switching modes never loses or reorders a byte: what is
//! buffered when the mode changes is parsed in the new mode.
//!
//! ```text
//!             set_raw_mode                   Line(l)        line ≤ max, delimiter found
//!   ┌──────┐ ─────────────► ┌─────┐           LengthExceeded  no delimiter in the first
//!   │ Line │                │ Raw │                           max + len(delimiter) bytes
//!   └──────┘ ◄───────────── └─────┘          Raw(chunk)     everything buffered
//!             set_line_mode
//! ```
//!
//! # Limits, exactly as Twisted
//! A line of exactly `max_length` bytes is accepted. [`LineEvent::LengthExceeded`]
//! fires in Twisted's two cases, and both hand out the whole buffer:
//!
//! 1. a delimiter is found but the line before it is longer than `max_length`: the
//!    argument is the line, the delimiter and everything after it;
//! 2. no delimiter is found and at least `max_length + len(delimiter)` bytes are
//!    buffered.
//!
//! Both amount to "no delimiter ends within the first `max_length + len(delimiter)`
//! bytes", which is what the decoder checks, so the search never looks further than
//! that. Whether a stream trips does not depend on how it is chunked; the argument
//! does (it is whatever had arrived), as in Twisted (#6536, #6556). After the event the
//! buffer is empty and parsing goes on with the next bytes fed.
//!
//! # The receiver
//! [`LineReceiver`] wraps a [`LineHandler`] and implements [`Protocol`]. The handler's
//! callbacks get a [`LineControl`], which dereferences to the [`Transport`] and adds
//! `send_line`, `set_raw_mode`, `set_line_mode(extra)`, `clear_line_buffer` and
//! `pause_producing`/`stop_producing`. Lines are borrowed from the decoder's buffer,
//! so the control records mode switches and pauses and the receiver applies them when
//! the callback returns, before the next line: the order Twisted's loop gives.
//!
//! # Examples
//! ```
//! use weft::protocols::{LineControl, LineHandler, LineReceiver};
//! use weft::{testing::StringTransport, Protocol};
//!
//! struct Shout;
//! impl LineHandler for Shout {
//!     fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
//!         t.send_line(&line.to_ascii_uppercase());
//!     }
//! }
//!
//! let mut t = StringTransport::new();
//! let mut p = LineReceiver::new(Shout);
//! p.connection_made(&mut t);
//! p.data_received(b"hel", &mut t);
//! p.data_received(b"lo\r\nworld\r\n", &mut t);
//! assert_eq!(t.value(), b"HELLO\r\nWORLD\r\n");
//! ```

use std::ops::{Deref, DerefMut};

use super::buffer::InputBuffer;
use super::delimiter;
use super::read_hold::ReadHold;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::Transport;

/// Twisted's `LineReceiver.MAX_LENGTH`: the longest line accepted (inclusive).
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16_384;

/// Twisted's default `delimiter`: CRLF.
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";

/// What a [`LineDecoder`] hands out; every slice borrows the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line, without its delimiter (line mode).
    Line(&'a [u8]),
    /// Everything that was buffered, as one chunk (raw mode).
    Raw(&'a [u8]),
    /// No delimiter ends within `max_length + len(delimiter)` bytes: this is the whole
    /// buffer, which is now empty (Twisted's `lineLengthExceeded` argument).
    LengthExceeded(&'a [u8]),
}

/// The decoder's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Line,
    Raw,
}

/// Splits bytes into lines (or raw chunks), sans-IO: [`feed`](Self::feed) bytes, then
/// call [`next_event`](Self::next_event) until it returns `None`.
///
/// # Examples
/// ```
/// use weft::protocols::{LineDecoder, LineEvent};
/// let mut d = LineDecoder::new();
/// d.feed(b"one\r\ntw");
/// assert_eq!(d.next_event(), Some(LineEvent::Line(b"one")));
/// assert_eq!(d.next_event(), None);
/// d.feed(b"o\r\n");
/// assert_eq!(d.next_event(), Some(LineEvent::Line(b"two")));
/// ```
///
/// # Security
/// Once its events are drained the decoder holds fewer than
/// `max_length + len(delimiter)` bytes; longer input becomes
/// [`LineEvent::LengthExceeded`]. The delimiter search never rescans a byte.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    delimiter: Box<[u8]>,
    max_length: usize,
    buf: InputBuffer,
    /// Offset into the pending bytes where the next delimiter search starts.
    scan: usize,
    mode: Mode,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl LineDecoder {
    /// Creates a decoder in line mode with Twisted's defaults: CRLF, 16384 bytes.
    pub fn new() -> LineDecoder {
        Self::with_limits(DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH)
    }

    /// Creates a decoder with the given delimiter and longest accepted line.
    ///
    /// # Panics
    /// If `delimiter` is empty.
    pub fn with_limits(delimiter: &[u8], max_length: usize) -> LineDecoder {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        LineDecoder {
            delimiter: delimiter.into(),
            max_length,
            buf: InputBuffer::default(),
            scan: 0,
            mode: Mode::Line,
        }
    }

    /// Returns the delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// Returns the longest line accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Appends bytes to the buffer; call [`next_event`](Self::next_event) next.
    #[inline]
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.push(data);
    }

    /// Appends bytes already searched up to `scanned` (a `delimiter::find` resume
    /// offset within `data`) to an empty buffer, so the next search starts there.
    pub(crate) fn feed_scanned(&mut self, data: &[u8], scanned: usize) {
        debug_assert!(self.buf.is_empty() && scanned <= data.len());
        self.buf.push(data);
        self.scan = scanned;
    }

    /// Returns the next event, or `None` when more bytes are needed.
    #[inline]
    pub fn next_event(&mut self) -> Option<LineEvent<'_>> {
        self.next_event_and_rest().map(|(e, _)| e)
    }

    /// Returns the next event together with the bytes still buffered after it (what
    /// Twisted's `clearLineBuffer` would return from inside the callback).
    #[inline]
    pub fn next_event_and_rest(&mut self) -> Option<(LineEvent<'_>, &[u8])> {
        if self.buf.is_empty() {
            return None;
        }
        if self.mode == Mode::Raw {
            self.scan = 0;
            let n = self.buf.len();
            return Some((LineEvent::Raw(self.buf.consume(n)), &[]));
        }
        let dlen = self.delimiter.len();
        let window = self.max_length.saturating_add(dlen);
        let pending = self.buf.pending();
        // A delimiter that does not end inside the window means a line too long,
        // whether or not it is further on: never search past the window.
        let end = pending.len().min(window);
        match delimiter::find(&pending[self.scan..end], &self.delimiter) {
            Ok(at) => {
                let at = self.scan + at;
                self.scan = 0;
                let (line, rest) = self.buf.consume_with_rest(at, dlen);
                Some((LineEvent::Line(line), rest))
            }
            Err(resume) => {
                self.scan += resume;
                if pending.len() >= window {
                    self.scan = 0;
                    let n = self.buf.len();
                    Some((LineEvent::LengthExceeded(self.buf.consume(n)), &[]))
                } else {
                    None
                }
            }
        }
    }

    /// Switches to raw mode: from the next event on, buffered bytes come out as
    /// [`LineEvent::Raw`].
    pub fn set_raw_mode(&mut self) {
        self.mode = Mode::Raw;
    }

    /// Switches to line mode.
    pub fn set_line_mode(&mut self) {
        self.mode = Mode::Line;
    }

    /// Tells whether the decoder is in line mode.
    pub fn is_line_mode(&self) -> bool {
        self.mode == Mode::Line
    }

    /// Returns the bytes buffered and not yet handed out.
    pub fn buffer(&self) -> &[u8] {
        self.buf.pending()
    }

    /// Returns how many bytes are buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Hands the last `n` bytes of the chunk just returned as [`LineEvent::Raw`] back
    /// to the buffer, to be parsed again (in whatever mode is set by then).
    ///
    /// # Panics
    /// If `n` is more than that chunk, or bytes were fed since.
    pub fn unconsume(&mut self, n: usize) {
        self.buf.unconsume(n);
        self.scan = 0;
    }

    /// Drops every buffered byte (Twisted's `clearLineBuffer`).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.scan = 0;
    }
}

/// What a [`LineReceiver`]'s user writes: Twisted's `LineReceiver` callbacks.
///
/// Every callback gets a [`LineControl`], which is the transport (it dereferences to
/// [`Transport`]) plus the receiver's own operations.
pub trait LineHandler: 'static {
    /// Called once the connection is up (Twisted's `connectionMade`).
    fn connection_made(&mut self, t: &mut LineControl<'_>) {
        let _ = t;
    }

    /// Called with each line, without its delimiter.
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>);

    /// Called in raw mode with each chunk of data.
    ///
    /// # Twisted
    /// Twisted's default raises `NotImplementedError`, which drops the connection; the
    /// default here ignores the data (override it before calling `set_raw_mode`).
    fn raw_data_received(&mut self, data: &[u8], t: &mut LineControl<'_>) {
        let _ = (data, t);
    }

    /// Called when a line is too long, with the whole buffer (see the module docs);
    /// the default closes the connection without sending anything, as Twisted's.
    fn line_length_exceeded(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        let _ = line;
        t.lose_connection();
    }

    /// Called once, last, however the connection ended.
    fn connection_lost(&mut self, reason: Reason) {
        let _ = reason;
    }
}

/// Requests a handler made through its [`LineControl`], applied after the callback.
#[derive(Debug, Default)]
struct Requests {
    mode: Option<Mode>,
    /// Bytes to parse after a switch back to line mode.
    extra: Vec<u8>,
    /// How many bytes at the end of the current raw chunk to parse again, when
    /// `set_line_mode` was given a suffix of that chunk: no copy needed.
    reparse: usize,
    clear: bool,
    pause: bool,
    /// The receiver's own pause of reading; lives here so the handler's
    /// `pause_producing` and the engine's reach the same one.
    read_hold: ReadHold,
}

impl Requests {
    /// Tells whether the last callback asked for nothing.
    #[inline]
    fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.extra.is_empty()
            && self.reparse == 0
            && !self.clear
            && !self.pause
    }
}

/// The transport as a [`LineHandler`] sees it: a [`Transport`] (through `Deref`) plus
/// the receiver's operations. Mode switches, clears and pauses take effect when the
/// callback returns, before the next line is parsed.
pub struct LineControl<'a> {
    transport: &'a mut Transport,
    req: &'a mut Requests,
    delimiter: &'a [u8],
    rest: &'a [u8],
    /// The raw chunk being delivered, if any.
    raw: &'a [u8],
}

impl<'a> LineControl<'a> {
    /// Writes `line` followed by the delimiter (Twisted's `sendLine`).
    ///
    /// # Twisted
    /// The line is not checked for the delimiter, as in Twisted.
    pub fn send_line(&mut self, line: &[u8]) {
        self.transport.write_sequence([line, self.delimiter]);
    }

    /// Returns the delimiter lines are split at.
    pub fn delimiter(&self) -> &[u8] {
        self.delimiter
    }

    /// Switches to raw mode: the rest of the buffer, and all later data, goes to
    /// `raw_data_received` (Twisted's `setRawMode`).
    pub fn set_raw_mode(&mut self) {
        self.req.mode = Some(Mode::Raw);
    }

    /// Switches back to line mode, parsing `extra` (bytes a `raw_data_received` did not
    /// consume) as lines before anything else arrives (Twisted's `setLineMode`).
    ///
    /// `extra` goes after whatever is still buffered, so from `line_received` pass
    /// nothing, as Twisted's documentation says.
    ///
    /// Passing a suffix of the chunk given to `raw_data_received` (the usual
    /// `&data[consumed..]`) costs nothing: those bytes are still in the buffer.
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        self.req.mode = Some(Mode::Line);
        if extra.is_empty() {
            return;
        }
        let (r, e) = (self.raw.as_ptr_range(), extra.as_ptr_range());
        if self.req.reparse == 0
            && self.req.extra.is_empty()
            && e.end == r.end
            && e.start >= r.start
        {
            self.req.reparse = extra.len();
        } else {
            self.req.extra.extend_from_slice(extra);
        }
    }

    /// Returns the bytes buffered after the current line and drops them from the
    /// buffer (Twisted's `clearLineBuffer`). A second call returns nothing.
    pub fn clear_line_buffer(&mut self) -> &'a [u8] {
        let rest = if self.req.clear { &[] } else { self.rest };
        self.req.clear = true;
        self.req.extra.clear();
        self.req.reparse = 0;
        rest
    }

    /// Stops delivering lines and stops reading until the receiver's
    /// [`resume_producing`](Protocol::resume_producing) (Twisted's `pauseProducing`).
    /// Lines already buffered wait and are delivered on resume.
    pub fn pause_producing(&mut self) {
        self.req.pause = true;
        self.req.read_hold.pause(self.transport);
    }

    /// Stops delivering lines for good and closes the connection (Twisted's
    /// `stopProducing`, whose TCP transport closes).
    pub fn stop_producing(&mut self) {
        self.req.pause = true;
        self.transport.lose_connection();
    }
}

impl Deref for LineControl<'_> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        self.transport
    }
}

impl DerefMut for LineControl<'_> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.transport
    }
}

/// Twisted's `LineReceiver`: a [`Protocol`] that delivers lines (and, in raw mode,
/// chunks) to a [`LineHandler`].
///
/// Rules kept from Twisted: the two length checks of the module docs; the default
/// `line_length_exceeded` closes silently; a mode switch inside a callback applies to
/// the rest of the buffer; while paused, buffered lines wait; no line is delivered once
/// `transport.disconnecting()` is true (raw data still is).
///
/// # Twisted
/// * Twisted checks `disconnecting` after each line; weft checks before each one, so a
///   `data_received` made while already disconnecting delivers nothing. The engine
///   stops reading at `lose_connection`, so this only shows when driving a receiver by
///   hand.
/// * Twisted calls `pauseProducing`/`resumeProducing` only once the receiver is
///   registered as its transport's producer. weft's engine calls
///   [`Protocol::pause_producing`] on every connection whose output passes the high
///   watermark, so a `LineReceiver` also stops parsing while its output is backlogged
///   (read back-pressure; the bytes on the wire are the same).
/// * A truthy return value from `lineReceived` has no equivalent: callbacks return `()`.
pub struct LineReceiver<H> {
    handler: H,
    decoder: LineDecoder,
    delimiter: Box<[u8]>,
    req: Requests,
    paused: bool,
}

impl<H: LineHandler> LineReceiver<H> {
    /// Wraps `handler` with Twisted's defaults: CRLF, lines up to 16384 bytes.
    pub fn new(handler: H) -> Self {
        Self::with_limits(handler, DEFAULT_DELIMITER, DEFAULT_MAX_LINE_LENGTH)
    }

    /// Wraps `handler` with the given delimiter and longest accepted line.
    ///
    /// # Panics
    /// If `delimiter` is empty.
    pub fn with_limits(handler: H, delimiter: &[u8], max_length: usize) -> Self {
        LineReceiver {
            handler,
            decoder: LineDecoder::with_limits(delimiter, max_length),
            delimiter: delimiter.into(),
            req: Requests::default(),
            paused: false,
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

    /// Returns the decoder (its mode and buffer).
    pub fn decoder(&self) -> &LineDecoder {
        &self.decoder
    }

    /// Tells whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Writes `line` followed by the delimiter (Twisted's `sendLine`).
    pub fn send_line(&self, line: &[u8], t: &mut Transport) {
        t.write_sequence([line, &self.delimiter[..]]);
    }

    /// Switches to raw mode from outside a callback (Twisted's `setRawMode`).
    pub fn set_raw_mode(&mut self) {
        self.decoder.set_raw_mode();
    }

    /// Switches to line mode from outside a callback and parses `extra` at once
    /// (Twisted's `setLineMode(extra)`, which calls `dataReceived(extra)`).
    pub fn set_line_mode(&mut self, extra: &[u8], t: &mut Transport) {
        self.decoder.set_line_mode();
        if !extra.is_empty() {
            self.data_received(extra, t);
        }
    }

    /// Empties the buffer and returns what it held (Twisted's `clearLineBuffer`).
    pub fn clear_line_buffer(&mut self) -> Vec<u8> {
        let b = self.decoder.buffer().to_vec();
        self.decoder.clear();
        b
    }

    /// Applies what the last callback asked for.
    fn apply(&mut self) {
        let req = &mut self.req;
        if req.clear {
            self.decoder.clear();
        }
        if req.reparse > 0 {
            self.decoder.unconsume(std::mem::take(&mut req.reparse));
        }
        match req.mode.take() {
            Some(Mode::Raw) => self.decoder.set_raw_mode(),
            Some(Mode::Line) => self.decoder.set_line_mode(),
            None => {}
        }
        if !req.extra.is_empty() {
            self.decoder.feed(&req.extra);
            req.extra.clear();
        }
        if req.pause {
            self.paused = true;
        }
        req.clear = false;
        req.pause = false;
    }

    /// The common case, nothing buffered and in line mode: delivers the complete
    /// lines of `data` where they lie, without copying them into the buffer, and
    /// buffers only what is left (a partial line, or everything after a callback
    /// asked for something). Lines, their order, `clear_line_buffer`'s rest and
    /// every request are the same as through the buffer. Returns whether the
    /// buffer may hold something to deliver (`false`: at most a partial line).
    fn deliver_in_place(&mut self, data: &[u8], t: &mut Transport) -> bool {
        let window = self
            .decoder
            .max_length()
            .saturating_add(self.delimiter.len());
        let mut rest = data;
        loop {
            if t.disconnecting() {
                break;
            }
            let end = rest.len().min(window);
            let at = match delimiter::find(&rest[..end], &self.delimiter) {
                Ok(at) => at,
                Err(resume) if end < window => {
                    // A partial line: buffered, and its scan resumes where this stopped.
                    self.decoder.feed_scanned(rest, resume);
                    return false;
                }
                // Too long: the decoder reports it from the buffer.
                Err(_) => break,
            };
            let (line, after) = (&rest[..at], &rest[at + self.delimiter.len()..]);
            let mut ctl = LineControl {
                transport: t,
                req: &mut self.req,
                delimiter: &self.delimiter,
                rest: after,
                raw: &[],
            };
            self.handler.line_received(line, &mut ctl);
            rest = after;
            if !self.req.is_empty() {
                // Requests act on the buffer: put the rest there first, as if it
                // had been buffered all along.
                self.decoder.feed(rest);
                self.apply();
                return true;
            }
        }
        self.decoder.feed(rest);
        true
    }

    /// Delivers buffered lines until more bytes are needed, a pause, or a close.
    fn deliver(&mut self, t: &mut Transport) {
        while !self.paused {
            if self.decoder.is_line_mode() && t.disconnecting() {
                return;
            }
            let Some((event, rest)) = self.decoder.next_event_and_rest() else {
                return;
            };
            let mut ctl = LineControl {
                transport: t,
                req: &mut self.req,
                delimiter: &self.delimiter,
                rest,
                raw: match event {
                    LineEvent::Raw(data) => data,
                    _ => &[],
                },
            };
            let stop = match event {
                LineEvent::Line(line) => {
                    self.handler.line_received(line, &mut ctl);
                    false
                }
                LineEvent::Raw(data) => {
                    self.handler.raw_data_received(data, &mut ctl);
                    false
                }
                LineEvent::LengthExceeded(data) => {
                    self.handler.line_length_exceeded(data, &mut ctl);
                    true
                }
            };
            self.apply();
            if stop {
                // Twisted returns here: what the handler put back waits for more data.
                return;
            }
        }
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, t: &mut Transport) {
        let mut ctl = LineControl {
            transport: t,
            req: &mut self.req,
            delimiter: &self.delimiter,
            rest: &[],
            raw: &[],
        };
        self.handler.connection_made(&mut ctl);
        self.apply();
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        if self.decoder.buffered() == 0 && self.decoder.is_line_mode() && !self.paused {
            if !self.deliver_in_place(data, t) {
                return;
            }
        } else {
            self.decoder.feed(data);
        }
        self.deliver(t);
    }

    fn connection_lost(&mut self, reason: Reason) {
        self.handler.connection_lost(reason);
    }

    /// Pauses delivery and reading (Twisted's `pauseProducing`).
    fn pause_producing(&mut self, t: &mut Transport) {
        self.paused = true;
        self.req.read_hold.pause(t);
    }

    /// Resumes reading and delivers the lines that waited (Twisted's
    /// `resumeProducing`, which calls `dataReceived(b"")`).
    fn resume_producing(&mut self, t: &mut Transport) {
        self.paused = false;
        self.req.read_hold.resume(t);
        self.deliver(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(d: &mut LineDecoder) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(e) = d.next_event() {
            v.push(match e {
                LineEvent::Line(l) => format!("L:{}", String::from_utf8_lossy(l)),
                LineEvent::Raw(l) => format!("R:{}", String::from_utf8_lossy(l)),
                LineEvent::LengthExceeded(l) => format!("X:{}", String::from_utf8_lossy(l)),
            });
        }
        v
    }

    #[test]
    fn line_mode_splits_at_the_first_delimiter_only() {
        let mut d = LineDecoder::new();
        d.feed(b"a\rb\nc\r\n\r\nd");
        assert_eq!(lines(&mut d), ["L:a\rb\nc", "L:"]);
        assert_eq!(d.buffer(), b"d");
    }

    #[test]
    fn a_line_of_exactly_max_length_is_accepted() {
        let mut d = LineDecoder::with_limits(b"\r\n", 4);
        d.feed(b"xxxx\r");
        assert_eq!(lines(&mut d), Vec::<String>::new());
        d.feed(b"\n");
        assert_eq!(lines(&mut d), ["L:xxxx"]);
    }

    #[test]
    fn one_byte_over_max_length_trips_once_the_window_is_full() {
        let mut d = LineDecoder::with_limits(b"\r\n", 4);
        d.feed(b"xxxxx\r");
        assert_eq!(lines(&mut d), ["X:xxxxx\r"]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn raw_mode_hands_out_the_rest_of_the_buffer_in_one_chunk() {
        let mut d = LineDecoder::new();
        d.feed(b"a\r\nb\r\nc");
        assert_eq!(d.next_event(), Some(LineEvent::Line(b"a")));
        d.set_raw_mode();
        assert_eq!(d.next_event(), Some(LineEvent::Raw(b"b\r\nc")));
        assert_eq!(d.next_event(), None);
    }
}
