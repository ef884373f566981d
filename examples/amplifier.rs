//! A protocol that ignores `pause_producing`: it answers every read with 64 KiB and
//! keeps reading. What bounds the server's memory against peers that never read is
//! then the per-shard output budget, not backpressure (benchmarks.md, "slow readers").
//!
//! ```text
//! cargo run --release --example amplifier -- [ENDPOINT] [BUDGET_MIB]   (tcp:8000, 64)
//! ```

use weft::services::wire::SimpleFactory;
use weft::{Backpressure, Protocol, Server, Transport};

static REPLY: [u8; 64 * 1024] = [b'a'; 64 * 1024];

/// Writes 64 KiB per read, whatever the peer does with it.
struct Amplifier;

impl Protocol for Amplifier {
    fn data_received(&mut self, _data: &[u8], t: &mut Transport) {
        // A copy, so that what is held for a peer is real memory.
        t.write(&REPLY);
    }

    fn backpressure(&self) -> Backpressure {
        Backpressure::KeepReading
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
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
