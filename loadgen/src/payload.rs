//! Request payloads: one framed template, stamped with a sequence number per request.
//!
//! The frame is encoded once with `weft::protocols::Framing::encode`; each request copies
//! it and overwrites a run of hex digits of its sequence number, so that consecutive
//! requests differ and a server that reorders, drops or repeats data is caught. Checking a
//! response compares it with the template and the digits computed on the fly: no
//! allocation and no copy per request beyond the frame itself.
//!
//! Payload bytes are letters and digits only, so they never contain a line delimiter.

use weft::protocols::Framing;

const HEX: &[u8; 16] = b"0123456789abcdef";
/// The most sequence digits stamped into a payload (64 bits of hex).
const MAX_DIGITS: usize = 16;

/// A framed request template.
#[derive(Debug, Clone)]
pub struct Payload {
    frame: Vec<u8>,
    seq_at: usize,
    seq_len: usize,
}

impl Payload {
    /// Builds the template of a `size`-byte payload framed with `framing`.
    ///
    /// # Errors
    /// A message when the framing cannot carry the payload (e.g. 256 bytes in `int8`).
    pub fn new(framing: Framing, delimiter: &[u8], size: usize) -> Result<Self, String> {
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let mut frame = Vec::with_capacity(size + 16);
        framing
            .encode(&body, delimiter, &mut frame)
            .map_err(|e| format!("cannot frame a {size}-byte payload as {framing:?}: {e}"))?;
        // Find where the payload sits inside its frame (after any length prefix).
        let payload_at = if size == 0 {
            0
        } else {
            frame
                .windows(size)
                .position(|w| w == body.as_slice())
                .ok_or("framing did not carry the payload verbatim")?
        };
        Ok(Payload {
            frame,
            seq_at: payload_at,
            seq_len: size.min(MAX_DIGITS),
        })
    }

    /// Returns the length of one framed request.
    #[inline]
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    #[inline]
    fn digits(&self, seq: u64) -> [u8; MAX_DIGITS] {
        let mut d = [0u8; MAX_DIGITS];
        let w = self.seq_len;
        for (i, slot) in d.iter_mut().take(w).enumerate() {
            let shift = 4 * (w - 1 - i);
            *slot = HEX[((seq >> shift) & 0xf) as usize];
        }
        d
    }

    /// Appends request `seq`'s frame to `out`.
    #[inline]
    pub fn append(&self, seq: u64, out: &mut Vec<u8>) {
        let at = out.len() + self.seq_at;
        out.extend_from_slice(&self.frame);
        out[at..at + self.seq_len].copy_from_slice(&self.digits(seq)[..self.seq_len]);
    }

    /// Returns whether `chunk` equals bytes `offset..offset + chunk.len()` of request
    /// `seq`'s frame.
    #[inline]
    pub fn matches(&self, seq: u64, offset: usize, chunk: &[u8]) -> bool {
        let end = offset + chunk.len();
        if end > self.frame.len() {
            return false;
        }
        let (s0, s1) = (self.seq_at, self.seq_at + self.seq_len);
        // Before the digits.
        let a = end.min(s0);
        if offset < a && chunk[..a - offset] != self.frame[offset..a] {
            return false;
        }
        // The digits.
        let (d0, d1) = (offset.max(s0), end.min(s1));
        if d0 < d1 && chunk[d0 - offset..d1 - offset] != self.digits(seq)[d0 - s0..d1 - s0] {
            return false;
        }
        // After the digits.
        let b = offset.max(s1);
        b >= end || chunk[b - offset..] == self.frame[b..end]
    }

    /// Returns the position of the first byte of `chunk` that differs from request `seq`'s
    /// frame at `offset`, for error messages.
    pub fn first_difference(&self, seq: u64, offset: usize, chunk: &[u8]) -> Option<usize> {
        let mut expected = Vec::with_capacity(self.frame.len());
        self.append(seq, &mut expected);
        chunk
            .iter()
            .enumerate()
            .position(|(i, b)| expected.get(offset + i) != Some(b))
    }

    /// Returns the expected byte of request `seq` at `offset`, for error messages.
    pub fn expected_byte(&self, seq: u64, offset: usize) -> Option<u8> {
        let mut expected = Vec::with_capacity(self.frame.len());
        self.append(seq, &mut expected);
        expected.get(offset).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_split_of_a_frame_matches() {
        for framing in ["raw", "line", "netstring", "int8", "int16", "int32"] {
            for size in [0, 1, 5, 16, 17, 64] {
                let p = Payload::new(framing.parse().unwrap(), b"\r\n", size).unwrap();
                let mut f = Vec::new();
                p.append(0xdead_beef, &mut f);
                for cut in 0..=f.len() {
                    assert!(
                        p.matches(0xdead_beef, 0, &f[..cut]),
                        "{framing} {size} {cut}"
                    );
                    assert!(
                        p.matches(0xdead_beef, cut, &f[cut..]),
                        "{framing} {size} {cut}"
                    );
                }
                if size > 0 {
                    assert!(!p.matches(0xdead_bee0, 0, &f), "{framing} {size}");
                }
            }
        }
    }

    #[test]
    fn a_changed_byte_is_a_mismatch() {
        let p = Payload::new(Framing::Line, b"\r\n", 64).unwrap();
        let mut f = Vec::new();
        p.append(7, &mut f);
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 1;
            assert!(!p.matches(7, 0, &g), "byte {i}");
            assert_eq!(p.first_difference(7, 0, &g), Some(i));
        }
    }
}
