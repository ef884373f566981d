//! `LineReceiver` and `LineOnlyReceiver`: Twisted's `test_basic.py` cases, ported by
//! name (the Twisted name is in each test's comment), plus chunking invariance.

use weft::protocols::{
    LineControl, LineDecoder, LineEvent, LineHandler, LineOnlyControl, LineOnlyDecoder,
    LineOnlyHandler, LineOnlyReceiver, LineReceiver, DEFAULT_MAX_LINE_LENGTH,
};
use weft::testing::{feed_chunked, StringTransport};
use weft::Protocol;

/// Twisted's `LineTester`: acts on command lines (`len N`, `pause`, `rawpause`,
/// `stop`, an empty line switches to raw mode) and keeps what it received.
#[derive(Default)]
struct LineTester {
    received: Vec<Vec<u8>>,
    length: usize,
    max: usize,
}

impl LineHandler for LineTester {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        self.received.push(line.to_vec());
        match line {
            b"" => t.set_raw_mode(),
            b"pause" => t.pause_producing(),
            b"hold" => t.pause_reading(),
            b"rawpause" => {
                t.pause_producing();
                t.set_raw_mode();
                self.received.push(Vec::new());
            }
            b"stop" => t.stop_producing(),
            _ if line.starts_with(b"len ") => {
                self.length = std::str::from_utf8(&line[4..]).unwrap().parse().unwrap();
            }
            _ => {}
        }
    }

    fn raw_data_received(&mut self, data: &[u8], t: &mut LineControl<'_>) {
        let n = self.length.min(data.len());
        let (data, rest) = data.split_at(n);
        self.length -= n;
        self.received.last_mut().unwrap().extend_from_slice(data);
        if self.length == 0 {
            t.set_line_mode(rest);
        }
    }

    fn line_length_exceeded(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        if line.len() > self.max + 1 {
            t.set_line_mode(&line[self.max + 1..]);
        }
    }
}

fn tester() -> LineReceiver<LineTester> {
    LineReceiver::with_limits(
        LineTester {
            max: 64,
            ..LineTester::default()
        },
        b"\n",
        64,
    )
}

fn v(items: &[&[u8]]) -> Vec<Vec<u8>> {
    items.iter().map(|i| i.to_vec()).collect()
}

const BUFFER: &[u8] = b"len 10\n\n0123456789len 5\n\n1234\nlen 20\nfoo 123\n\n0123456789\n012345678len 0\nfoo 5\n\n1234567890123456789012345678901234567890123456789012345678901234567890\nlen 1\n\na";

#[test]
fn line_modes_and_limits_give_the_same_lines_for_every_packet_size() {
    // test_buffer
    let output = v(&[
        b"len 10",
        b"0123456789",
        b"len 5",
        b"1234\n",
        b"len 20",
        b"foo 123",
        b"0123456789\n012345678",
        b"len 0",
        b"foo 5",
        b"",
        b"67890",
        b"len 1",
        b"a",
    ]);
    for size in 1..10 {
        let mut t = StringTransport::new();
        let mut p = tester();
        p.connection_made(&mut t);
        feed_chunked(&mut p, &mut t, BUFFER, size);
        assert_eq!(p.handler().received, output, "packet size {size}");
    }
}

#[test]
fn pausing_holds_back_buffered_lines_until_resumed() {
    // test_pausing
    let buf = b"twiddle1\ntwiddle2\npause\ntwiddle3\n";
    for size in 1..10 {
        let mut t = StringTransport::new();
        let mut p = tester();
        p.connection_made(&mut t);
        feed_chunked(&mut p, &mut t, buf, size);
        assert_eq!(
            p.handler().received,
            v(&[b"twiddle1", b"twiddle2", b"pause"])
        );
        assert!(t.reading_paused());
        p.resume_producing(&mut t);
        assert!(!t.reading_paused());
        assert_eq!(
            p.handler().received,
            v(&[b"twiddle1", b"twiddle2", b"pause", b"twiddle3"])
        );
    }
}

#[test]
fn the_engines_pause_and_resume_leave_a_handlers_own_pause_reading_alone() {
    // Not in Twisted (its receivers have no separate read pause): a handler that
    // stopped reading itself (finger does while a lookup runs) must stay stopped
    // across a watermark pause/resume cycle, which only undoes its own pause.
    let mut t = StringTransport::new();
    let mut p = tester();
    p.connection_made(&mut t);
    p.data_received(b"hold\n", &mut t);
    assert!(t.reading_paused());
    p.pause_producing(&mut t);
    p.resume_producing(&mut t);
    assert!(
        t.reading_paused(),
        "resume_producing undid the handler's pause_reading"
    );
    // Without the handler's pause the cycle does pause and resume reading.
    t.resume_reading();
    p.pause_producing(&mut t);
    assert!(t.reading_paused());
    p.resume_producing(&mut t);
    assert!(!t.reading_paused());
}

#[test]
fn pausing_in_raw_mode_holds_back_raw_data_until_resumed() {
    // test_rawPausing
    let buf = b"twiddle1\ntwiddle2\nlen 5\nrawpause\n12345twiddle3\n";
    for size in 1..10 {
        let mut t = StringTransport::new();
        let mut p = tester();
        p.connection_made(&mut t);
        feed_chunked(&mut p, &mut t, buf, size);
        assert_eq!(
            p.handler().received,
            v(&[b"twiddle1", b"twiddle2", b"len 5", b"rawpause", b""])
        );
        p.resume_producing(&mut t);
        assert_eq!(
            p.handler().received,
            v(&[
                b"twiddle1",
                b"twiddle2",
                b"len 5",
                b"rawpause",
                b"12345",
                b"twiddle3"
            ])
        );
    }
}

#[test]
fn stop_producing_delivers_no_more_lines_and_closes() {
    // test_stopProducing
    let buf = b"twiddle1\ntwiddle2\nstop\nmore\nstuff\n";
    for size in 1..10 {
        let mut t = StringTransport::new();
        let mut p = tester();
        p.connection_made(&mut t);
        feed_chunked(&mut p, &mut t, buf, size);
        assert_eq!(
            p.handler().received,
            v(&[b"twiddle1", b"twiddle2", b"stop"])
        );
        assert!(t.disconnecting());
    }
}

#[derive(Default)]
struct Clearing {
    line: Vec<u8>,
    rest: Vec<u8>,
}

impl LineHandler for Clearing {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        self.line = line.to_vec();
        self.rest = t.clear_line_buffer().to_vec();
    }
}

#[test]
fn clear_line_buffer_returns_and_drops_what_follows_the_line() {
    // test_clearLineBuffer
    let mut t = StringTransport::new();
    let mut p = LineReceiver::new(Clearing::default());
    p.data_received(b"foo\r\nbar\r\nbaz", &mut t);
    assert_eq!(p.handler().line, b"foo");
    assert_eq!(p.handler().rest, b"bar\r\nbaz");
    p.data_received(b"quux\r\n", &mut t);
    assert_eq!(p.handler().line, b"quux");
    assert_eq!(p.handler().rest, b"");
}

#[derive(Default)]
struct Flipping {
    lines: Vec<u8>,
}

impl LineHandler for Flipping {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        self.lines.extend_from_slice(line);
        t.set_raw_mode();
    }
    fn raw_data_received(&mut self, data: &[u8], t: &mut LineControl<'_>) {
        t.set_line_mode(&data[1..]);
    }
}

#[test]
fn switching_modes_many_times_in_one_chunk_neither_recurses_nor_loses_data() {
    // test_stackRecursion
    let n = 20_000;
    let mut t = StringTransport::new();
    let mut p = LineReceiver::with_limits(Flipping::default(), b"\n", DEFAULT_MAX_LINE_LENGTH);
    p.data_received(&b"x\nx".repeat(n), &mut t);
    assert_eq!(p.handler().lines, vec![b'x'; n]);
}

struct Quiet;
impl LineHandler for Quiet {
    fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
}

#[test]
fn line_one_byte_over_limit_loses_connection() {
    // test_maximumLineLength
    let mut t = StringTransport::new();
    let mut p = LineReceiver::new(Quiet);
    let mut data = vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 1];
    data.extend_from_slice(b"\r\nr");
    p.data_received(&data, &mut t);
    assert!(t.disconnecting());
    assert_eq!(t.value(), b"", "the default closes silently");
}

#[test]
fn line_of_exactly_max_length_with_a_split_delimiter_is_accepted() {
    // test_maximumLineLengthPartialDelimiter
    let mut t = StringTransport::new();
    let mut p = LineReceiver::with_limits(
        LineTester {
            max: 4,
            ..LineTester::default()
        },
        b"\n",
        4,
    );
    p.connection_made(&mut t);
    p.data_received(b"xxx", &mut t);
    p.data_received(b"", &mut t);
    p.data_received(b"\nxxx", &mut t);
    assert!(!t.disconnecting());
    assert_eq!(p.handler().received, v(&[b"xxx"]));
    // And with CRLF split between packets, at exactly the limit.
    let mut t = StringTransport::new();
    let mut p = LineReceiver::with_limits(LineTester::default(), b"\r\n", 4);
    p.connection_made(&mut t);
    p.data_received(b"xxxx\r", &mut t);
    p.data_received(b"\nxxxx", &mut t);
    assert!(!t.disconnecting());
    assert_eq!(p.handler().received, v(&[b"xxxx"]));
}

#[test]
fn unfinished_line_of_max_length_plus_part_of_the_delimiter_is_kept() {
    // test_notQuiteMaximumLineLengthUnfinished
    let mut t = StringTransport::new();
    let mut p = LineReceiver::new(Quiet);
    let mut data = vec![b'x'; DEFAULT_MAX_LINE_LENGTH];
    data.push(b'\r');
    p.data_received(&data, &mut t);
    assert!(!t.disconnecting());
}

#[test]
fn unfinished_line_of_max_length_plus_delimiter_length_loses_connection() {
    // test_maximumLineLengthRemaining
    let mut t = StringTransport::new();
    let mut p = LineReceiver::new(Quiet);
    p.data_received(&vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 2], &mut t);
    assert!(t.disconnecting());
}

/// Twisted's `ExcessivelyLargeLineCatcher`: records over-long input, never closes.
#[derive(Default)]
struct Catcher {
    long: Vec<Vec<u8>>,
}
impl LineHandler for Catcher {
    fn line_received(&mut self, _: &[u8], _: &mut LineControl<'_>) {}
    fn line_length_exceeded(&mut self, line: &[u8], _: &mut LineControl<'_>) {
        self.long.push(line.to_vec());
    }
}

fn catch(data: &[u8]) -> Vec<Vec<u8>> {
    let mut t = StringTransport::new();
    let mut p = LineReceiver::with_limits(Catcher::default(), b"\r\n", 6);
    p.data_received(data, &mut t);
    p.handler().long.clone()
}

#[test]
fn long_unended_line_is_passed_whole_to_line_length_exceeded() {
    // test_longUnendedLine
    let x = vec![b'x'; 14];
    assert_eq!(catch(&x), [x]);
}

#[test]
fn long_line_after_a_short_one_passes_only_the_bytes_after_the_short_line() {
    // test_longLineAfterShortLine
    let x = vec![b'x'; 14];
    assert_eq!(catch(&[&b"x\r\n"[..], &x].concat()), [x]);
}

#[test]
fn long_line_with_a_later_delimiter_passes_the_whole_buffer() {
    // test_longLineWithDelimiter
    let x = [vec![b'x'; 14], vec![b'x'; 14]].join(&b"\r\n"[..]);
    assert_eq!(catch(&x), [x]);
}

#[test]
fn several_long_lines_pass_the_whole_buffer_once() {
    // test_multipleLongLines
    let x = [&[b'x'; 14][..], b"\r\n"].concat().repeat(2);
    assert_eq!(catch(&x), [x]);
}

/// Closes on the first line, like finger.
struct Finger {
    lines: Vec<Vec<u8>>,
}
impl LineHandler for Finger {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        self.lines.push(line.to_vec());
        t.send_line(b"No such user");
        t.lose_connection();
    }
}

#[test]
fn no_line_is_delivered_once_the_transport_is_disconnecting() {
    let mut t = StringTransport::new();
    let mut p = LineReceiver::new(Finger { lines: Vec::new() });
    p.data_received(b"moshez\r\nsecond\r\nthird\r\n", &mut t);
    assert_eq!(p.handler().lines, v(&[b"moshez"]));
    assert_eq!(t.value(), b"No such user\r\n");
}

/// Twisted's `ConsumingProtocol`: echoes a line, then pauses itself.
struct Consuming;
impl LineHandler for Consuming {
    fn line_received(&mut self, line: &[u8], t: &mut LineControl<'_>) {
        t.write(line);
        t.pause_producing();
    }
}

#[test]
fn pause_and_resume_deliver_one_waiting_line_per_resume() {
    // ProducerTests.test_pauseResume
    let mut t = StringTransport::new();
    let mut p = LineReceiver::new(Consuming);
    p.data_received(b"hello, ", &mut t);
    assert_eq!(t.value(), b"");
    assert!(!p.is_paused());
    p.data_received(b"world\r\n", &mut t);
    assert_eq!(t.value(), b"hello, world");
    assert!(p.is_paused() && t.reading_paused());
    p.resume_producing(&mut t);
    assert!(!p.is_paused() && !t.reading_paused());
    p.data_received(b"hello\r\nworld\r\n", &mut t);
    assert_eq!(t.value(), b"hello, worldhello");
    p.resume_producing(&mut t);
    assert_eq!(t.value(), b"hello, worldhelloworld");
    assert!(p.is_paused());
    p.data_received(b"goodbye\r\n", &mut t);
    assert_eq!(t.value(), b"hello, worldhelloworld");
    p.resume_producing(&mut t);
    assert_eq!(t.value(), b"hello, worldhelloworldgoodbye");
    assert!(p.is_paused());
    p.resume_producing(&mut t);
    assert!(!p.is_paused());
}

#[test]
fn send_line_appends_the_delimiter() {
    let mut t = StringTransport::new();
    let p = LineReceiver::with_limits(Quiet, b"\n", 10);
    p.send_line(b"abc", &mut t);
    assert_eq!(t.value(), b"abc\n");
}

#[test]
fn set_line_mode_from_outside_parses_the_extra_bytes_at_once() {
    let mut t = StringTransport::new();
    let mut p = tester();
    p.connection_made(&mut t);
    p.set_raw_mode();
    p.set_line_mode(b"a\nb\n", &mut t);
    assert_eq!(p.handler().received, v(&[b"a", b"b"]));
}

// LineOnlyReceiver

#[derive(Default)]
struct LineOnlyTester {
    received: Vec<Vec<u8>>,
}
impl LineOnlyHandler for LineOnlyTester {
    fn line_received(&mut self, line: &[u8], _: &mut LineOnlyControl<'_>) {
        self.received.push(line.to_vec());
    }
}

#[test]
fn line_only_receiver_delivers_lines_fed_one_byte_at_a_time() {
    // LineOnlyReceiverTests.test_buffer
    let buffer = b"foo\n    bleakness\n    desolation\n    plastic forks\n    ";
    let mut t = StringTransport::new();
    let mut p = LineOnlyReceiver::with_limits(LineOnlyTester::default(), b"\n", 64);
    feed_chunked(&mut p, &mut t, buffer, 1);
    let want: Vec<&[u8]> = buffer.split(|&b| b == b'\n').collect();
    assert_eq!(p.handler().received, v(&want[..want.len() - 1]));
}

#[test]
fn line_only_line_longer_than_limit_loses_connection() {
    // LineOnlyReceiverTests.test_greaterThanMaximumLineLength
    let mut t = StringTransport::new();
    let mut p = LineOnlyReceiver::with_limits(LineOnlyTester::default(), b"\n", 64);
    let mut data = vec![b'x'; 64 + 1 + 1];
    data.extend_from_slice(b"\r\nr");
    p.data_received(&data, &mut t);
    assert!(t.disconnecting());
}

#[test]
fn line_only_line_of_max_length_whose_crlf_is_split_is_rejected() {
    let mut t = StringTransport::new();
    let mut p = LineOnlyReceiver::with_limits(LineOnlyTester::default(), b"\r\n", 4);
    p.data_received(b"xxxx\r", &mut t);
    assert!(t.disconnecting());
    let mut t = StringTransport::new();
    let mut p = LineOnlyReceiver::with_limits(LineOnlyTester::default(), b"\r\n", 4);
    p.data_received(b"xxxx\r\n", &mut t);
    assert!(!t.disconnecting());
    assert_eq!(p.handler().received, v(&[b"xxxx"]));
}

#[test]
fn line_only_send_line_writes_line_and_delimiter() {
    let mut t = StringTransport::new();
    let p = LineOnlyReceiver::new(LineOnlyTester::default());
    p.send_line(b"hi", &mut t);
    assert_eq!(t.value(), b"hi\r\n");
}

// Chunking invariance for the decoders themselves.

fn decode_lines(chunks: &[&[u8]], delim: &[u8], max: usize) -> Vec<(u8, Vec<u8>)> {
    let mut d = LineDecoder::with_limits(delim, max);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c);
        while let Some(e) = d.next_event() {
            out.push(match e {
                LineEvent::Line(l) => (b'L', l.to_vec()),
                LineEvent::Raw(r) => (b'R', r.to_vec()),
                // The argument depends on chunking, as in Twisted, and so does what
                // follows (parsing resumes after whatever had arrived); that it
                // happens, and every event before it, do not.
                LineEvent::LengthExceeded(_) => {
                    out.push((b'X', Vec::new()));
                    return out;
                }
            });
        }
    }
    out
}

fn decode_line_only(chunks: &[&[u8]], delim: &[u8], max: usize) -> Vec<(u8, Vec<u8>)> {
    let mut d = LineOnlyDecoder::with_limits(delim, max);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c);
        while let Some(e) = d.next_event() {
            out.push(match e {
                LineEvent::Line(l) => (b'L', l.to_vec()),
                other => (b'X', format!("{other:?}").into_bytes()),
            });
        }
    }
    out
}

/// Checks `decode` gives the same events whole, one byte at a time and split in two at
/// every index.
fn assert_chunking_invariant(stream: &[u8], decode: impl Fn(&[&[u8]]) -> Vec<(u8, Vec<u8>)>) {
    let whole = decode(&[stream]);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode(&bytes), whole, "one byte at a time");
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(decode(&[a, b]), whole, "split at {i}");
    }
}

#[test]
fn line_decoder_events_do_not_depend_on_chunking() {
    let stream = b"GET / HTTP/1.0\r\nHost: x\r\n\r\nab\rc\nd\r\n\r\r\n\n";
    assert_chunking_invariant(stream, |c| decode_lines(c, b"\r\n", 16));
    assert_chunking_invariant(stream, |c| decode_lines(c, b"\r\n\r\n", 16));
    assert_chunking_invariant(b"aababaab-ab-aaab", |c| decode_lines(c, b"ab", 3));
    // Over-long lines trip whatever the chunking.
    assert_chunking_invariant(b"short\r\nthis one is too long\r\nok\r\n", |c| {
        decode_lines(c, b"\r\n", 8)
    });
}

#[test]
fn line_only_decoder_events_do_not_depend_on_chunking_below_the_limit() {
    // With lines well under the limit its rest check cannot trip, so the events are
    // chunking-invariant; at the limit they are not (see the test above).
    let stream = b"one\r\ntwo\r\n\r\nthree\rfour\nfive\r\n";
    assert_chunking_invariant(stream, |c| decode_line_only(c, b"\r\n", 64));
}

#[test]
fn line_receiver_with_modes_gives_the_same_lines_whole_and_split_everywhere() {
    let run = |chunks: &[&[u8]]| {
        let mut t = StringTransport::new();
        let mut p = tester();
        p.connection_made(&mut t);
        for c in chunks {
            p.data_received(c, &mut t);
        }
        p.handler().received.clone()
    };
    // No over-long line here: those make LineTester's output chunking-dependent.
    let stream = b"len 3\n\nabcline\nlen 0\nx\n\nlen 2\n\nxyz\n";
    let whole = run(&[stream]);
    assert_eq!(
        whole,
        v(&[b"len 3", b"abc", b"line", b"len 0", b"x", b"", b"len 2", b"xy", b"z"])
    );
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(run(&[a, b]), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run(&bytes), whole);
}

#[test]
fn decoder_holds_less_than_limit_plus_delimiter_after_draining() {
    let mut d = LineDecoder::with_limits(b"\r\n", 10);
    for b in b"0123456789\r".iter().chain(b"\n0123456789xyz".iter()) {
        d.feed(&[*b]);
        while d.next_event().is_some() {}
        assert!(d.buffered() < 12);
    }
}
