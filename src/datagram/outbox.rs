//! The datagrams a port's protocol wrote in this turn, waiting to be handed to the
//! kernel.
//!
//! ```text
//!   data:  [ d0 bytes | d1 bytes | ... ]      one Vec, its capacity kept
//!   items: [ (to, start, len), ... ]          one entry per datagram
//! ```
//!
//! The engine swaps a filled outbox with its empty "in flight" one at the end of a
//! turn, sends from it, and clears it once every send's completion is back; both
//! keep their capacity, so a steady flow of datagrams allocates nothing.

use socket2::SockAddr;

/// At most this many datagrams wait per port (beyond, `write` fails and counts).
pub(crate) const MAX_QUEUED: usize = 1024;
/// At most this many bytes wait per port.
pub(crate) const MAX_QUEUED_BYTES: usize = 4 << 20;

/// One queued datagram: where to (`None`: the connected peer) and its bytes.
pub(crate) struct Queued {
    pub(crate) to: Option<SockAddr>,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// Queued datagrams and their bytes.
#[derive(Default)]
pub(crate) struct Outbox {
    data: Vec<u8>,
    items: Vec<Queued>,
}

impl Outbox {
    /// Queues one datagram; `false` if the outbox is full.
    pub(crate) fn push(&mut self, data: &[u8], to: Option<SockAddr>) -> bool {
        if self.items.len() >= MAX_QUEUED || self.data.len() + data.len() > MAX_QUEUED_BYTES {
            return false;
        }
        let start = self.data.len();
        self.data.extend_from_slice(data);
        self.items.push(Queued {
            to,
            start,
            len: data.len(),
        });
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn items(&self) -> &[Queued] {
        &self.items
    }

    /// The bytes of one queued datagram.
    pub(crate) fn bytes(&self, q: &Queued) -> &[u8] {
        &self.data[q.start..q.start + q.len]
    }

    /// Forgets every datagram, keeping the capacity.
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_keep_their_bounds_and_order() {
        let mut o = Outbox::default();
        assert!(o.push(b"one", None));
        assert!(o.push(b"", None));
        assert!(o.push(
            b"three",
            Some(
                "127.0.0.1:9"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into()
            )
        ));
        let got: Vec<&[u8]> = o.items().iter().map(|q| o.bytes(q)).collect();
        assert_eq!(got, vec![&b"one"[..], b"", b"three"]);
        assert!(o.items()[2].to.is_some());
        o.clear();
        assert!(o.is_empty());
    }

    #[test]
    fn a_full_outbox_refuses_more() {
        let mut o = Outbox::default();
        for _ in 0..MAX_QUEUED {
            assert!(o.push(b"x", None));
        }
        assert!(!o.push(b"x", None));
        let mut o = Outbox::default();
        assert!(o.push(&vec![0; MAX_QUEUED_BYTES], None));
        assert!(!o.push(b"x", None));
    }
}
