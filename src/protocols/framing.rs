//! The framings weft's framed echo and `loadgen` speak, and how to encode a payload in each.
//!
//! This is the sending side only ([`Framing::encode`]); the receiving side is the
//! decoders in the sibling modules.

use std::fmt;
use std::str::FromStr;

/// The framings weft's framed echo and `loadgen` speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No framing: bytes are echoed as they come.
    Raw,
    /// Lines ended by a delimiter (CRLF by default), LineReceiver rules.
    Line,
    /// Lines ended by a delimiter, LineOnlyReceiver rules.
    LineOnly,
    /// Netstrings: `LEN:payload,`.
    Netstring,
    /// One-byte big-endian length prefix.
    Int8,
    /// Two-byte big-endian length prefix.
    Int16,
    /// Four-byte big-endian length prefix.
    Int32,
}

/// A payload that cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The payload does not fit the length prefix (Twisted's `StringTooLongError`).
    TooLong {
        /// The payload's length.
        len: usize,
        /// The largest length the prefix can carry.
        max: usize,
    },
    /// A line payload contains the delimiter.
    ContainsDelimiter,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes does not fit a prefix of at most {max}"
                )
            }
            FrameError::ContainsDelimiter => f.write_str("line payload contains the delimiter"),
        }
    }
}

impl std::error::Error for FrameError {}

impl Framing {
    /// Appends `payload` framed this way to `out`, with `delimiter` for line framings.
    ///
    /// # Errors
    /// [`FrameError::TooLong`] when the payload does not fit the prefix;
    /// [`FrameError::ContainsDelimiter`] for a line that holds the delimiter.
    pub fn encode(
        self,
        payload: &[u8],
        delimiter: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        let prefixed = |out: &mut Vec<u8>, width: usize| {
            let max = if width == 4 {
                u32::MAX as usize
            } else {
                (1usize << (8 * width)) - 1
            };
            if payload.len() > max {
                return Err(FrameError::TooLong {
                    len: payload.len(),
                    max,
                });
            }
            let be = (payload.len() as u64).to_be_bytes();
            out.extend_from_slice(&be[8 - width..]);
            out.extend_from_slice(payload);
            Ok(())
        };
        match self {
            Framing::Raw => {
                out.extend_from_slice(payload);
                Ok(())
            }
            Framing::Line | Framing::LineOnly => {
                if !delimiter.is_empty() && payload.windows(delimiter.len()).any(|w| w == delimiter)
                {
                    return Err(FrameError::ContainsDelimiter);
                }
                out.extend_from_slice(payload);
                out.extend_from_slice(delimiter);
                Ok(())
            }
            Framing::Netstring => {
                out.extend_from_slice(payload.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(payload);
                out.push(b',');
                Ok(())
            }
            Framing::Int8 => prefixed(out, 1),
            Framing::Int16 => prefixed(out, 2),
            Framing::Int32 => prefixed(out, 4),
        }
    }
}

impl FromStr for Framing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "raw" => Framing::Raw,
            "line" => Framing::Line,
            "lineonly" => Framing::LineOnly,
            "netstring" => Framing::Netstring,
            "int8" => Framing::Int8,
            "int16" => Framing::Int16,
            "int32" => Framing::Int32,
            other => {
                return Err(format!(
                    "unknown framing {other:?} (expected raw, line, lineonly, netstring, int8, int16 or int32)"
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_each_framing() {
        let enc = |f: Framing, p: &[u8]| {
            let mut v = Vec::new();
            f.encode(p, b"\r\n", &mut v).map(|_| v)
        };
        assert_eq!(enc(Framing::Line, b"ab").unwrap(), b"ab\r\n");
        assert_eq!(enc(Framing::Netstring, b"abc").unwrap(), b"3:abc,");
        assert_eq!(enc(Framing::Netstring, b"").unwrap(), b"0:,");
        assert_eq!(enc(Framing::Int16, b"ab").unwrap(), b"\x00\x02ab");
        assert_eq!(enc(Framing::Int32, b"a").unwrap(), b"\x00\x00\x00\x01a");
        assert_eq!(
            enc(Framing::Int8, &[0; 256]),
            Err(FrameError::TooLong { len: 256, max: 255 })
        );
        assert_eq!(
            enc(Framing::Line, b"a\r\nb"),
            Err(FrameError::ContainsDelimiter)
        );
    }
}
