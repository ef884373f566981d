//! Twisted's `echoserv.py`: write back everything received, on every core.
//!
//! ```text
//! cargo run --example echo -- [ENDPOINT]     (default tcp:8000)
//! ```
//!
//! Try it with `nc localhost 8000`. Ctrl-C (or SIGTERM) stops it gracefully.

use weft::{Address, Factory, Protocol, Server, Transport};

/// One connection: `dataReceived` writes the data back.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        t.write(data);
    }
}

/// One per shard: builds an `Echo` for every connection.
struct EchoFactory;

impl Factory for EchoFactory {
    type Protocol = Echo;
    fn build_protocol(&mut self, _peer: &Address) -> Option<Echo> {
        Some(Echo)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args().nth(1).unwrap_or_else(|| "tcp:8000".into());
    let server = Server::builder()
        .handle_signals(true)
        .listen(&endpoint, |_shard| EchoFactory)
        .start()?;
    for addr in server.addresses() {
        eprintln!("listening on {addr}");
    }
    server.join()?;
    Ok(())
}
