//! The tokio peer for `benches/peers/compare.sh`: the best straightforward echo server.
//!
//! A current-thread runtime pinned to one core; each connection reads into a 64 KiB
//! buffer and writes it back with `write_all`, `TCP_NODELAY` on.
//!
//! ```text
//! cargo run --release -p loadgen --example tokio_echo -- PORT [CORE]
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: tokio_echo PORT [CORE]");
            std::process::exit(2);
        }
    };
    if let Some(core) = args.next().and_then(|c| c.parse::<usize>().ok()) {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            eprintln!("tokio_echo: could not pin to core {core}");
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_echo: cannot build the runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokio_echo: cannot listen on 127.0.0.1:{port}: {e}");
                std::process::exit(1);
            }
        };
        eprintln!("tokio_echo: listening on 127.0.0.1:{port}");
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        }
    });
}
