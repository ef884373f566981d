//! `NetstringReceiver`: Twisted's `test_basic.py` cases, ported by name (the Twisted
//! name is in each test's comment), plus chunking invariance and the strict grammar.

use weft::protocols::netstring::encode;
use weft::protocols::{
    NetstringControl, NetstringDecoder, NetstringError, NetstringHandler, NetstringReceiver,
};
use weft::testing::{feed_chunked, StringTransport};
use weft::Protocol;

/// Twisted's `TestNetstring`: keeps each string and echoes it.
#[derive(Default)]
struct Tester {
    received: Vec<Vec<u8>>,
    errors: Vec<NetstringError>,
}

impl NetstringHandler for Tester {
    fn string_received(&mut self, s: &[u8], t: &mut NetstringControl<'_>) {
        self.received.push(s.to_vec());
        t.send_string(s);
    }
    fn parse_error(&mut self, e: NetstringError, t: &mut NetstringControl<'_>) {
        self.errors.push(e);
        t.lose_connection();
    }
}

/// Feeds `data` in one chunk to a receiver with a limit of 50 (Twisted's `TestMixin`).
fn receive(data: &[u8]) -> (NetstringReceiver<Tester>, StringTransport) {
    let mut t = StringTransport::new();
    let mut p = NetstringReceiver::with_max_length(Tester::default(), 50);
    p.connection_made(&mut t);
    p.data_received(data, &mut t);
    (p, t)
}

#[test]
fn strings_are_received_in_chunks_of_every_size() {
    // test_buffer
    let strings: Vec<Vec<u8>> = [
        &b"hello"[..],
        b"world",
        b"how",
        b"are",
        b"you123",
        b":today",
        &[b'a'; 515],
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    let mut out = Vec::new();
    for s in &strings {
        encode(s, &mut out);
    }
    for size in 1..10 {
        let mut t = StringTransport::new();
        let mut p = NetstringReceiver::with_max_length(Tester::default(), 699);
        feed_chunked(&mut p, &mut t, &out, size);
        assert_eq!(p.handler().received, strings, "packet size {size}");
    }
}

#[test]
fn illegal_strings_fed_one_byte_at_a_time_lose_connection() {
    // test_illegal
    for s in [
        &b"9999999999999999999999"[..],
        b"abc",
        b"4:abcde",
        b"51:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab,",
    ] {
        let mut t = StringTransport::new();
        let mut p = NetstringReceiver::with_max_length(Tester::default(), 50);
        feed_chunked(&mut p, &mut t, s, 1);
        assert!(t.disconnecting(), "{:?}", String::from_utf8_lossy(s));
        assert_eq!(p.handler().errors.len(), 1);
    }
}

#[test]
fn empty_netstring_is_received() {
    // test_receiveEmptyNetstring
    assert_eq!(receive(b"0:,").0.handler().received, [b""]);
}

#[test]
fn one_and_two_character_netstrings_are_received() {
    // test_receiveOneCharacter, test_receiveTwoCharacters
    assert_eq!(receive(b"1:a,").0.handler().received, [b"a"]);
    assert_eq!(receive(b"2:ab,").0.handler().received, [b"ab"]);
}

#[test]
fn colons_and_commas_inside_the_payload_are_data() {
    // test_receiveNestedNetstring
    assert_eq!(receive(b"4:1:a,,").0.handler().received, [b"1:a,"]);
}

#[test]
fn more_data_than_the_length_says_is_a_missing_comma() {
    // test_moreDataThanSpecified, test_moreDataThanSpecifiedBorderCase
    for s in [&b"2:aaa,"[..], b"0:a,"] {
        let (p, t) = receive(s);
        assert!(t.disconnecting());
        assert_eq!(p.handler().errors, [NetstringError::MissingComma]);
        assert_eq!(t.value(), b"", "a parse error closes silently");
    }
}

#[test]
fn a_missing_length_is_refused() {
    // test_missingNumber, test_missingNumberAndColon, test_onlyData
    for s in [&b":aaa,"[..], b"aaa,", b"aaa"] {
        let (p, t) = receive(s);
        assert!(t.disconnecting());
        assert_eq!(p.handler().errors, [NetstringError::MissingLength]);
    }
}

#[test]
fn a_missing_colon_is_refused() {
    // test_missingColon
    let (p, t) = receive(b"3aaa,");
    assert!(t.disconnecting());
    assert_eq!(p.handler().errors, [NetstringError::MissingColon]);
}

#[test]
fn leading_zeros_signs_and_spaces_are_refused() {
    for (s, e) in [
        (&b"05:abcde,"[..], NetstringError::LeadingZero),
        (b"00:,", NetstringError::LeadingZero),
        (b"+5:abcde,", NetstringError::MissingLength),
        (b"-1:a,", NetstringError::MissingLength),
        (b" 1:a,", NetstringError::MissingLength),
        (b"1 :a,", NetstringError::MissingColon),
    ] {
        let (p, t) = receive(s);
        assert!(t.disconnecting());
        assert_eq!(p.handler().errors, [e], "{:?}", String::from_utf8_lossy(s));
    }
}

#[test]
fn netstrings_split_across_portions_are_received() {
    // test_receiveNetstringPortions_1, _2, _3
    for parts in [
        &[&b"4:aa"[..], b"aa,"][..],
        &[b"1", b"0:01234", b"56789", b","],
        &[b"2", b":", b"a", b"b", b","],
    ] {
        let mut t = StringTransport::new();
        let mut p = NetstringReceiver::new(Tester::default());
        for part in parts {
            p.data_received(part, &mut t);
        }
        let want: Vec<u8> = parts.concat();
        let colon = want.iter().position(|&b| b == b':').unwrap();
        assert_eq!(p.handler().received, [&want[colon + 1..want.len() - 1]]);
    }
}

#[test]
fn two_netstrings_in_two_portions_are_received() {
    // test_receiveTwoNetstrings
    let mut t = StringTransport::new();
    let mut p = NetstringReceiver::new(Tester::default());
    p.data_received(b"1:a,1", &mut t);
    assert_eq!(p.handler().received, [b"a"]);
    p.data_received(b":b,", &mut t);
    assert_eq!(p.handler().received, [b"a", b"b"]);
}

#[test]
fn a_length_over_the_limit_is_refused_before_the_colon() {
    // test_maxReceiveLimit
    let (p, t) = receive(b"51");
    assert!(t.disconnecting());
    assert_eq!(p.handler().errors, [NetstringError::TooLong { max: 50 }]);
}

#[test]
fn a_length_equal_to_the_limit_is_accepted_and_one_more_is_not() {
    // test_consumeLengthBorderCase1, _2, _3
    let mut d = NetstringDecoder::with_max_length(12);
    d.feed(b"12:");
    assert_eq!(d.next_event(), None);
    assert!(!d.is_broken());
    let mut d = NetstringDecoder::with_max_length(11);
    d.feed(b"12:");
    assert_eq!(
        d.next_event(),
        Some(Err(NetstringError::TooLong { max: 11 }))
    );
    let mut d = NetstringDecoder::with_max_length(11);
    d.feed(b"1000:");
    assert_eq!(
        d.next_event(),
        Some(Err(NetstringError::TooLong { max: 11 }))
    );
}

#[test]
fn the_default_limit_is_99999_bytes() {
    let mut t = StringTransport::new();
    let mut p = NetstringReceiver::new(Tester::default());
    let mut data = Vec::new();
    encode(&vec![b'z'; 99_999], &mut data);
    p.data_received(&data, &mut t);
    assert_eq!(p.handler().received.len(), 1);
    p.data_received(b"100000", &mut t);
    assert!(t.disconnecting());
}

/// Closes after the first string.
#[derive(Default)]
struct CloseAfterFirst {
    received: Vec<Vec<u8>>,
}
impl NetstringHandler for CloseAfterFirst {
    fn string_received(&mut self, s: &[u8], t: &mut NetstringControl<'_>) {
        self.received.push(s.to_vec());
        t.lose_connection();
    }
}

#[test]
fn strings_buffered_in_the_same_chunk_are_delivered_after_a_close() {
    let mut t = StringTransport::new();
    let mut p = NetstringReceiver::new(CloseAfterFirst::default());
    p.data_received(b"1:a,1:b,1:c,", &mut t);
    assert_eq!(p.handler().received, [b"a", b"b", b"c"]);
}

#[test]
fn strings_before_an_error_in_the_same_chunk_are_delivered() {
    let (p, t) = receive(b"1:a,2:bb,x");
    assert_eq!(p.handler().received, [&b"a"[..], b"bb"]);
    assert!(t.disconnecting());
}

#[test]
fn send_string_writes_length_colon_payload_comma() {
    let mut t = StringTransport::new();
    let p = NetstringReceiver::new(Tester::default());
    p.send_string(b"hello", &mut t);
    p.send_string(b"", &mut t);
    assert_eq!(t.value(), b"5:hello,0:,");
}

#[test]
fn netstring_decoder_events_do_not_depend_on_chunking() {
    let stream = b"5:hello,0:,4:1:a,,12:hello world!,3:abc;";
    let decode = |chunks: &[&[u8]]| {
        let mut d = NetstringDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c);
            while let Some(e) = d.next_event() {
                out.push(e.map(<[u8]>::to_vec));
            }
        }
        out
    };
    let whole = decode(&[stream]);
    assert_eq!(whole.len(), 5);
    assert_eq!(whole[4], Err(NetstringError::MissingComma));
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode(&bytes), whole);
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(decode(&[a, b]), whole, "split at {i}");
    }
}

#[test]
fn a_broken_decoder_drops_later_input() {
    let mut d = NetstringDecoder::new();
    d.feed(b"x");
    assert_eq!(d.next_event(), Some(Err(NetstringError::MissingLength)));
    d.feed(&[b'a'; 1000]);
    assert_eq!(d.next_event(), None);
    assert_eq!(d.buffered(), 0);
}
