//! The input buffer every decoder keeps: bytes fed but not yet consumed.
//!
//! Consumed bytes are not moved out one event at a time: the buffer only advances a
//! `start` offset, so an event is a plain borrow of bytes already in place. The
//! unconsumed tail is moved to the front when a new `push` arrives and at least as
//! many bytes were consumed as remain (each byte is moved at most once on average,
//! keeping the whole O(n)), or dropped for free when nothing remains.
//!
//! ```text
//!   buf: [ consumed ........ | pending ............ ]  spare capacity
//!          0                 start                  len
//! ```

/// Capacity above which an empty buffer gives its memory back, so an idle connection
/// does not keep the capacity of its largest burst.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Bytes fed to a decoder and not yet consumed by its events.
#[derive(Debug, Default, Clone)]
pub(crate) struct InputBuffer {
    buf: Vec<u8>,
    start: usize,
}

impl InputBuffer {
    /// Appends `data` after the pending bytes.
    #[inline]
    pub(crate) fn push(&mut self, data: &[u8]) {
        let pending = self.buf.len() - self.start;
        if pending == 0 {
            if self.buf.capacity() > KEEP_CAPACITY && data.len() <= KEEP_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
            self.start = 0;
        } else if self.start > 0 && self.start >= pending {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(pending);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Returns the pending bytes.
    #[inline]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Returns the number of pending bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Tells whether nothing is pending.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.len() == self.start
    }

    /// Marks the first `n` pending bytes consumed and returns them.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) -> &[u8] {
        debug_assert!(n <= self.len());
        let s = self.start;
        self.start += n;
        &self.buf[s..s + n]
    }

    /// Splits the pending bytes: the first `n` are marked consumed and returned along
    /// with everything after the first `n + skip` (which stays pending).
    #[inline]
    pub(crate) fn consume_with_rest(&mut self, n: usize, skip: usize) -> (&[u8], &[u8]) {
        debug_assert!(n + skip <= self.len());
        let s = self.start;
        self.start += n + skip;
        (&self.buf[s..s + n], &self.buf[self.start..])
    }

    /// Marks the last `n` consumed bytes pending again. Only valid when nothing was
    /// pushed since they were consumed (a push may have moved them).
    ///
    /// # Panics
    /// If fewer than `n` bytes were consumed.
    #[inline]
    pub(crate) fn unconsume(&mut self, n: usize) {
        assert!(n <= self.start, "cannot hand back more than was consumed");
        self.start -= n;
    }

    /// Drops every pending byte.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.start = self.buf.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_pending_bytes_in_order_across_compaction() {
        let mut b = InputBuffer::default();
        b.push(b"abcdef");
        assert_eq!(b.consume(4), b"abcd");
        b.push(b"gh");
        assert_eq!(b.pending(), b"efgh");
        assert_eq!(b.consume_with_rest(1, 1), (&b"e"[..], &b"gh"[..]));
        b.clear();
        assert!(b.is_empty());
        b.push(b"x");
        assert_eq!(b.pending(), b"x");
        assert_eq!(b.len(), 1);
    }
}
