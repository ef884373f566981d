//! Finding a delimiter in a byte buffer, resumably.
//!
//! The line decoders keep the position where a search stopped and start the next one
//! there, so a line that arrives one byte at a time is still scanned once. The search
//! looks for the delimiter's first byte with `memchr` (SSE2/AVX2 on x86-64, chosen at
//! run time; it replaced our own eight-bytes-at-a-time loop, see "Decoders" in
//! docs/benchmarks.md for the figures) and then compares the rest. A whole-needle
//! `memmem` search is not used: it would build a searcher per call (the decoders call
//! once per line), and for CRLF the first byte is rare enough that one `memchr` per line
//! is the whole cost.

/// Longest haystack searched inline instead of through `memchr`.
///
/// `memchr` picks its SIMD routine at run time and reaches it through a function
/// pointer; on a haystack of a few bytes that call costs more than the scan. In
/// 16-byte chunks (every search covers one chunk) the inline scan below makes the
/// line decoders 10-15 % faster than `memchr` alone, which had made `LineOnlyDecoder`
/// 6 % slower than our old all-SWAR search. It costs about 10 % at 1 KiB chunks,
/// which stay above 5 GB/s; small reads (one short line each) are the common case of
/// interactive line protocols. Figures: "Decoders: the 16-byte case" in
/// docs/benchmarks.md. Kept out of line (`#[inline(never)]`) it gains nothing.
const SHORT: usize = 16;

/// `0x01` in every byte of a word.
const LO: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte of a word.
const HI: u64 = 0x8080_8080_8080_8080;

/// Returns the index of the first `needle` in `hay`.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() <= SHORT {
        find_byte_short(needle, hay)
    } else {
        memchr::memchr(needle, hay)
    }
}

/// [`find_byte`] for at most [`SHORT`] bytes: one or two words compared at once
/// ("SIMD within a register", plain `u64` arithmetic), then the last few bytes one
/// at a time.
#[inline(always)]
fn find_byte_short(needle: u8, hay: &[u8]) -> Option<usize> {
    debug_assert!(hay.len() <= SHORT);
    let splat = LO.wrapping_mul(u64::from(needle));
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for w in words.by_ref() {
        let w = u64::from_le_bytes(w.try_into().expect("an 8-byte chunk")) ^ splat;
        // The high bit is set in the first zero byte of `w` (later bytes may carry
        // false positives, so only the lowest set bit is read; the load is
        // little-endian, so that is the first byte in memory).
        let zero = w.wrapping_sub(LO) & !w & HI;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|p| at + p)
}

/// Searches `hay` for the first complete `delim`.
///
/// Returns `Ok(start)` of the first occurrence, or `Err(resume)`: the offset from
/// which a later search over a longer `hay` (the same bytes plus more) must start so
/// that it misses nothing, that is the first place a delimiter could still begin.
/// `delim` must not be empty.
#[inline]
pub(crate) fn find(hay: &[u8], delim: &[u8]) -> Result<usize, usize> {
    debug_assert!(!delim.is_empty());
    let first = delim[0];
    let mut from = 0;
    loop {
        let Some(p) = find_byte(first, &hay[from..]) else {
            return Err(hay.len());
        };
        let c = from + p;
        if c + delim.len() > hay.len() {
            // Could be the start of a delimiter whose end has not arrived yet.
            return Err(c);
        }
        // The first byte matched; compare the rest byte by byte. Delimiters are a
        // few bytes long, and a slice comparison here is a call to libc's `memcmp`
        // per candidate (7 % of a 1 KiB chunk's instructions in the line benchmark).
        if hay[c + 1..c + delim.len()]
            .iter()
            .zip(&delim[1..])
            .all(|(h, d)| h == d)
        {
            return Ok(c);
        }
        from = c + 1;
    }
}

/// Returns the start of the last complete `delim` in `hay`.
pub(crate) fn rfind(hay: &[u8], delim: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(hay, delim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_agrees_with_a_naive_scan_at_every_offset() {
        let mut hay = vec![b'a'; 70];
        for at in 0..hay.len() {
            hay[at] = b'\n';
            for start in 0..=at {
                assert_eq!(find_byte(b'\n', &hay[start..]), Some(at - start));
            }
            hay[at] = b'a';
        }
        assert_eq!(find_byte(b'\n', &hay), None);
        // Bytes just above and below the needle must not match.
        assert_eq!(find_byte(0x80, &[0x7f, 0x81, 0x00, 0xff, 0x80]), Some(4));
        assert_eq!(find_byte(0, &[1; 40]), None);
    }

    #[test]
    fn the_short_scan_agrees_with_a_naive_scan_at_every_length_and_position() {
        for needle in [b'\r', 0x00, 0x80, 0xff] {
            for len in 0..=SHORT {
                // Bytes one above and one below the needle everywhere else.
                let other = |i: usize| needle.wrapping_add(if i % 2 == 0 { 1 } else { 255 });
                let base: Vec<u8> = (0..len).map(other).collect();
                assert_eq!(find_byte(needle, &base), None, "len {len}");
                for at in 0..len {
                    let mut hay = base.clone();
                    hay[at] = needle;
                    // A second match later must not be reported first.
                    if at + 3 < len {
                        hay[at + 3] = needle;
                    }
                    assert_eq!(find_byte(needle, &hay), Some(at), "len {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn find_reports_where_a_partial_delimiter_starts() {
        assert_eq!(find(b"ab\r\ncd", b"\r\n"), Ok(2));
        assert_eq!(find(b"ab\r", b"\r\n"), Err(2));
        assert_eq!(find(b"a\rb\r", b"\r\n"), Err(3));
        assert_eq!(find(b"abc", b"\r\n"), Err(3));
        assert_eq!(find(b"", b"\r\n"), Err(0));
        assert_eq!(find(b"xxab", b"ab"), Ok(2));
        assert_eq!(find(b"aab", b"ab"), Ok(1));
    }

    #[test]
    fn rfind_finds_the_last_delimiter() {
        assert_eq!(rfind(b"a\r\nb\r\nc", b"\r\n"), Some(4));
        assert_eq!(rfind(b"abc", b"\r\n"), None);
        assert_eq!(rfind(b"", b"\r\n"), None);
    }
}
