//! Decoder throughput by chunk size (16, 64, 256 and 1024 bytes, as Twisted's own line
//! benchmark), in bytes per second, for 64 KiB of 64-byte frames.
//!
//! ```text
//! cargo bench --bench decoders -- --measurement-time 2 --warm-up-time 1
//! ```
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use weft::protocols::{
    int_prefixed, netstring, IntNDecoder, LineControl, LineDecoder, LineHandler, LineOnlyDecoder,
    LineReceiver, NetstringDecoder,
};
use weft::testing::StringTransport;
use weft::Protocol;

const TOTAL: usize = 64 * 1024;
const FRAME: usize = 64;
const CHUNKS: [usize; 4] = [16, 64, 256, 1024];

/// 64 KiB of frames of exactly 64 bytes, framing included.
fn stream(frame: impl Fn(&[u8], &mut Vec<u8>), overhead: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..FRAME - overhead)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let mut out = Vec::with_capacity(TOTAL);
    while out.len() < TOTAL {
        frame(&payload, &mut out);
    }
    assert_eq!(out.len() % FRAME, 0);
    out
}

fn lines() -> Vec<u8> {
    stream(
        |p, out| {
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        },
        2,
    )
}

/// Benchmarks `decode` (which feeds one chunk and drains its events, returning how
/// many) over `data` at every chunk size.
fn bench<D>(
    c: &mut Criterion,
    name: &str,
    data: &[u8],
    mut make: impl FnMut() -> D,
    decode: fn(&mut D, &[u8]) -> usize,
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(data.len() as u64));
    for size in CHUNKS {
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let mut d = make();
            b.iter(|| {
                let mut n = 0;
                for chunk in data.chunks(size) {
                    n += decode(&mut d, chunk);
                }
                assert_eq!(n, data.len() / FRAME);
                black_box(n)
            })
        });
    }
    g.finish();
}

fn line_decoder(c: &mut Criterion) {
    bench(c, "line", &lines(), LineDecoder::new, |d, chunk| {
        d.feed(chunk);
        let mut n = 0;
        while let Some(e) = d.next_event() {
            black_box(e);
            n += 1;
        }
        n
    });
}

fn line_only_decoder(c: &mut Criterion) {
    bench(
        c,
        "line_only",
        &lines(),
        LineOnlyDecoder::new,
        |d, chunk| {
            d.feed(chunk);
            let mut n = 0;
            while let Some(e) = d.next_event() {
                black_box(e);
                n += 1;
            }
            n
        },
    );
}

fn netstring_decoder(c: &mut Criterion) {
    let data = stream(netstring::encode, 4);
    bench(c, "netstring", &data, NetstringDecoder::new, |d, chunk| {
        d.feed(chunk);
        let mut n = 0;
        while let Some(e) = d.next_event() {
            black_box(e.is_ok());
            n += 1;
        }
        n
    });
}

fn int_decoders(c: &mut Criterion) {
    fn decode<const N: usize>(d: &mut IntNDecoder<N>, chunk: &[u8]) -> usize {
        d.feed(chunk);
        let mut n = 0;
        while let Some(e) = d.next_event() {
            black_box(e);
            n += 1;
        }
        n
    }
    let enc1 = |p: &[u8], o: &mut Vec<u8>| int_prefixed::encode::<1>(p, o).unwrap();
    let enc2 = |p: &[u8], o: &mut Vec<u8>| int_prefixed::encode::<2>(p, o).unwrap();
    let enc4 = |p: &[u8], o: &mut Vec<u8>| int_prefixed::encode::<4>(p, o).unwrap();
    bench(
        c,
        "int8",
        &stream(enc1, 1),
        IntNDecoder::<1>::new,
        decode::<1>,
    );
    bench(
        c,
        "int16",
        &stream(enc2, 2),
        IntNDecoder::<2>::new,
        decode::<2>,
    );
    bench(
        c,
        "int32",
        &stream(enc4, 4),
        IntNDecoder::<4>::new,
        decode::<4>,
    );
}

/// Counts lines: the receiver's cost on top of the decoder's.
struct Count(usize);
impl LineHandler for Count {
    fn line_received(&mut self, line: &[u8], _: &mut LineControl<'_>) {
        black_box(line);
        self.0 += 1;
    }
}

fn line_receiver(c: &mut Criterion) {
    let make = || (LineReceiver::new(Count(0)), StringTransport::new());
    bench(c, "line_receiver", &lines(), make, |(p, t), chunk| {
        let before = p.handler().0;
        p.data_received(chunk, t);
        p.handler().0 - before
    });
}

criterion_group!(
    benches,
    line_decoder,
    line_only_decoder,
    netstring_decoder,
    int_decoders,
    line_receiver
);
criterion_main!(benches);
