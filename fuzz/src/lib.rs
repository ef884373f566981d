//! The checks behind weft's decoder fuzz targets, shared by the libFuzzer entry points
//! (`fuzz_targets/*.rs`) and the libFuzzer-free `replay` binary.
//!
//! Every check takes raw fuzzer bytes laid out as:
//!
//! ```text
//!   [0] chunking seed   [1] limit/delimiter seed   [2..] the stream
//! ```
//!
//! and asserts, for one decoder: nothing panics; once a `feed`'s events are drained the
//! decoder buffers no more than its limit plus a delimiter or prefix; and the events do
//! not depend on how the stream was chunked (up to what Twisted itself makes
//! chunking-dependent, noted per check). A failed assertion is a panic, which both
//! libFuzzer and `replay` report as a crash.

use weft::protocols::{
    IntNDecoder, IntNEvent, LineDecoder, LineEvent, LineOnlyDecoder, NetstringDecoder,
};

/// Splits an input into (chunking seed, limit seed, stream).
fn split(data: &[u8]) -> Option<(u8, u8, &[u8])> {
    match data {
        [a, b, rest @ ..] => Some((*a, *b, rest)),
        _ => None,
    }
}

/// Cuts `stream` into chunks whose sizes come from `seed`: 0 means one byte at a time,
/// anything else a xorshift sequence of sizes 1..=seed.
pub fn chunks(seed: u8, stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut rest = stream;
    while !rest.is_empty() {
        let n = if seed == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            1 + (state % u32::from(seed)) as usize
        };
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

const DELIMITERS: [&[u8]; 4] = [b"\r\n", b"\n", b"\r\n\r\n", b"aba"];

/// What a line decoder produced: lines and raw bytes up to the first
/// `LengthExceeded`, and whether one happened.
#[derive(Debug, PartialEq, Eq, Default)]
struct LineRun {
    lines: Vec<Vec<u8>>,
    raw: Vec<u8>,
    exceeded: bool,
}

fn run_line(chunks: &[&[u8]], delim: &[u8], max: usize) -> LineRun {
    let mut d = LineDecoder::with_limits(delim, max);
    let mut run = LineRun::default();
    for c in chunks {
        d.feed(c);
        loop {
            let raw_next = match d.next_event() {
                None => break,
                Some(LineEvent::Line(l)) => {
                    if !run.exceeded {
                        run.lines.push(l.to_vec());
                    }
                    l.first() == Some(&b'R')
                }
                Some(LineEvent::Raw(r)) => {
                    run.raw.extend_from_slice(r);
                    false
                }
                Some(LineEvent::LengthExceeded(x)) => {
                    assert!(!x.is_empty());
                    run.exceeded = true;
                    false
                }
            };
            if raw_next {
                d.set_raw_mode();
            }
        }
        let bound = if d.is_line_mode() {
            max + delim.len()
        } else {
            1
        };
        assert!(
            d.buffered() < bound,
            "line decoder holds {} bytes",
            d.buffered()
        );
    }
    run
}

/// `LineDecoder`: a line starting with `R` switches to raw mode for good.
///
/// Chunking may change the argument of `LengthExceeded` (as in Twisted) and what comes
/// after it, but not the lines and raw bytes before it nor whether it happens.
pub fn line(data: &[u8]) {
    let Some((seed, lim, stream)) = split(data) else {
        return;
    };
    let delim = DELIMITERS[usize::from(lim >> 6)];
    let max = usize::from(lim & 0x3f);
    let whole = run_line(&[stream], delim, max);
    let chunked = run_line(&chunks(seed, stream), delim, max);
    if whole.exceeded {
        assert!(chunked.exceeded);
        assert_eq!(whole.lines, chunked.lines);
    } else {
        assert_eq!(whole, chunked);
    }
    receiver_line(seed, lim, stream);
}

/// Drives a `LineReceiver` whose handler pauses, clears, and switches modes on
/// command bytes, to check that the adapter neither panics nor lets its buffer grow
/// past the limit while it is neither paused nor closing.
fn receiver_line(seed: u8, lim: u8, stream: &[u8]) {
    use weft::protocols::{LineControl, LineHandler, LineReceiver};
    use weft::testing::StringTransport;
    use weft::Protocol;

    struct Commands;
    impl LineHandler for Commands {
        fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
            match line.first() {
                Some(b'P') => t.pause_producing(),
                Some(b'R') => t.set_raw_mode(),
                Some(b'C') => {
                    let _ = t.clear_line_buffer();
                }
                Some(b'S') => t.send_line(line),
                Some(b'Q') => t.lose_connection(),
                _ => {}
            }
        }
        fn raw_data_received(&mut self, data: &[u8], t: &mut LineControl<'_>) {
            if let Some(at) = data.iter().position(|&b| b == b'L') {
                t.set_line_mode(&data[at + 1..]);
            }
        }
    }

    let delim = DELIMITERS[usize::from(lim >> 6)];
    let max = usize::from(lim & 0x3f);
    let mut t = StringTransport::new();
    let mut p = LineReceiver::with_limits(Commands, delim, max);
    p.connection_made(&mut t);
    for c in chunks(seed, stream) {
        if t.disconnecting() {
            break;
        }
        p.data_received(c, &mut t);
        while p.is_paused() && !t.disconnecting() {
            p.resume_producing(&mut t);
        }
        if !t.disconnecting() && p.decoder().is_line_mode() {
            assert!(p.decoder().buffered() < max + delim.len());
        }
    }
}

fn run_line_only(chunks: &[&[u8]], delim: &[u8], max: usize) -> (Vec<Vec<u8>>, bool) {
    let mut d = LineOnlyDecoder::with_limits(delim, max);
    let mut lines = Vec::new();
    let mut exceeded = false;
    for c in chunks {
        d.feed(c);
        while let Some(e) = d.next_event() {
            match e {
                LineEvent::Line(l) => lines.push(l.to_vec()),
                LineEvent::LengthExceeded(_) => exceeded = true,
                LineEvent::Raw(_) => panic!("LineOnlyDecoder has no raw mode"),
            }
        }
        if !d.is_broken() {
            assert!(
                d.buffered() <= max,
                "line-only decoder holds {}",
                d.buffered()
            );
        }
    }
    (lines, exceeded)
}

/// `LineOnlyDecoder`: its rest check is segmentation-dependent by design (Twisted
/// #3353), so a chunked run may stop earlier than the whole one, never later, and
/// the lines it delivered are a prefix of the whole run's.
pub fn line_only(data: &[u8]) {
    let Some((seed, lim, stream)) = split(data) else {
        return;
    };
    let delim = DELIMITERS[usize::from(lim >> 6)];
    let max = usize::from(lim & 0x3f);
    let (whole, whole_x) = run_line_only(&[stream], delim, max);
    let (chunked, chunked_x) = run_line_only(&chunks(seed, stream), delim, max);
    assert!(whole.starts_with(&chunked));
    if whole_x {
        assert!(chunked_x);
    }
    if !chunked_x {
        assert_eq!(whole, chunked);
    }
}

fn run_netstring(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, String>> {
    let mut d = NetstringDecoder::with_max_length(max);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c);
        while let Some(e) = d.next_event() {
            out.push(e.map(<[u8]>::to_vec).map_err(|e| format!("{e:?}")));
        }
        assert!(
            d.buffered() <= max + 1,
            "netstring decoder holds {}",
            d.buffered()
        );
    }
    out
}

/// `NetstringDecoder`: events (errors included) are the same however the stream is
/// chunked, and re-encoding the payloads reproduces the stream's valid prefix.
pub fn netstring(data: &[u8]) {
    let Some((seed, lim, stream)) = split(data) else {
        return;
    };
    let max = usize::from(lim);
    let whole = run_netstring(&[stream], max);
    let chunked = run_netstring(&chunks(seed, stream), max);
    assert_eq!(whole, chunked);
    let mut again = Vec::new();
    for payload in whole.iter().map_while(|e| e.as_ref().ok()) {
        weft::protocols::netstring::encode(payload, &mut again);
    }
    assert!(stream.starts_with(&again));
}

fn run_int<const N: usize>(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, usize>> {
    let mut d = IntNDecoder::<N>::with_max_length(max);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c);
        while let Some(e) = d.next_event() {
            out.push(match e {
                IntNEvent::Frame(f) => Ok(f.to_vec()),
                IntNEvent::LengthLimitExceeded(n) => Err(n),
            });
        }
        assert!(d.buffered() < N + max, "int decoder holds {}", d.buffered());
    }
    out
}

fn int_width<const N: usize>(seed: u8, max: usize, stream: &[u8]) {
    let whole = run_int::<N>(&[stream], max);
    let chunked = run_int::<N>(&chunks(seed, stream), max);
    assert_eq!(whole, chunked);
    let mut again = Vec::new();
    for payload in whole.iter().map_while(|e| e.as_ref().ok()) {
        weft::protocols::int_prefixed::encode::<N>(payload, &mut again).expect("fits");
    }
    assert!(stream.starts_with(&again));
}

/// `IntNDecoder` for N = 1, 2, 4 (chosen by the limit seed): chunking-invariant events
/// and an encode round trip.
pub fn int_prefixed(data: &[u8]) {
    let Some((seed, lim, stream)) = split(data) else {
        return;
    };
    let max = usize::from(lim & 0x3f) * 4;
    match lim >> 6 {
        0 | 1 => int_width::<1>(seed, max, stream),
        2 => int_width::<2>(seed, max, stream),
        _ => int_width::<4>(seed, max, stream),
    }
}

/// A fuzz check: takes one raw fuzzer input, panics on a failed check.
pub type Check = fn(&[u8]);

/// Every target by name, for `replay`.
pub const TARGETS: [(&str, Check); 4] = [
    ("line", line),
    ("line_only", line_only),
    ("netstring", netstring),
    ("int_prefixed", int_prefixed),
];
