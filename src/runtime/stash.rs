//! Bytes a connection received but has not read yet, copied out of the shard's
//! receive pool because the connection stopped reading.
//!
//! A paused connection has no receive armed, but buffers the kernel filled before
//! the cancellation landed (a multishot receive may take dozens in one go) would
//! otherwise stay held until it reads again: a few silent peers could then hold the
//! whole pool and starve everyone else. The driver copies them here and gives the
//! buffers back at once; on resume the stash is delivered first, in pool-buffer-sized
//! pieces so flow control runs between them as it does for buffers. It allocates
//! only when a connection pauses with data in hand, and frees its memory once it is
//! delivered.

/// The undelivered bytes, oldest first.
#[derive(Default, Debug)]
pub(crate) struct Stash {
    buf: Vec<u8>,
    /// How much of `buf` was delivered.
    at: usize,
}

impl Stash {
    pub(crate) fn is_empty(&self) -> bool {
        self.at == self.buf.len()
    }

    /// Appends bytes received after everything already here.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The oldest undelivered bytes, at most `max` of them.
    pub(crate) fn front(&self, max: usize) -> &[u8] {
        let end = self.buf.len().min(self.at + max);
        &self.buf[self.at..end]
    }

    /// Marks `n` bytes from the front delivered; the memory goes when all are.
    pub(crate) fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
        if self.is_empty() {
            *self = Stash::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_front_is_empty() {
        let s = Stash::default();
        assert!(s.is_empty());
        assert_eq!(s.front(8), b"");
    }

    #[test]
    fn pushes_come_out_in_order_in_pieces() {
        let mut s = Stash::default();
        s.push(b"hello ");
        s.push(b"world");
        assert_eq!(s.front(4), b"hell");
        s.consume(4);
        assert_eq!(s.front(100), b"o world");
        s.push(b"!");
        s.consume(7);
        assert_eq!(s.front(100), b"!");
        s.consume(1);
        assert!(s.is_empty());
    }

    #[test]
    fn delivered_stash_frees_its_memory() {
        let mut s = Stash::default();
        s.push(&[1u8; 4096]);
        s.consume(4096);
        assert_eq!(s.buf.capacity(), 0);
    }
}
