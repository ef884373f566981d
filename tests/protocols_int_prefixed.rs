//! `Int8/16/32StringReceiver`: Twisted's `test_basic.py` cases, ported by name (the
//! Twisted name is in each test's comment), for every prefix width.

use weft::protocols::int_prefixed::encode;
use weft::protocols::{
    IntNControl, IntNDecoder, IntNEvent, IntNStringHandler, IntNStringReceiver, StringTooLongError,
};
use weft::testing::StringTransport;
use weft::Protocol;

/// Twisted's `TestMixin`: keeps strings and length-limit reports; `pause` pauses.
#[derive(Default)]
struct Tester {
    received: Vec<Vec<u8>>,
    limits: Vec<usize>,
    record_limit_only: bool,
}

impl<const N: usize> IntNStringHandler<N> for Tester {
    fn string_received(&mut self, s: &[u8], t: &mut IntNControl<'_, N>) {
        self.received.push(s.to_vec());
        match s {
            b"pause" => t.pause_producing(),
            b"hold" => t.pause_reading(),
            b"quit" => t.lose_connection(),
            _ => {}
        }
    }
    fn length_limit_exceeded(&mut self, length: usize, t: &mut IntNControl<'_, N>) {
        self.limits.push(length);
        if !self.record_limit_only {
            t.lose_connection();
        }
    }
}

fn receiver<const N: usize>(max: usize) -> (IntNStringReceiver<Tester, N>, StringTransport) {
    let mut t = StringTransport::new();
    let mut p = IntNStringReceiver::with_max_length(Tester::default(), max);
    p.connection_made(&mut t);
    (p, t)
}

fn frame<const N: usize>(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode::<N>(s, &mut out).unwrap();
    out
}

fn receive_one_byte_at_a_time<const N: usize>() {
    // test_receive
    let (mut p, mut t) = receiver::<N>(50);
    let strings = [b"a".to_vec(), vec![b'b'; 16]];
    for s in &strings {
        for b in frame::<N>(s) {
            p.data_received(&[b], &mut t);
        }
    }
    assert_eq!(p.handler().received, strings);
}

fn partial_prefixes_deliver_nothing<const N: usize>(partials: &[&[u8]]) {
    // test_partial
    for s in partials {
        let (mut p, mut t) = receiver::<N>(50);
        for b in *s {
            p.data_received(&[*b], &mut t);
        }
        assert!(p.handler().received.is_empty(), "{s:?}");
    }
}

fn send_prefixes_the_length<const N: usize>(want: &[u8]) {
    // test_send, test_data
    let (mut p, mut t) = receiver::<N>(50);
    p.send_string(b"foo", &mut t).unwrap();
    assert_eq!(t.value(), want);
    let mut incoming = want[..N].to_vec();
    *incoming.last_mut().unwrap() = 4;
    incoming.extend_from_slice(b"ubar");
    p.data_received(&incoming, &mut t);
    assert_eq!(p.handler().received, [b"ubar"]);
}

fn length_limit_exceeded_gets_the_prefix_value<const N: usize>() {
    // test_lengthLimitExceeded
    let (mut p, mut t) = receiver::<N>(10);
    p.handler_mut().record_limit_only = true;
    p.data_received(&frame::<N>(&[b'x'; 11])[..N], &mut t);
    assert_eq!(p.handler().limits, [11]);
}

fn long_string_is_not_delivered<const N: usize>() {
    // test_longStringNotDelivered
    let (mut p, mut t) = receiver::<N>(10);
    p.data_received(&frame::<N>(&[b'x'; 11]), &mut t);
    assert!(p.handler().received.is_empty());
    assert!(t.disconnecting());
    assert_eq!(t.value(), b"", "the default closes silently");
}

fn illegal_strings_lose_connection<const N: usize>(illegal: &[u8]) {
    // test_illegal
    let (mut p, mut t) = receiver::<N>(50);
    for b in illegal {
        p.data_received(&[*b], &mut t);
    }
    assert!(t.disconnecting());
}

#[test]
fn int32_receives_sends_and_enforces_the_limit() {
    receive_one_byte_at_a_time::<4>();
    partial_prefixes_deliver_nothing::<4>(&[b"\x00\x00\x00", b"hello there", b""]);
    send_prefixes_the_length::<4>(b"\x00\x00\x00\x03foo");
    length_limit_exceeded_gets_the_prefix_value::<4>();
    long_string_is_not_delivered::<4>();
    illegal_strings_lose_connection::<4>(b"\x10\x00\x00\x00aaaaaa");
}

#[test]
fn int16_receives_sends_and_enforces_the_limit() {
    receive_one_byte_at_a_time::<2>();
    partial_prefixes_deliver_nothing::<2>(&[b"\x00", b"hello there", b""]);
    send_prefixes_the_length::<2>(b"\x00\x03foo");
    length_limit_exceeded_gets_the_prefix_value::<2>();
    long_string_is_not_delivered::<2>();
    illegal_strings_lose_connection::<2>(b"\x10\x00aaaaaa");
}

#[test]
fn int8_receives_sends_and_enforces_the_limit() {
    receive_one_byte_at_a_time::<1>();
    partial_prefixes_deliver_nothing::<1>(&[b"\x08", b"dzadz", b""]);
    send_prefixes_the_length::<1>(b"\x03foo");
    length_limit_exceeded_gets_the_prefix_value::<1>();
    long_string_is_not_delivered::<1>();
}

#[test]
fn int8_and_int16_refuse_to_send_a_string_their_prefix_cannot_carry() {
    // test_tooLongSend
    let (p8, mut t) = receiver::<1>(50);
    assert_eq!(
        p8.send_string(&[b'b'; 257], &mut t),
        Err(StringTooLongError { len: 257, max: 255 })
    );
    assert!(p8.send_string(&[b'b'; 256], &mut t).is_err());
    let (p16, mut t) = receiver::<2>(50);
    assert!(p16.send_string(&vec![b'b'; 65_537], &mut t).is_err());
    assert!(p16.send_string(&vec![b'b'; 65_536], &mut t).is_err());
    assert_eq!(t.value(), b"", "nothing is written");
    // Sending does not check the receive limit, as in Twisted.
    assert!(p16.send_string(&vec![b'b'; 65_535], &mut t).is_ok());
}

#[test]
fn the_default_limit_is_99999_for_every_width() {
    let mut d = IntNDecoder::<4>::new();
    d.feed(&99_999u32.to_be_bytes());
    assert_eq!(d.next_event(), None);
    let mut d = IntNDecoder::<4>::new();
    d.feed(&100_000u32.to_be_bytes());
    assert_eq!(
        d.next_event(),
        Some(IntNEvent::LengthLimitExceeded(100_000))
    );
    let mut d = IntNDecoder::<2>::new();
    d.feed(b"\xff\xff");
    assert_eq!(d.next_event(), None, "65535 is under 99999");
}

#[test]
fn zero_length_frames_are_delivered() {
    let (mut p, mut t) = receiver::<2>(50);
    p.data_received(b"\x00\x00\x00\x00\x00\x01x", &mut t);
    assert_eq!(p.handler().received, [&b""[..], b"", b"x"]);
}

#[test]
fn pausing_holds_back_buffered_frames_until_resumed() {
    let (mut p, mut t) = receiver::<1>(50);
    let data = [frame::<1>(b"a"), frame::<1>(b"pause"), frame::<1>(b"b")].concat();
    p.data_received(&data, &mut t);
    assert_eq!(p.handler().received, [&b"a"[..], b"pause"]);
    assert!(p.is_paused() && t.reading_paused());
    p.data_received(&frame::<1>(b"c"), &mut t);
    assert_eq!(p.handler().received.len(), 2);
    p.resume_producing(&mut t);
    assert_eq!(p.handler().received, [&b"a"[..], b"pause", b"b", b"c"]);
}

#[test]
fn frames_buffered_in_the_same_chunk_are_delivered_after_a_close() {
    let (mut p, mut t) = receiver::<2>(50);
    let data = [frame::<2>(b"quit"), frame::<2>(b"after")].concat();
    p.data_received(&data, &mut t);
    assert!(t.disconnecting());
    assert_eq!(p.handler().received, [&b"quit"[..], b"after"]);
}

#[test]
fn a_huge_prefix_closes_without_buffering_the_payload() {
    let (mut p, mut t) = receiver::<4>(99_999);
    p.data_received(b"\xff\xff\xff\xff", &mut t);
    assert!(t.disconnecting());
    assert_eq!(p.handler().limits, [u32::MAX as usize]);
    assert_eq!(p.decoder().buffered(), 0);
}

#[test]
fn int_decoder_events_do_not_depend_on_chunking() {
    let stream = [
        frame::<2>(b"hello"),
        frame::<2>(b""),
        frame::<2>(b"x"),
        vec![0x01, 0x00],
    ]
    .concat();
    let decode = |chunks: &[&[u8]]| {
        let mut d = IntNDecoder::<2>::with_max_length(100);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c);
            while let Some(e) = d.next_event() {
                out.push(match e {
                    IntNEvent::Frame(f) => Ok(f.to_vec()),
                    IntNEvent::LengthLimitExceeded(n) => Err(n),
                });
            }
        }
        out
    };
    let whole = decode(&[&stream]);
    assert_eq!(whole.last(), Some(&Err(256)));
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode(&bytes), whole);
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(decode(&[a, b]), whole, "split at {i}");
    }
}

fn handlers_own_pause_reading_survives_a_pause_resume_cycle<const N: usize>() {
    // Not in Twisted: see the LineReceiver test of the same name.
    let (mut p, mut t) = receiver::<N>(100);
    p.data_received(&frame::<N>(b"hold"), &mut t);
    assert!(t.reading_paused());
    p.pause_producing(&mut t);
    p.resume_producing(&mut t);
    assert!(
        t.reading_paused(),
        "Int{}: resume undid the handler's pause",
        N * 8
    );
    t.resume_reading();
    // The receiver's own pause, asked for by the handler, is undone by resuming.
    p.data_received(&frame::<N>(b"pause"), &mut t);
    assert!(t.reading_paused());
    p.resume_producing(&mut t);
    assert!(!t.reading_paused());
}

#[test]
fn the_engines_pause_and_resume_leave_a_handlers_own_pause_reading_alone() {
    handlers_own_pause_reading_survives_a_pause_resume_cycle::<1>();
    handlers_own_pause_reading_survives_a_pause_resume_cycle::<2>();
    handlers_own_pause_reading_survives_a_pause_resume_cycle::<4>();
}
