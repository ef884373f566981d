//! RESP (the Redis serialization protocol, version 2): a sans-IO [`RespDecoder`] for
//! replies and pushes, and [`encode_command`] for requests.
//!
//! ```text
//!   +OK\r\n            Simple("OK")          -ERR x\r\n   Error("ERR x")
//!   :42\r\n            Integer(42)           $3\r\nabc\r\n Bulk("abc")  $-1\r\n Nil
//!   *2\r\n$1\r\na\r\n:1\r\n   Array([Bulk("a"), Integer(1)])    *-1\r\n Nil
//! ```
//!
//! The decoder is fed bytes in chunks of any size and answers with whole values
//! only. It parses from the start of its buffer each time a value is asked for, so
//! an incomplete value costs a rescan of its headers (bulk payloads are skipped by
//! length, not scanned); a Redis client's replies are small and this keeps the
//! state machine trivial.
//!
//! # Security
//! A server is trusted less than it could be: a line (simple string, error,
//! integer, a length) is at most [`MAX_RESP_LINE`] bytes, a bulk string at most
//! `max_bulk` ([`DEFAULT_MAX_BULK_LENGTH`]), an array at most [`MAX_RESP_ELEMENTS`]
//! elements and [`MAX_RESP_DEPTH`] levels deep. Past any of them the stream is
//! refused: the caller closes the connection.

use std::fmt;

use bytes::Bytes;

/// The longest bulk string accepted by default (1 MiB; Redis allows 512 MiB).
pub const DEFAULT_MAX_BULK_LENGTH: usize = 1024 * 1024;

/// The longest line (simple string, error, integer or length) accepted.
pub const MAX_RESP_LINE: usize = 64 * 1024;

/// The most elements one array may announce.
pub const MAX_RESP_ELEMENTS: usize = 1024 * 1024;

/// The deepest nesting of arrays accepted.
pub const MAX_RESP_DEPTH: usize = 16;

/// One RESP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+…`: a status such as `OK`.
    Simple(Bytes),
    /// `-…`: an error reply, as its text.
    Error(Bytes),
    /// `:…`: a signed integer.
    Integer(i64),
    /// `$…`: a binary-safe string.
    Bulk(Bytes),
    /// `*…`: an array.
    Array(Vec<RespValue>),
    /// `$-1` or `*-1`: the null bulk string or array.
    Nil,
}

impl RespValue {
    /// Returns the bytes of a simple or bulk string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            RespValue::Simple(b) | RespValue::Bulk(b) => Some(b),
            _ => None,
        }
    }
}

/// Why a RESP stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RespError {
    /// A value starts with a byte that is not `+ - : $ *`.
    UnknownType(u8),
    /// A length or integer that is not a decimal number.
    BadNumber,
    /// A line without CRLF within [`MAX_RESP_LINE`] bytes.
    LineTooLong,
    /// A bulk string not followed by CRLF.
    MissingCrlf,
    /// A bulk string longer than the decoder's limit.
    BulkTooLong {
        /// The announced length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// An array with too many elements, or nested too deep.
    ArrayTooLarge,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::UnknownType(b) => write!(f, "RESP value of unknown type byte 0x{b:02x}"),
            RespError::BadNumber => f.write_str("RESP length or integer is not a number"),
            RespError::LineTooLong => write!(f, "RESP line longer than {MAX_RESP_LINE} bytes"),
            RespError::MissingCrlf => f.write_str("RESP bulk string not followed by CRLF"),
            RespError::BulkTooLong { length, limit } => {
                write!(
                    f,
                    "RESP bulk string of {length} bytes is over the limit of {limit}"
                )
            }
            RespError::ArrayTooLarge => f.write_str("RESP array too large or nested too deep"),
        }
    }
}

impl std::error::Error for RespError {}

/// Decodes RESP values from a stream fed in chunks.
///
/// # Examples
/// ```
/// use weft::protocols::resp::{RespDecoder, RespValue};
/// let mut d = RespDecoder::new();
/// d.feed(b"*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$2\r\nhi\r\n:1");
/// let v = d.next_event().unwrap().unwrap();
/// assert!(matches!(v, RespValue::Array(ref a) if a.len() == 3));
/// assert_eq!(d.next_event(), Ok(None));
/// ```
#[derive(Debug)]
pub struct RespDecoder {
    buf: Vec<u8>,
    max_bulk: usize,
    failed: Option<RespError>,
}

impl Default for RespDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RespDecoder {
    /// Creates a decoder with the default bulk limit.
    pub fn new() -> RespDecoder {
        Self::with_max_bulk(DEFAULT_MAX_BULK_LENGTH)
    }

    /// Creates a decoder that refuses bulk strings longer than `max_bulk`.
    pub fn with_max_bulk(max_bulk: usize) -> RespDecoder {
        RespDecoder {
            buf: Vec::new(),
            max_bulk,
            failed: None,
        }
    }

    /// Appends bytes read from the stream (ignored after an error).
    pub fn feed(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Returns the bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next whole value, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// A [`RespError`] once the stream breaks a rule; the decoder then stays failed.
    pub fn next_event(&mut self) -> Result<Option<RespValue>, RespError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match parse(&self.buf, 0, self.max_bulk, 0) {
            Ok(Some((value, used))) => {
                self.buf.drain(..used);
                Ok(Some(value))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                Err(e)
            }
        }
    }
}

type Parsed = Result<Option<(RespValue, usize)>, RespError>;

/// Parses one value at `at`; returns it and the offset after it.
fn parse(b: &[u8], at: usize, max_bulk: usize, depth: usize) -> Parsed {
    let Some(&kind) = b.get(at) else {
        return Ok(None);
    };
    let Some((line, next)) = line(b, at + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((
            RespValue::Simple(Bytes::copy_from_slice(line)),
            next,
        ))),
        b'-' => Ok(Some((RespValue::Error(Bytes::copy_from_slice(line)), next))),
        b':' => Ok(Some((RespValue::Integer(number(line)?), next))),
        b'$' => {
            let n = number(line)?;
            if n == -1 {
                return Ok(Some((RespValue::Nil, next)));
            }
            let len = usize::try_from(n).map_err(|_| RespError::BadNumber)?;
            if len > max_bulk {
                return Err(RespError::BulkTooLong {
                    length: len,
                    limit: max_bulk,
                });
            }
            if b.len() < next + len + 2 {
                return Ok(None);
            }
            if &b[next + len..next + len + 2] != b"\r\n" {
                return Err(RespError::MissingCrlf);
            }
            let value = Bytes::copy_from_slice(&b[next..next + len]);
            Ok(Some((RespValue::Bulk(value), next + len + 2)))
        }
        b'*' => {
            let n = number(line)?;
            if n == -1 {
                return Ok(Some((RespValue::Nil, next)));
            }
            let count = usize::try_from(n).map_err(|_| RespError::BadNumber)?;
            if count > MAX_RESP_ELEMENTS || depth >= MAX_RESP_DEPTH {
                return Err(RespError::ArrayTooLarge);
            }
            // Do not trust the count for the allocation: grow as elements arrive.
            let mut items = Vec::with_capacity(count.min(16));
            let mut pos = next;
            for _ in 0..count {
                match parse(b, pos, max_bulk, depth + 1)? {
                    Some((v, after)) => {
                        items.push(v);
                        pos = after;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((RespValue::Array(items), pos)))
        }
        other => Err(RespError::UnknownType(other)),
    }
}

/// The CRLF-terminated line starting at `at`: its bytes and the offset after CRLF.
fn line(b: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = &b[at.min(b.len())..];
    let window = &rest[..rest.len().min(MAX_RESP_LINE + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&rest[..end], at + end + 2))),
        None if rest.len() >= MAX_RESP_LINE + 2 => Err(RespError::LineTooLong),
        None => Ok(None),
    }
}

fn number(line: &[u8]) -> Result<i64, RespError> {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RespError::BadNumber);
    }
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::BadNumber)
}

/// Encodes a command as Redis expects it: an array of bulk strings.
///
/// # Examples
/// ```
/// let c = weft::protocols::resp::encode_command(&[b"PUBLISH", b"room", b"hi"]);
/// assert_eq!(c, b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$2\r\nhi\r\n");
/// ```
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let len = args.iter().map(|a| a.len() + 16).sum::<usize>() + 16;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> RespValue {
        RespValue::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn all(d: &mut RespDecoder) -> Result<Vec<RespValue>, RespError> {
        let mut v = Vec::new();
        while let Some(x) = d.next_event()? {
            v.push(x);
        }
        Ok(v)
    }

    const STREAM: &[u8] =
        b"+OK\r\n-ERR unknown command\r\n:-42\r\n$5\r\nhe\r\no\r\n$0\r\n\r\n$-1\r\n*-1\r\n\
*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n*2\r\n*1\r\n:1\r\n*0\r\n";

    fn expected() -> Vec<RespValue> {
        vec![
            RespValue::Simple(Bytes::from_static(b"OK")),
            RespValue::Error(Bytes::from_static(b"ERR unknown command")),
            RespValue::Integer(-42),
            bulk("he\r\no"),
            bulk(""),
            RespValue::Nil,
            RespValue::Nil,
            RespValue::Array(vec![bulk("subscribe"), bulk("room"), RespValue::Integer(1)]),
            RespValue::Array(vec![
                RespValue::Array(vec![RespValue::Integer(1)]),
                RespValue::Array(vec![]),
            ]),
        ]
    }

    #[test]
    fn every_type_decodes_whole() {
        let mut d = RespDecoder::new();
        d.feed(STREAM);
        assert_eq!(all(&mut d).unwrap(), expected());
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn split_at_every_index_decodes_the_same() {
        for i in 0..=STREAM.len() {
            let mut d = RespDecoder::new();
            d.feed(&STREAM[..i]);
            let mut got = all(&mut d).unwrap();
            d.feed(&STREAM[i..]);
            got.extend(all(&mut d).unwrap());
            assert_eq!(got, expected(), "split at {i}");
        }
    }

    #[test]
    fn one_byte_at_a_time_decodes_the_same() {
        let mut d = RespDecoder::new();
        let mut got = Vec::new();
        for b in STREAM {
            d.feed(std::slice::from_ref(b));
            got.extend(all(&mut d).unwrap());
        }
        assert_eq!(got, expected());
    }

    #[test]
    fn encoded_commands_decode_back_to_their_arguments() {
        let args: [&[u8]; 3] = [b"PUBLISH", b"room", b"tag line\r\nwith crlf"];
        let mut d = RespDecoder::new();
        d.feed(&encode_command(&args));
        let want = RespValue::Array(
            args.iter()
                .map(|a| RespValue::Bulk(Bytes::copy_from_slice(a)))
                .collect(),
        );
        assert_eq!(d.next_event(), Ok(Some(want)));
    }

    #[test]
    fn an_unknown_type_byte_is_refused_and_the_decoder_stays_failed() {
        let mut d = RespDecoder::new();
        d.feed(b"?what\r\n");
        assert_eq!(d.next_event(), Err(RespError::UnknownType(b'?')));
        d.feed(b"+OK\r\n");
        assert_eq!(d.next_event(), Err(RespError::UnknownType(b'?')));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn bad_numbers_are_refused() {
        for bad in [
            &b":12a\r\n"[..],
            b"$-2\r\n",
            b"$\r\n",
            b"*+1\r\n",
            b":99999999999999999999\r\n",
        ] {
            let mut d = RespDecoder::new();
            d.feed(bad);
            assert_eq!(d.next_event(), Err(RespError::BadNumber), "{bad:?}");
        }
    }

    #[test]
    fn a_bulk_string_over_the_limit_is_refused_before_its_payload_arrives() {
        let mut d = RespDecoder::with_max_bulk(10);
        d.feed(b"$11\r\n");
        assert_eq!(
            d.next_event(),
            Err(RespError::BulkTooLong {
                length: 11,
                limit: 10
            })
        );
        let mut d = RespDecoder::with_max_bulk(10);
        d.feed(b"$10\r\n0123456789\r\n");
        assert_eq!(d.next_event(), Ok(Some(bulk("0123456789"))));
    }

    #[test]
    fn a_bulk_string_without_its_crlf_is_refused() {
        let mut d = RespDecoder::new();
        d.feed(b"$2\r\nabXY");
        assert_eq!(d.next_event(), Err(RespError::MissingCrlf));
    }

    #[test]
    fn an_endless_line_is_refused_at_the_limit() {
        let mut d = RespDecoder::new();
        d.feed(b"+");
        d.feed(&vec![b'a'; MAX_RESP_LINE]);
        assert_eq!(d.next_event(), Ok(None));
        d.feed(b"aa");
        assert_eq!(d.next_event(), Err(RespError::LineTooLong));
    }

    #[test]
    fn arrays_too_deep_or_too_long_are_refused() {
        let mut d = RespDecoder::new();
        d.feed(&b"*1\r\n".repeat(MAX_RESP_DEPTH + 1));
        assert_eq!(d.next_event(), Err(RespError::ArrayTooLarge));
        let mut d = RespDecoder::new();
        d.feed(format!("*{}\r\n", MAX_RESP_ELEMENTS + 1).as_bytes());
        assert_eq!(d.next_event(), Err(RespError::ArrayTooLarge));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let mut d = RespDecoder::with_max_bulk(64);
            for _ in 0..20 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b"+-:$*\r\n0123456789-ab";
                let chunk: Vec<u8> = (0..(x % 8))
                    .map(|i| alphabet[((x >> (i * 5)) % alphabet.len() as u64) as usize])
                    .collect();
                d.feed(&chunk);
                if d.next_event().is_err() {
                    break;
                }
            }
        }
    }
}
