//! `RejectReason`: why a connection's PROXY header was refused, in the few classes
//! the metrics page counts (the log line keeps the exact [`ProxyHeaderError`]).

use super::header::ProxyHeaderError;

/// Why a PROXY header was refused, as counted per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The stream does not start with a PROXY header (junk, or a client that
    /// reached the port directly).
    NotProxy,
    /// A header that breaks the grammar: v1 syntax, a v2 version or command
    /// other than 2 and LOCAL/PROXY.
    Malformed,
    /// A v2 address family or transport that is not served.
    Unsupported,
    /// A v2 LEN shorter than the addresses of its family.
    BadLength,
    /// A v1 header with no CRLF in time, or a v2 LEN over the cap.
    TooLong,
    /// No complete header within the header timeout.
    Timeout,
}

impl RejectReason {
    /// Every reason, in the order the metrics page lists them.
    pub const ALL: [RejectReason; 6] = [
        RejectReason::NotProxy,
        RejectReason::Malformed,
        RejectReason::Unsupported,
        RejectReason::BadLength,
        RejectReason::TooLong,
        RejectReason::Timeout,
    ];

    /// The `reason` label on the metrics page.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::NotProxy => "not_proxy",
            RejectReason::Malformed => "malformed",
            RejectReason::Unsupported => "unsupported",
            RejectReason::BadLength => "bad_length",
            RejectReason::TooLong => "too_long",
            RejectReason::Timeout => "timeout",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl From<&ProxyHeaderError> for RejectReason {
    fn from(e: &ProxyHeaderError) -> RejectReason {
        match e {
            ProxyHeaderError::NotProxy => RejectReason::NotProxy,
            ProxyHeaderError::V1Malformed(_)
            | ProxyHeaderError::V2BadVersion(_)
            | ProxyHeaderError::V2BadCommand(_) => RejectReason::Malformed,
            ProxyHeaderError::V2UnsupportedFamily(_) => RejectReason::Unsupported,
            ProxyHeaderError::V2BadLength { .. } => RejectReason::BadLength,
            ProxyHeaderError::V1TooLong | ProxyHeaderError::V2TooLong { .. } => {
                RejectReason::TooLong
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_class_and_every_class_a_distinct_label() {
        let cases = [
            (ProxyHeaderError::NotProxy, "not_proxy"),
            (ProxyHeaderError::V1TooLong, "too_long"),
            (ProxyHeaderError::V1Malformed("port"), "malformed"),
            (ProxyHeaderError::V2BadVersion(3), "malformed"),
            (ProxyHeaderError::V2BadCommand(7), "malformed"),
            (ProxyHeaderError::V2UnsupportedFamily(0x31), "unsupported"),
            (
                ProxyHeaderError::V2BadLength {
                    length: 4,
                    needed: 12,
                },
                "bad_length",
            ),
            (
                ProxyHeaderError::V2TooLong {
                    length: 9000,
                    limit: 4096,
                },
                "too_long",
            ),
        ];
        for (e, label) in cases {
            assert_eq!(RejectReason::from(&e).label(), label, "{e}");
        }
        let mut labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RejectReason::ALL.len());
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
