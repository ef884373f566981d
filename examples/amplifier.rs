//! A protocol that ignores `pause_producing`: it answers every read with 64 KiB and
//! keeps reading. What bounds the server's memory against peers that never read is
//! then the per-shard output budget, not backpressure (benchmarks.md, "slow readers").
//!
//! ```text
//! cargo run --release --example amplifier -- [ENDPOINT] [BUDGET_MIB]   (tcp:8000, 64)
//! ```

use bytes::Bytes;
use weft::services::wire::SimpleFactory;
use weft::{Backpressure, Protocol, Server, Transport};

static REPLY: [u8; 64 * 1024] = [b'a'; 64 * 1024];

/// Writes 64 KiB per read, whatever the peer does with it.
struct Amplifier;

impl Protocol for Amplifier {
    fn data_received(&mut self, _data: &[u8], t: &mut Transport) {
        t.write_bytes(Bytes::from_static(&REPLY));
    }

    fn backpressure(&self) -> Backpressure {
        Backpressure::KeepReading
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "tcp:8000".into());
    let budget: usize = args.next().map_or(Ok(64), |b| b.parse())?;
    let server = Server::builder()
        .handle_signals(true)
        .shard_output_budget(budget << 20)
        .listen(&endpoint, |_| SimpleFactory::new(|| Amplifier))
        .start()?;
    for addr in server.addresses() {
        eprintln!("listening on {addr} ({} shards)", server.shards());
    }
    for s in server.join()? {
        eprintln!("{s}");
    }
    Ok(())
}
