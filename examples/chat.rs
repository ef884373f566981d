//! The chat server on every core: `cargo run --example chat` then, in other
//! terminals, `nc 127.0.0.1 8123` (Twisted's chat howto port).
//!
//! Each shard's factory joins one `ChatMesh`; a line said on any core is broadcast
//! over the mesh and written by every shard to its own clients.

use weft::services::chat::{ChatFactory, ChatMesh};
use weft::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = Server::builder().handle_signals(true);
    let mesh = ChatMesh::new(builder.shard_count(), weft::mesh::DEFAULT_INBOX_CAPACITY);
    let server = builder
        .listen("tcp:8123:interface=127.0.0.1", move |shard| {
            ChatFactory::join(&mesh, shard)
        })
        .start()?;
    eprintln!(
        "chat on {:?} with {} shards; Ctrl-C stops",
        server.tcp_addr(),
        server.shards()
    );
    for summary in server.join()? {
        eprintln!("{summary}");
    }
    Ok(())
}
