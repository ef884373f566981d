//! The RFC "simple services" over UDP: one reply datagram per datagram received,
//! echo (RFC 862), discard (863), chargen (864), qotd (865) and daytime (867).
//!
//! Twisted's `twisted.protocols.wire` has only the TCP forms; these follow the
//! RFCs' UDP sections. A reply goes to the sender's address from the socket the
//! datagram came in on. A reply that cannot be queued (the outbox is full) is
//! dropped and counted, as a lost datagram would be.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::datagram::{DatagramAddress, DatagramProtocol, DatagramTransport};
use crate::services::wire::asctime;

/// Sends every datagram back to its sender, unchanged (RFC 862), zero-length ones
/// included.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(
        &mut self,
        data: &[u8],
        addr: &DatagramAddress,
        t: &mut DatagramTransport,
    ) {
        let _ = t.write(data, addr);
    }
}

/// Ignores every datagram (RFC 863).
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl DatagramProtocol for Discard {
    fn datagram_received(&mut self, _: &[u8], _: &DatagramAddress, _: &mut DatagramTransport) {}
}

/// Answers every datagram with the quote and CRLF, whatever it held (RFC 865).
#[derive(Debug, Clone)]
pub struct Qotd {
    reply: Rc<[u8]>,
}

impl Qotd {
    /// Creates the protocol with `quote` (CRLF is added).
    pub fn new(quote: &str) -> Self {
        let mut reply = quote.as_bytes().to_vec();
        reply.extend_from_slice(b"\r\n");
        Qotd {
            reply: Rc::from(reply),
        }
    }
}

impl DatagramProtocol for Qotd {
    fn datagram_received(&mut self, _: &[u8], addr: &DatagramAddress, t: &mut DatagramTransport) {
        let _ = t.write(&self.reply, addr);
    }
}

/// Answers every datagram with the date and time as `asctime` text in UTC and
/// CRLF (RFC 867).
#[derive(Debug, Default, Clone, Copy)]
pub struct Daytime;

impl DatagramProtocol for Daytime {
    fn datagram_received(&mut self, _: &[u8], addr: &DatagramAddress, t: &mut DatagramTransport) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut line = asctime(secs);
        line.push_str("\r\n");
        let _ = t.write(line.as_bytes(), addr);
    }
}

/// The printable ASCII characters RFC 864's lines rotate through.
const PRINTABLE: &[u8] = b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
/// Characters per chargen line (RFC 864's example), before CRLF.
pub const CHARGEN_LINE: usize = 72;
/// Lines per chargen reply: 6 × 74 = 444 bytes, within RFC 864's 0 to 512.
pub const CHARGEN_LINES: usize = 6;

/// Answers every datagram with lines of RFC 864's rotating character pattern
/// (444 bytes, within the RFC's 0 to 512), each reply starting one character
/// further on.
#[derive(Debug, Default, Clone)]
pub struct Chargen {
    next: usize,
    reply: Vec<u8>,
}

impl Chargen {
    /// Builds the next reply into `self.reply`.
    fn fill(&mut self) {
        self.reply.clear();
        for line in 0..CHARGEN_LINES {
            let first = self.next + line;
            for k in 0..CHARGEN_LINE {
                self.reply.push(PRINTABLE[(first + k) % PRINTABLE.len()]);
            }
            self.reply.extend_from_slice(b"\r\n");
        }
        self.next = (self.next + 1) % PRINTABLE.len();
    }
}

impl DatagramProtocol for Chargen {
    fn datagram_received(&mut self, _: &[u8], addr: &DatagramAddress, t: &mut DatagramTransport) {
        self.fill();
        let _ = t.write(&self.reply, addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chargen_lines_rotate_by_one_character() {
        let mut c = Chargen::default();
        c.fill();
        assert_eq!(c.reply.len(), CHARGEN_LINES * (CHARGEN_LINE + 2));
        assert!(c.reply.len() <= 512);
        let lines: Vec<&[u8]> = c.reply.split(|b| *b == b'\n').collect();
        assert_eq!(&lines[0][..3], b" !\"");
        assert_eq!(&lines[1][..3], b"!\"#");
        assert!(lines[0].ends_with(b"\r"));
        c.fill();
        assert_eq!(&c.reply[..2], b"!\"");
    }
}
