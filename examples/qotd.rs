//! The servers howto's QOTD: send a quote, then close. The quote lives in the
//! factory (`QOTDFactory(quote)`), which every connection's protocol reads.
//!
//! ```text
//! cargo run --example qotd -- [ENDPOINT [QUOTE]]     (default tcp:8007)
//! ```

use std::rc::Rc;

use weft::{Address, Factory, Protocol, Server, Transport};

/// One connection: writes the factory's quote and CRLF, then closes.
struct Qotd {
    quote: Rc<str>,
}

impl Protocol for Qotd {
    fn connection_made(&mut self, t: &mut Transport) {
        t.write_sequence([self.quote.as_bytes(), b"\r\n"]);
        t.lose_connection();
    }

    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

/// Twisted's `QOTDFactory(quote)`; one per shard, holding the quote.
struct QotdFactory {
    quote: Rc<str>,
}

impl Factory for QotdFactory {
    type Protocol = Qotd;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Qotd> {
        Some(Qotd {
            quote: Rc::clone(&self.quote),
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "tcp:8007".into());
    let quote = args
        .next()
        .unwrap_or_else(|| "An apple a day keeps the doctor away".into());
    let server = Server::builder()
        .handle_signals(true)
        .listen(&endpoint, move |_shard| QotdFactory {
            quote: Rc::from(quote.as_str()),
        })
        .start()?;
    for addr in server.addresses() {
        eprintln!("listening on {addr}");
    }
    server.join()?;
    Ok(())
}
