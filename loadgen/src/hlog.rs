//! The HdrHistogram interval log (`--hlog`): one response-time histogram per second.
//!
//! The format is HdrHistogram's own (readable by `HistogramLogProcessor` and by
//! `loadgen plot`): a header, then one line per interval with its start offset, length,
//! maximum and the V2-deflate, base64 histogram. Values are in nanoseconds; the header says
//! so in a comment. Intervals are written as they complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::clock::Nanos;
use crate::config::RunConfig;
use crate::stats::new_histogram;

/// Writes an interval log, line by line.
pub struct HlogWriter {
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
    buf: Vec<u8>,
}

impl HlogWriter {
    /// Creates `path` and writes the log's header.
    ///
    /// # Errors
    /// A message naming the file when it cannot be created or written.
    pub fn create(path: &Path, cfg: &RunConfig) -> Result<Self, String> {
        let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let mut out = BufWriter::new(File::create(path).map_err(err)?);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        write!(
            out,
            "#loadgen {} {} connections={} size={} rate={}\n\
             #values are response times in nanoseconds\n\
             #[StartTime: {now:.3} (seconds since epoch)]\n\
             #[BaseTime: {now:.3} (seconds since epoch)]\n\
             \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
            cfg.mode.name(),
            cfg.target,
            cfg.connections,
            cfg.size,
            cfg.rate.map(|r| r.to_string()).unwrap_or_else(|| "closed".into())
        )
        .map_err(err)?;
        Ok(HlogWriter {
            out,
            serializer: V2DeflateSerializer::new(),
            buf: Vec::new(),
        })
    }

    /// Appends one interval's histogram.
    ///
    /// # Errors
    /// A message when serialization or the write fails.
    pub fn write(&mut self, h: &Histogram<u64>, start: Nanos, end: Nanos) -> Result<(), String> {
        self.buf.clear();
        self.serializer
            .serialize(h, &mut self.buf)
            .map_err(|e| format!("cannot serialize a histogram: {e:?}"))?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.buf);
        writeln!(
            self.out,
            "{:.3},{:.3},{:.3},{}",
            start as f64 / 1e9,
            end.saturating_sub(start) as f64 / 1e9,
            h.max() as f64,
            encoded
        )
        .map_err(|e| format!("cannot write the interval log: {e}"))
    }

    /// Flushes the log.
    ///
    /// # Errors
    /// A message when the flush fails.
    pub fn finish(&mut self) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("cannot write the interval log: {e}"))
    }
}

/// Reads an interval log and returns the sum of all its histograms and the intervals'
/// start offsets.
///
/// # Errors
/// A message when the file cannot be read or a line does not parse.
pub fn read_total(path: &Path) -> Result<(Histogram<u64>, Vec<Duration>), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut total = new_histogram();
    let mut starts = Vec::new();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&data) {
        let entry =
            entry.map_err(|e| format!("{}: not an interval log ({e:?})", path.display()))?;
        if let LogEntry::Interval(iv) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .map_err(|e| format!("{}: bad base64 histogram: {e}", path.display()))?;
            let h: Histogram<u64> = de
                .deserialize(&mut raw.as_slice())
                .map_err(|e| format!("{}: bad histogram: {e:?}", path.display()))?;
            total
                .add(&h)
                .map_err(|e| format!("{}: cannot add histograms: {e:?}", path.display()))?;
            starts.push(iv.start_timestamp());
        }
    }
    Ok((total, starts))
}
