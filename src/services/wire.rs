//! The RFC "simple services" of `twisted.protocols.wire`: echo (RFC 862), discard
//! (863), chargen (864), qotd (865) and daytime (867).
//!
//! Each protocol is a unit-like struct with a factory built by [`SimpleFactory`].
//!
//! # Twisted
//! Twisted's `Daytime` raises `TypeError` on Python 3 and sends nothing; weft sends
//! the intended `asctime` line (in UTC) and closes, as the RFC asks.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::Address;
use crate::factory::Factory;
use crate::protocol::Protocol;
use crate::transport::Transport;

/// The default quote of Twisted's `wire.QOTD`.
pub const DEFAULT_QUOTE: &str = "An apple a day keeps the doctor away.";

/// The 71-byte pattern of Twisted's `wire.Chargen` (printable ASCII from `@`,
/// wrapping around).
pub const CHARGEN_PATTERN: &[u8; 71] =
    b"@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ !\"#$%&?";

/// A factory that builds a fresh protocol with a closure (Twisted's
/// `Factory.forProtocol`).
pub struct SimpleFactory<P, B: FnMut() -> P> {
    build: B,
}

impl<P, B: FnMut() -> P> SimpleFactory<P, B> {
    /// Creates a factory that calls `build` for every connection.
    pub fn new(build: B) -> Self {
        SimpleFactory { build }
    }
}

impl<P: Protocol, B: FnMut() -> P + 'static> Factory for SimpleFactory<P, B> {
    type Protocol = P;
    fn build_protocol(&mut self, _peer: &Address) -> Option<P> {
        Some((self.build)())
    }
}

/// Writes back every byte received (RFC 862). Half-closeable: when the peer shuts
/// down its side, everything echoed so far is still delivered before the close.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }

    fn half_closeable(&self) -> bool {
        true
    }
}

/// Ignores everything received (RFC 863).
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

/// Sends the chargen pattern for as long as the peer reads (RFC 864).
///
/// Twisted registers a pull producer that writes one pattern each time the buffer
/// empties; weft fills the buffer past the high watermark and refills when told to
/// resume, which keeps the socket busy with fewer wake-ups.
#[derive(Debug, Default, Clone, Copy)]
pub struct Chargen;

impl Chargen {
    fn fill(t: &mut Transport) {
        let target = t.output_limits().high_watermark;
        while t.buffered() <= target && t.connected() && !t.disconnecting() {
            t.write(CHARGEN_PATTERN);
        }
    }
}

impl Protocol for Chargen {
    fn connection_made(&mut self, t: &mut Transport) {
        Self::fill(t);
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}

    fn resume_producing(&mut self, t: &mut Transport) {
        Self::fill(t);
    }
}

/// Sends a quote and CRLF, then closes (RFC 865).
#[derive(Debug, Clone)]
pub struct Qotd {
    quote: std::rc::Rc<str>,
}

impl Qotd {
    /// Creates the protocol with `quote`.
    pub fn new(quote: std::rc::Rc<str>) -> Self {
        Qotd { quote }
    }
}

impl Protocol for Qotd {
    fn connection_made(&mut self, t: &mut Transport) {
        t.write_sequence([self.quote.as_bytes(), b"\r\n"]);
        t.lose_connection();
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

/// Sends the date and time as `asctime` text in UTC and CRLF, then closes (RFC 867).
#[derive(Debug, Default, Clone, Copy)]
pub struct Daytime;

impl Protocol for Daytime {
    fn connection_made(&mut self, t: &mut Transport) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        t.write(asctime(secs).as_bytes());
        t.write(b"\r\n");
        t.lose_connection();
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

/// Formats seconds since the Unix epoch as C's `asctime` in UTC, without the
/// newline: `Thu Jan  1 00:00:00 1970`.
pub fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::StringTransport;

    #[test]
    fn asctime_matches_c() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
        assert_eq!(asctime(1_795_392_000), "Mon Nov 23 00:00:00 2026");
    }

    #[test]
    fn qotd_writes_quote_then_closes() {
        let mut t = StringTransport::new();
        Qotd::new(DEFAULT_QUOTE.into()).connection_made(&mut t);
        assert_eq!(t.text(), "An apple a day keeps the doctor away.\r\n");
        assert!(t.disconnecting());
    }

    #[test]
    fn echo_echoes_every_chunking() {
        let data: Vec<u8> = (0..=255).collect();
        for size in 1..=data.len() {
            let mut t = StringTransport::new();
            crate::testing::feed_chunked(&mut Echo, &mut t, &data, size);
            assert_eq!(t.value(), data, "chunk size {size}");
        }
    }

    #[test]
    fn chargen_fills_past_the_watermark_and_refills_on_resume() {
        let mut t = StringTransport::new();
        let mut c = Chargen;
        c.connection_made(&mut t);
        let hw = t.output_limits().high_watermark;
        assert!(t.buffered() > hw);
        assert!(t.value().starts_with(CHARGEN_PATTERN));
        t.clear();
        c.resume_producing(&mut t);
        assert!(t.buffered() > hw);
    }

    #[test]
    fn daytime_sends_one_line_and_closes() {
        let mut t = StringTransport::new();
        Daytime.connection_made(&mut t);
        let text = t.text();
        assert!(text.ends_with("\r\n") && text.len() == 26, "{text:?}");
        assert!(t.disconnecting());
    }

    #[test]
    fn discard_writes_nothing() {
        let mut t = StringTransport::new();
        Discard.data_received(b"anything", &mut t);
        assert!(t.value().is_empty());
    }
}
