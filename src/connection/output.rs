//! A connection's unsent output: the buffer the kernel sends from, without a copy.
//!
//! ```text
//!   segments:  [ Copied(Vec) | Shared(Bytes) | Copied(Vec) ... ]
//!                 ▲ front: the next send points here (frozen while in flight)
//! ```
//!
//! Small writes are appended to the last `Copied` segment (many writes, one send);
//! `write_bytes` of [`COPY_THRESHOLD`] or more is queued as a `Shared` segment without
//! a copy (a broadcast payload is shared by every client). The engine hands the
//! front segment's memory straight to a send ([`OutBuf::begin_send`]); while that
//! send is in flight the front segment is *frozen*: nothing is appended to it (an
//! append would move its memory) and discarding the output keeps it until the send
//! completes ([`OutBuf::end_send`]). Drained `Vec`s are kept for reuse, so a
//! steady echo allocates nothing.

use std::collections::VecDeque;

use bytes::Bytes;

/// `write_bytes` copies payloads smaller than this (so many small writes still
/// leave in one send) and queues larger ones without copying.
pub(crate) const COPY_THRESHOLD: usize = 4096;

/// Small writes are appended to the last copied segment up to this size; past it a
/// new segment starts, sized to the write if the write is larger, so that what a
/// connection holds is never much more than what it was given (a `Vec` that grows
/// by doubling could hold twice that).
pub(crate) const SEGMENT_TARGET: usize = 64 * 1024;

/// A drained segment larger than this is freed rather than kept for reuse, so that
/// an idle connection does not keep the capacity of its largest burst.
pub(crate) const KEEP_CAPACITY: usize = 64 * 1024;

enum Segment {
    Copied(Vec<u8>),
    Shared(Bytes),
}

impl Segment {
    fn bytes(&self) -> &[u8] {
        match self {
            Segment::Copied(v) => v,
            Segment::Shared(b) => b,
        }
    }
}

/// The front segment's state with respect to a send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Front {
    /// No send in flight.
    Idle,
    /// A send of the front segment from `front_off` is in flight.
    Sending,
    /// As `Sending`, but the output was discarded meanwhile: the segment is kept only
    /// for the kernel and dropped when the send completes.
    SendingDiscarded,
}

/// Unsent output, in order. See the module doc.
pub(crate) struct OutBuf {
    segments: VecDeque<Segment>,
    /// Bytes of the front segment already sent.
    front_off: usize,
    /// Unsent bytes (including those of a send in flight, which the kernel has not
    /// confirmed taking).
    len: usize,
    front: Front,
    /// One drained `Vec` kept for the next write.
    spare: Option<Vec<u8>>,
}

impl Default for OutBuf {
    fn default() -> Self {
        OutBuf {
            segments: VecDeque::new(),
            front_off: 0,
            len: 0,
            front: Front::Idle,
            spare: None,
        }
    }
}

impl OutBuf {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tells whether a send from this buffer is in flight.
    #[cfg(test)]
    pub(crate) fn sending(&self) -> bool {
        self.front != Front::Idle
    }

    fn fresh_vec(&mut self) -> Vec<u8> {
        self.spare.take().unwrap_or_default()
    }

    pub(crate) fn push_slice(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let frozen_only = self.segments.len() == 1 && self.front != Front::Idle;
        match self.segments.back_mut() {
            Some(Segment::Copied(v)) if !frozen_only && v.len() + data.len() <= SEGMENT_TARGET => {
                let needed = v.len() + data.len();
                if needed > v.capacity() {
                    // Grow by doubling, but never past the segment's size.
                    let cap = (v.capacity() * 2).max(needed).min(SEGMENT_TARGET);
                    v.reserve_exact(cap - v.len());
                }
                v.extend_from_slice(data)
            }
            _ => {
                let mut v = if data.len() >= SEGMENT_TARGET {
                    Vec::with_capacity(data.len())
                } else {
                    self.fresh_vec()
                };
                v.extend_from_slice(data);
                self.segments.push_back(Segment::Copied(v));
            }
        }
        self.len += data.len();
    }

    pub(crate) fn push_bytes(&mut self, data: Bytes) {
        if data.len() < COPY_THRESHOLD {
            self.push_slice(&data);
            return;
        }
        self.len += data.len();
        self.segments.push_back(Segment::Shared(data));
    }

    /// Returns the next contiguous run of unsent bytes.
    pub(crate) fn front(&self) -> &[u8] {
        match self.segments.front() {
            Some(s) if self.front != Front::SendingDiscarded => &s.bytes()[self.front_off..],
            _ => &[],
        }
    }

    /// Freezes the front run for a send and returns it; the memory stays valid and
    /// unchanged until [`end_send`](Self::end_send).
    pub(crate) fn begin_send(&mut self) -> (*const u8, usize) {
        debug_assert_eq!(self.front, Front::Idle);
        let run = self.front();
        let out = (run.as_ptr(), run.len());
        self.front = Front::Sending;
        out
    }

    /// The send started by `begin_send` completed having sent `sent` bytes (0 for
    /// a failed or cancelled send).
    pub(crate) fn end_send(&mut self, sent: usize) {
        match std::mem::replace(&mut self.front, Front::Idle) {
            Front::Idle => debug_assert!(false, "end_send without begin_send"),
            Front::Sending => self.consume(sent),
            Front::SendingDiscarded => {
                if let Some(seg) = self.segments.pop_front() {
                    self.recycle(seg);
                }
                self.front_off = 0;
            }
        }
    }

    /// Marks `n` bytes of [`front`](Self::front) as sent.
    pub(crate) fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.len -= n;
        self.front_off += n;
        let done = self
            .segments
            .front()
            .is_some_and(|s| self.front_off >= s.bytes().len());
        if done {
            let seg = self.segments.pop_front().expect("checked");
            self.front_off = 0;
            self.recycle(seg);
        }
    }

    fn recycle(&mut self, seg: Segment) {
        if let Segment::Copied(mut v) = seg {
            if v.capacity() <= KEEP_CAPACITY && self.spare.is_none() {
                v.clear();
                self.spare = Some(v);
            }
        }
    }

    /// Discards everything unsent (abort, or a panicking callback). A segment a
    /// send is reading from is kept until that send completes.
    pub(crate) fn clear(&mut self) {
        let keep = if self.front == Front::Sending {
            self.front = Front::SendingDiscarded;
            self.segments.pop_front()
        } else if self.front == Front::SendingDiscarded {
            self.segments.pop_front()
        } else {
            None
        };
        while let Some(seg) = self.segments.pop_front() {
            self.recycle(seg);
        }
        if let Some(k) = keep {
            self.segments.push_back(k);
        } else {
            self.front_off = 0;
        }
        self.len = 0;
    }

    /// Copies out everything unsent (the test transport's `value()`).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        if self.front == Front::SendingDiscarded {
            return v;
        }
        for (i, s) in self.segments.iter().enumerate() {
            let b = s.bytes();
            v.extend_from_slice(if i == 0 { &b[self.front_off..] } else { b });
        }
        v
    }
}

impl std::fmt::Debug for OutBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutBuf")
            .field("len", &self.len)
            .field("segments", &self.segments.len())
            .field("front", &self.front)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &mut OutBuf, step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while !b.is_empty() {
            let n = b.front().len().min(step);
            got.extend_from_slice(&b.front()[..n]);
            b.consume(n);
        }
        got
    }

    #[test]
    fn keeps_order_across_copied_and_shared_writes() {
        let mut b = OutBuf::default();
        b.push_slice(b"ab");
        b.push_bytes(Bytes::from(vec![b'x'; COPY_THRESHOLD]));
        b.push_slice(b"cd");
        let mut want = b"ab".to_vec();
        want.extend(std::iter::repeat_n(b'x', COPY_THRESHOLD));
        want.extend_from_slice(b"cd");
        assert_eq!(b.to_vec(), want);
        assert_eq!(drain(&mut b, 3), want);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn a_frozen_front_is_not_appended_to() {
        let mut b = OutBuf::default();
        b.push_slice(b"hello");
        let (ptr, len) = b.begin_send();
        b.push_slice(b" world");
        // SAFETY: `ptr`/`len` describe the frozen front segment, alive in `b`.
        let frozen = unsafe { std::slice::from_raw_parts(ptr, len) };
        assert_eq!(frozen, b"hello", "the bytes a send reads did not move");
        assert_eq!(b.len(), 11);
        b.end_send(5);
        assert_eq!(b.front(), b" world");
        assert_eq!(b.len(), 6);
    }

    #[test]
    fn a_short_send_leaves_the_rest_in_front() {
        let mut b = OutBuf::default();
        b.push_slice(b"abcdef");
        b.begin_send();
        b.end_send(2);
        assert_eq!(b.front(), b"cdef");
        b.push_slice(b"gh");
        assert_eq!(b.to_vec(), b"cdefgh");
    }

    #[test]
    fn clearing_during_a_send_keeps_its_memory_until_it_completes() {
        let mut b = OutBuf::default();
        b.push_slice(b"in flight");
        b.push_slice(b"more");
        let (ptr, len) = b.begin_send();
        b.clear();
        assert_eq!(b.len(), 0);
        assert!(b.front().is_empty());
        // SAFETY: the frozen segment is kept by `clear` until `end_send`.
        let frozen = unsafe { std::slice::from_raw_parts(ptr, len) };
        assert_eq!(frozen, b"in flightmore");
        b.end_send(0);
        assert!(b.is_empty() && !b.sending());
        b.push_slice(b"next");
        assert_eq!(b.to_vec(), b"next");
    }

    #[test]
    fn many_writes_hold_little_more_than_their_bytes() {
        let mut b = OutBuf::default();
        for _ in 0..1000 {
            b.push_slice(&[1; 1000]);
        }
        let held: usize = b
            .segments
            .iter()
            .map(|s| match s {
                Segment::Copied(v) => v.capacity(),
                Segment::Shared(x) => x.len(),
            })
            .sum();
        assert!(
            held <= 1000 * 1000 * 5 / 4,
            "{held} bytes of capacity for 1 MB"
        );
    }

    #[test]
    fn a_drained_vec_is_reused() {
        let mut b = OutBuf::default();
        b.push_slice(&[1; 100]);
        b.consume(100);
        let cap = b.spare.as_ref().map(Vec::capacity);
        assert!(cap.is_some_and(|c| c >= 100));
        b.push_slice(&[2; 10]);
        assert!(b.spare.is_none(), "the kept Vec was taken again");
    }

    #[test]
    fn large_capacity_is_freed_once_drained() {
        let mut b = OutBuf::default();
        b.push_slice(&vec![0u8; KEEP_CAPACITY * 2]);
        let n = b.front().len();
        b.consume(n);
        assert!(b.spare.is_none());
    }
}
