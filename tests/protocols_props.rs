//! Property tests for every decoder: decode(encode(frames)) == frames under arbitrary
//! chunking, no input panics, and a drained decoder buffers no more than its limit
//! plus a delimiter or prefix.

use proptest::prelude::*;
use weft::protocols::{
    int_prefixed, netstring, IntNDecoder, IntNEvent, LineDecoder, LineEvent, LineOnlyDecoder,
    NetstringDecoder,
};

/// Cuts `data` at the given fractions of its length.
fn cut<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for p in points {
        out.push(&data[prev..p]);
        prev = p;
    }
    out.push(&data[prev..]);
    out
}

fn line_payload() -> impl Strategy<Value = Vec<u8>> {
    // Lines may hold lone \r and \n, never the full CRLF.
    prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..40).prop_map(
        |mut v| {
            while let Some(i) = v.windows(2).position(|w| w == b"\r\n") {
                v[i + 1] = b'x';
            }
            v
        },
    )
}

proptest! {
    #[test]
    fn line_decoder_round_trips_under_any_chunking(
        lines in prop::collection::vec(line_payload(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for l in &lines {
            wire.extend_from_slice(l);
            wire.extend_from_slice(b"\r\n");
        }
        let mut d = LineDecoder::with_limits(b"\r\n", 40);
        let mut got = Vec::new();
        for c in cut(&wire, &cuts) {
            d.feed(c);
            while let Some(e) = d.next_event() {
                match e {
                    LineEvent::Line(l) => got.push(l.to_vec()),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert_eq!(got, lines);
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn line_only_decoder_round_trips_under_any_chunking(
        lines in prop::collection::vec(line_payload(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for l in &lines {
            wire.extend_from_slice(l);
            wire.extend_from_slice(b"\r\n");
        }
        // The limit leaves room for a line plus a split CRLF (LineOnly's own rule).
        let mut d = LineOnlyDecoder::with_limits(b"\r\n", 41);
        let mut got = Vec::new();
        for c in cut(&wire, &cuts) {
            d.feed(c);
            while let Some(e) = d.next_event() {
                match e {
                    LineEvent::Line(l) => got.push(l.to_vec()),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert_eq!(got, lines);
    }

    #[test]
    fn netstring_decoder_round_trips_under_any_chunking(
        strings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..10),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for s in &strings {
            netstring::encode(s, &mut wire);
        }
        let mut d = NetstringDecoder::with_max_length(300);
        let mut got = Vec::new();
        for c in cut(&wire, &cuts) {
            d.feed(c);
            while let Some(e) = d.next_event() {
                got.push(e.expect("valid netstrings").to_vec());
            }
        }
        prop_assert_eq!(got, strings);
    }

    #[test]
    fn int_decoders_round_trip_under_any_chunking(
        strings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..255), 0..10),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        fn check<const N: usize>(strings: &[Vec<u8>], cuts: &[usize]) -> Vec<Vec<u8>> {
            let mut wire = Vec::new();
            for s in strings {
                int_prefixed::encode::<N>(s, &mut wire).expect("fits");
            }
            let mut d = IntNDecoder::<N>::with_max_length(255);
            let mut got = Vec::new();
            for c in cut(&wire, cuts) {
                d.feed(c);
                while let Some(e) = d.next_event() {
                    match e {
                        IntNEvent::Frame(f) => got.push(f.to_vec()),
                        IntNEvent::LengthLimitExceeded(n) => panic!("limit {n}"),
                    }
                }
            }
            got
        }
        prop_assert_eq!(&check::<1>(&strings, &cuts), &strings);
        prop_assert_eq!(&check::<2>(&strings, &cuts), &strings);
        prop_assert_eq!(&check::<4>(&strings, &cuts), &strings);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_drained_decoders_stay_within_their_limits(
        data in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        max in 0usize..50,
    ) {
        let chunks = cut(&data, &cuts);
        let mut line = LineDecoder::with_limits(b"\r\n", max);
        let mut only = LineOnlyDecoder::with_limits(b"\n", max);
        let mut ns = NetstringDecoder::with_max_length(max);
        let mut i1 = IntNDecoder::<1>::with_max_length(max);
        let mut i2 = IntNDecoder::<2>::with_max_length(max);
        let mut i4 = IntNDecoder::<4>::with_max_length(max);
        for c in chunks {
            line.feed(c);
            while line.next_event().is_some() {}
            prop_assert!(line.buffered() < max + 2);
            only.feed(c);
            while only.next_event().is_some() {}
            prop_assert!(only.buffered() <= max || only.is_broken());
            ns.feed(c);
            while ns.next_event().is_some() {}
            prop_assert!(ns.buffered() <= max + 1);
            i1.feed(c);
            while i1.next_event().is_some() {}
            prop_assert!(i1.buffered() < 1 + max);
            i2.feed(c);
            while i2.next_event().is_some() {}
            prop_assert!(i2.buffered() < 2 + max);
            i4.feed(c);
            while i4.next_event().is_some() {}
            prop_assert!(i4.buffered() < 4 + max);
        }
    }
}
