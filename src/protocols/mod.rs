//! Helper protocols as sans-IO state machines (Twisted's `twisted.protocols.basic`).
//!
//! Nothing in here touches the executor, a clock or a socket (`tests/protocols_boundary.rs`
//! enforces it). Every framing comes in two layers:
//!
//! * a **decoder** ([`LineDecoder`], [`LineOnlyDecoder`], [`NetstringDecoder`],
//!   [`IntNDecoder`]): you [`feed`](LineDecoder::feed) it bytes as they arrive and take
//!   events with `next_event()` until it returns `None`. Lines and frames come out as
//!   slices borrowed from the decoder's own buffer: nothing is copied per event, and the
//!   delimiter search resumes where it stopped, so decoding is O(n) however the bytes
//!   are chunked.
//! * a **receiver** ([`LineReceiver`], [`LineOnlyReceiver`], [`NetstringReceiver`],
//!   [`Int8StringReceiver`], [`Int16StringReceiver`], [`Int32StringReceiver`]): a thin
//!   adapter that implements [`Protocol`](crate::Protocol) and calls a handler with
//!   Twisted's callbacks (`line_received`, `string_received`, …). The handler gets a
//!   small control object that dereferences to the [`Transport`](crate::Transport) and
//!   adds the receiver's own operations (`send_line`, `set_raw_mode`, `pause_producing`…).
//!
//! ```text
//!   bytes ──feed──► decoder buffer ──next_event──► Event<'buf> (borrowed slices)
//!                                                      │
//!   receiver: data_received ─► feed, then while not paused/closing:
//!             handler.line_received(line, &mut control) ─► control requests applied
//!             (mode switch, clear, pause) once the callback returns
//! ```
//!
//! Why requests are applied after the callback: the line a handler is looking at is a
//! borrow of the decoder's buffer, so the decoder cannot change while the callback
//! runs. Twisted reaches the same order with its `_busyReceiving` flag: a re-entrant
//! `setLineMode(extra)` only appends to the buffer, and the running loop picks it up.
//!
//! # Security
//! Every decoder has a limit (Twisted's `MAX_LENGTH`). Once its events are drained, a
//! decoder holds at most the limit plus a delimiter or a length prefix; what a single
//! `feed` hands it is held only until its events are taken. Input past the limit ends
//! in a `*Exceeded`/error event, whose default handling closes the connection without
//! sending anything, as Twisted does.

mod buffer;
mod delimiter;
pub mod framing;
pub mod int_prefixed;
pub mod line;
pub mod line_only;
pub mod netstring;
mod read_hold;
pub mod resp;

pub use framing::{FrameError, Framing};
pub use int_prefixed::{
    Int16StringReceiver, Int32StringReceiver, Int8StringReceiver, IntNControl, IntNDecoder,
    IntNEvent, IntNStringHandler, IntNStringReceiver, StringTooLongError,
    DEFAULT_MAX_STRING_LENGTH,
};
pub use line::{
    LineControl, LineDecoder, LineEvent, LineHandler, LineReceiver, DEFAULT_DELIMITER,
    DEFAULT_MAX_LINE_LENGTH,
};
pub use line_only::{LineOnlyControl, LineOnlyDecoder, LineOnlyHandler, LineOnlyReceiver};
pub use netstring::{
    NetstringControl, NetstringDecoder, NetstringError, NetstringHandler, NetstringReceiver,
    DEFAULT_MAX_NETSTRING_LENGTH,
};
