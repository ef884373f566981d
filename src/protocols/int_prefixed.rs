//! Length-prefixed strings: the [`IntNDecoder`] and Twisted's `Int8StringReceiver`,
//! `Int16StringReceiver` and `Int32StringReceiver` on top of it.
//!
//! Each frame is an unsigned big-endian length of `N` bytes (1, 2 or 4; the length does
//! not count itself) followed by that many bytes. The limit is checked as soon as a
//! prefix is complete, before any of the payload arrives, and is the same 99999 bytes
//! for every prefix width, as in Twisted.
//!
//! ```text
//!   ┌────────┐ N bytes ┌─────────┐ len bytes  ┌────────┐
//!   │ Prefix │ ──────► │ Payload │ ─────────► │ Prefix │ …   Frame(payload)
//!   └────────┘         └─────────┘            └────────┘
//!        │ len > max: LengthLimitExceeded(len), then Broken (input dropped)
//! ```
//!
//! The width is a const parameter: `IntNDecoder<4>` is the `Int32StringReceiver`'s
//! decoder, and [`Int32StringReceiver<H>`] is `IntNStringReceiver<H, 4>`. Other widths
//! fail to compile.
//!
//! # Twisted
//! * After `lengthLimitExceeded` Twisted keeps the unprocessed bytes and reports the
//!   same prefix again on every later read if the handler did not close; the decoder
//!   reports it once and then drops input, which keeps memory bounded.
//! * The deprecated `recvd` attribute is not emulated.

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::buffer::InputBuffer;
use super::read_hold::ReadHold;
use crate::protocol::Protocol;
use crate::reason::Reason;
use crate::transport::Transport;

/// Twisted's `IntNStringReceiver.MAX_LENGTH`: the longest payload accepted (inclusive),
/// whatever the prefix width.
pub const DEFAULT_MAX_STRING_LENGTH: usize = 99_999;

/// A payload too long for the prefix width (Twisted's `StringTooLongError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringTooLongError {
    /// The payload's length.
    pub len: usize,
    /// The largest length the prefix can carry.
    pub max: usize,
}

impl fmt::Display for StringTooLongError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot send {} bytes: the length prefix carries at most {}",
            self.len, self.max
        )
    }
}

impl std::error::Error for StringTooLongError {}

/// What an [`IntNDecoder`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntNEvent<'a> {
    /// A complete payload (possibly empty), borrowed from the decoder's buffer.
    Frame(&'a [u8]),
    /// A prefix announced this length, over the limit (Twisted's
    /// `lengthLimitExceeded` argument). The decoder is broken from now on.
    LengthLimitExceeded(usize),
}

/// Checks the width at compile time.
struct Width<const N: usize>;
impl<const N: usize> Width<N> {
    const OK: () = assert!(N == 1 || N == 2 || N == 4, "prefix width must be 1, 2 or 4");
    /// The largest length an `N`-byte prefix carries.
    const MAX: u64 = (1u64 << (8 * N)) - 1;
}

/// Decodes `N`-byte length-prefixed frames, sans-IO: [`feed`](Self::feed) bytes, then
/// call [`next_event`](Self::next_event) until it returns `None`.
///
/// # Examples
/// ```
/// use weft::protocols::{IntNDecoder, IntNEvent};
/// let mut d = IntNDecoder::<2>::with_max_length(100);
/// d.feed(b"\x00\x03abc\x00\x00\x00");
/// assert_eq!(d.next_event(), Some(IntNEvent::Frame(b"abc")));
/// assert_eq!(d.next_event(), Some(IntNEvent::Frame(b"")));
/// assert_eq!(d.next_event(), None);
/// d.feed(b"\xff");
/// assert_eq!(d.next_event(), Some(IntNEvent::LengthLimitExceeded(255)));
/// ```
///
/// # Security
/// Once its events are drained the decoder holds fewer than `N + max_length` bytes.
#[derive(Debug, Clone)]
pub struct IntNDecoder<const N: usize> {
    max_length: usize,
    buf: InputBuffer,
    broken: bool,
}

impl<const N: usize> Default for IntNDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> IntNDecoder<N> {
    /// Creates a decoder with Twisted's limit of 99999 bytes.
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_STRING_LENGTH)
    }

    /// Creates a decoder that accepts payloads up to `max_length` bytes.
    pub fn with_max_length(max_length: usize) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Width::<N>::OK;
        IntNDecoder {
            max_length,
            buf: InputBuffer::default(),
            broken: false,
        }
    }

    /// Returns the longest payload accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Appends bytes; call [`next_event`](Self::next_event) next. Ignored once broken.
    #[inline]
    pub fn feed(&mut self, data: &[u8]) {
        if !self.broken {
            self.buf.push(data);
        }
    }

    /// Returns the next event, or `None` when more bytes are needed.
    #[inline]
    pub fn next_event(&mut self) -> Option<IntNEvent<'_>> {
        if self.broken {
            return None;
        }
        let pending = self.buf.pending();
        if pending.len() < N {
            return None;
        }
        let len = pending[..N]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.max_length {
            self.broken = true;
            self.buf.clear();
            return Some(IntNEvent::LengthLimitExceeded(len));
        }
        if pending.len() - N < len {
            return None;
        }
        self.buf.consume(N);
        Some(IntNEvent::Frame(self.buf.consume(len)))
    }

    /// Returns how many bytes are buffered and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Tells whether the decoder gave up after a `LengthLimitExceeded`.
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

/// Returns the `N`-byte big-endian prefix for `payload`.
fn prefix<const N: usize>(payload: &[u8]) -> Result<[u8; N], StringTooLongError> {
    let too_long = StringTooLongError {
        len: payload.len(),
        max: usize::try_from(Width::<N>::MAX).unwrap_or(usize::MAX),
    };
    let len = u64::try_from(payload.len()).map_err(|_| too_long)?;
    if len > Width::<N>::MAX {
        return Err(too_long);
    }
    let mut p = [0u8; N];
    p.copy_from_slice(&len.to_be_bytes()[8 - N..]);
    Ok(p)
}

/// Appends `payload` with an `N`-byte big-endian length prefix to `out`.
///
/// # Errors
/// [`StringTooLongError`] if `payload.len() >= 2^(8·N)`; `out` is then unchanged.
///
/// # Examples
/// ```
/// use weft::protocols::int_prefixed::encode;
/// let mut out = Vec::new();
/// encode::<2>(b"ab", &mut out).unwrap();
/// assert_eq!(out, b"\x00\x02ab");
/// assert!(encode::<1>(&[0; 256], &mut out).is_err());
/// ```
pub fn encode<const N: usize>(payload: &[u8], out: &mut Vec<u8>) -> Result<(), StringTooLongError> {
    out.extend_from_slice(&prefix::<N>(payload)?);
    out.extend_from_slice(payload);
    Ok(())
}

/// What an [`IntNStringReceiver`]'s user writes: Twisted's `IntNStringReceiver`
/// callbacks.
pub trait IntNStringHandler<const N: usize>: 'static {
    /// Called once the connection is up.
    fn connection_made(&mut self, t: &mut IntNControl<'_, N>) {
        let _ = t;
    }

    /// Called with each payload (empty payloads included).
    fn string_received(&mut self, string: &[u8], t: &mut IntNControl<'_, N>);

    /// Called once with a prefix over the limit; the default closes the connection
    /// without sending anything, as Twisted's.
    fn length_limit_exceeded(&mut self, length: usize, t: &mut IntNControl<'_, N>) {
        let _ = length;
        t.lose_connection();
    }

    /// Called once, last, however the connection ended.
    fn connection_lost(&mut self, reason: Reason) {
        let _ = reason;
    }
}

/// The transport as an [`IntNStringHandler`] sees it: a [`Transport`] plus
/// `send_string` and pausing.
pub struct IntNControl<'a, const N: usize> {
    transport: &'a mut Transport,
    pause: &'a mut bool,
    hold: &'a mut ReadHold,
}

impl<const N: usize> IntNControl<'_, N> {
    /// Writes `string` with its length prefix (Twisted's `sendString`).
    ///
    /// # Errors
    /// [`StringTooLongError`] if the prefix cannot carry the length; nothing is written.
    /// The receive limit is not checked, as in Twisted.
    pub fn send_string(&mut self, string: &[u8]) -> Result<(), StringTooLongError> {
        send_string::<N>(self.transport, string)
    }

    /// Stops delivering strings and reading until the receiver's
    /// [`resume_producing`](Protocol::resume_producing) (Twisted's `pauseProducing`).
    pub fn pause_producing(&mut self) {
        *self.pause = true;
        self.hold.pause(self.transport);
    }

    /// Stops delivering strings for good and closes the connection (Twisted's
    /// `stopProducing`).
    pub fn stop_producing(&mut self) {
        *self.pause = true;
        self.transport.lose_connection();
    }
}

fn send_string<const N: usize>(t: &mut Transport, s: &[u8]) -> Result<(), StringTooLongError> {
    let p = prefix::<N>(s)?;
    t.write_sequence([&p[..], s]);
    Ok(())
}

impl<const N: usize> Deref for IntNControl<'_, N> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        self.transport
    }
}

impl<const N: usize> DerefMut for IntNControl<'_, N> {
    fn deref_mut(&mut self) -> &mut Transport {
        self.transport
    }
}

/// Twisted's `IntNStringReceiver`: a [`Protocol`] that delivers `N`-byte-prefixed
/// payloads to an [`IntNStringHandler`]. Use the aliases [`Int8StringReceiver`],
/// [`Int16StringReceiver`] and [`Int32StringReceiver`].
///
/// As in Twisted there is no `disconnecting` check: strings already buffered are
/// delivered after `string_received` closes. Pausing holds them back until
/// [`resume_producing`](Protocol::resume_producing); see [`LineReceiver`]'s notes on
/// the engine calling `pause_producing`.
///
/// [`LineReceiver`]: super::LineReceiver
///
/// # Examples
/// ```
/// use weft::protocols::{Int16StringReceiver, IntNControl, IntNStringHandler};
/// use weft::{testing::StringTransport, Protocol};
///
/// struct Echo;
/// impl IntNStringHandler<2> for Echo {
///     fn string_received(&mut self, s: &[u8], t: &mut IntNControl<'_, 2>) {
///         t.send_string(s).expect("short enough");
///     }
/// }
/// let mut t = StringTransport::new();
/// let mut p = Int16StringReceiver::new(Echo);
/// p.data_received(b"\x00\x02hi", &mut t);
/// assert_eq!(t.value(), b"\x00\x02hi");
/// ```
pub struct IntNStringReceiver<H, const N: usize> {
    handler: H,
    decoder: IntNDecoder<N>,
    paused: bool,
    read_hold: ReadHold,
}

/// Twisted's `Int8StringReceiver`: one-byte prefixes.
pub type Int8StringReceiver<H> = IntNStringReceiver<H, 1>;
/// Twisted's `Int16StringReceiver`: two-byte big-endian prefixes.
pub type Int16StringReceiver<H> = IntNStringReceiver<H, 2>;
/// Twisted's `Int32StringReceiver`: four-byte big-endian prefixes.
pub type Int32StringReceiver<H> = IntNStringReceiver<H, 4>;

impl<H: IntNStringHandler<N>, const N: usize> IntNStringReceiver<H, N> {
    /// Wraps `handler` with Twisted's limit of 99999 bytes.
    pub fn new(handler: H) -> Self {
        Self::with_max_length(handler, DEFAULT_MAX_STRING_LENGTH)
    }

    /// Wraps `handler`, accepting payloads up to `max_length` bytes.
    pub fn with_max_length(handler: H, max_length: usize) -> Self {
        IntNStringReceiver {
            handler,
            decoder: IntNDecoder::with_max_length(max_length),
            paused: false,
            read_hold: ReadHold::default(),
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
    pub fn decoder(&self) -> &IntNDecoder<N> {
        &self.decoder
    }

    /// Tells whether delivery is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Writes `string` with its length prefix (Twisted's `sendString`).
    ///
    /// # Errors
    /// [`StringTooLongError`] if the prefix cannot carry the length.
    pub fn send_string(&self, string: &[u8], t: &mut Transport) -> Result<(), StringTooLongError> {
        send_string::<N>(t, string)
    }

    fn deliver(&mut self, t: &mut Transport) {
        while !self.paused {
            let Some(event) = self.decoder.next_event() else {
                return;
            };
            let mut ctl = IntNControl {
                transport: t,
                pause: &mut self.paused,
                hold: &mut self.read_hold,
            };
            match event {
                IntNEvent::Frame(s) => self.handler.string_received(s, &mut ctl),
                IntNEvent::LengthLimitExceeded(len) => {
                    self.handler.length_limit_exceeded(len, &mut ctl);
                    return;
                }
            }
        }
    }
}

impl<H: IntNStringHandler<N>, const N: usize> Protocol for IntNStringReceiver<H, N> {
    fn connection_made(&mut self, t: &mut Transport) {
        let mut ctl = IntNControl {
            transport: t,
            pause: &mut self.paused,
            hold: &mut self.read_hold,
        };
        self.handler.connection_made(&mut ctl);
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.decoder.feed(data);
        self.deliver(t);
    }

    fn connection_lost(&mut self, reason: Reason) {
        self.handler.connection_lost(reason);
    }

    /// Pauses delivery and reading (Twisted's `pauseProducing`).
    fn pause_producing(&mut self, t: &mut Transport) {
        self.paused = true;
        self.read_hold.pause(t);
    }

    /// Resumes reading and delivers the strings that waited (Twisted's
    /// `resumeProducing`).
    fn resume_producing(&mut self, t: &mut Transport) {
        self.paused = false;
        self.read_hold.resume(t);
        self.deliver(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_checked_as_soon_as_the_prefix_is_complete() {
        let mut d = IntNDecoder::<4>::with_max_length(10);
        d.feed(b"\x00\x00\x00");
        assert_eq!(d.next_event(), None);
        d.feed(b"\x0b");
        assert_eq!(d.next_event(), Some(IntNEvent::LengthLimitExceeded(11)));
        d.feed(b"more");
        assert_eq!(d.next_event(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn sending_the_largest_length_a_prefix_carries_works_and_one_more_fails() {
        let mut out = Vec::new();
        assert!(encode::<1>(&[7; 255], &mut out).is_ok());
        assert_eq!(out[0], 255);
        assert_eq!(
            encode::<1>(&[7; 256], &mut out),
            Err(StringTooLongError { len: 256, max: 255 })
        );
    }
}
