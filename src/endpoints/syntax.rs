//! The grammar both sides share (Twisted's `_tokenize`/`_parse`), the errors, and
//! the escaping that prints a field back.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Why an endpoint string was rejected. The message names the bad field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string is empty.
    Empty,
    /// The first field names no known endpoint type.
    UnknownType(String),
    /// A required field is missing.
    MissingField {
        /// The endpoint type.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A field's value does not parse.
    BadValue {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A `key=value` field this endpoint type does not take.
    UnknownKey {
        /// The endpoint type.
        kind: &'static str,
        /// The key.
        key: String,
    },
    /// More positional fields than the type takes.
    TooManyFields {
        /// The endpoint type.
        kind: &'static str,
        /// The first extra field.
        extra: String,
    },
    /// The same field was given twice (positionally and by key, or twice by key).
    Duplicate(&'static str),
    /// The string ends in a lone `\`.
    TrailingEscape,
    /// A datagram endpoint given where a stream one is needed, or the reverse.
    WrongKind {
        /// The endpoint string.
        endpoint: String,
        /// What was needed.
        expected: &'static str,
    },
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Empty => f.write_str("empty endpoint string"),
            EndpointError::UnknownType(t) => {
                write!(
                    f,
                    "unknown endpoint type {t:?} (expected tcp, tcp6, unix, systemd, udp, udp6 or unixgram)"
                )
            }
            EndpointError::MissingField { kind, field } => {
                write!(f, "{kind} endpoint: missing field `{field}`")
            }
            EndpointError::BadValue {
                field,
                value,
                expected,
            } => write!(
                f,
                "bad value {value:?} for field `{field}`: expected {expected}"
            ),
            EndpointError::UnknownKey { kind, key } => {
                write!(f, "{kind} endpoint: unknown field `{key}`")
            }
            EndpointError::TooManyFields { kind, extra } => {
                write!(f, "{kind} endpoint: unexpected extra field {extra:?}")
            }
            EndpointError::Duplicate(field) => write!(f, "field `{field}` given twice"),
            EndpointError::TrailingEscape => f.write_str("endpoint string ends in a lone `\\`"),
            EndpointError::WrongKind { endpoint, expected } => {
                write!(f, "{endpoint:?} is not {expected}")
            }
        }
    }
}

impl std::error::Error for EndpointError {}

/// The fields of an endpoint string: positional ones, then `key=value` ones.
pub type Fields = (Vec<String>, Vec<(String, String)>);

/// Splits a description into positional fields and `key=value` fields, following
/// Twisted's tokenizer.
pub fn tokenize(desc: &str) -> Result<Fields, EndpointError> {
    let mut positional = Vec::new();
    let mut keyword = Vec::new();
    let mut cur = String::new();
    let mut key: Option<String> = None;
    let mut chars = desc.chars();
    let mut finish = |cur: &mut String, key: &mut Option<String>| match key.take() {
        Some(k) => keyword.push((k, std::mem::take(cur))),
        None => positional.push(std::mem::take(cur)),
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.push(chars.next().ok_or(EndpointError::TrailingEscape)?),
            ':' => finish(&mut cur, &mut key),
            '=' if key.is_none() => key = Some(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    finish(&mut cur, &mut key);
    Ok((positional, keyword))
}

/// Collects a type's fields: positional ones in `order`, then keyed ones.
pub(super) fn fields(
    kind: &'static str,
    order: &[&'static str],
    allowed: &[&'static str],
    positional: Vec<String>,
    keyword: Vec<(String, String)>,
) -> Result<BTreeMap<&'static str, String>, EndpointError> {
    let mut out = BTreeMap::new();
    let mut pos = positional.into_iter();
    for (name, value) in order.iter().zip(pos.by_ref()) {
        out.insert(*name, value);
    }
    if let Some(extra) = pos.next() {
        return Err(EndpointError::TooManyFields { kind, extra });
    }
    for (k, v) in keyword {
        let name = allowed
            .iter()
            .find(|a| **a == k)
            .ok_or(EndpointError::UnknownKey { kind, key: k })?;
        if out.insert(*name, v).is_some() {
            return Err(EndpointError::Duplicate(name));
        }
    }
    Ok(out)
}

pub(super) fn parse_num<T: FromStr>(
    field: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, EndpointError> {
    value.parse().map_err(|_| EndpointError::BadValue {
        field,
        value: value.to_string(),
        expected,
    })
}

/// Escapes `\\`, `:` and `=`, so a printed field parses back to itself.
pub(super) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace('=', "\\=")
}
