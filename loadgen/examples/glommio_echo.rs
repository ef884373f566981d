//! The plain glommio peer for `benches/peers/compare.sh`: glommio 0.9's `TcpStream` echo
//! on one executor pinned to one core.
//!
//! Settings as weft's engine uses them (see the design notes): `io_memory` 64 KiB (the
//! default 10 MiB is registered three times against the memlock limit), a 5 ms preempt
//! timer, a ring depth of 1024. Each connection reads into a 64 KiB buffer and writes it
//! back with `write_all`, `TCP_NODELAY` on.
//!
//! ```text
//! cargo run --release -p loadgen --example glommio_echo -- PORT [CORE]
//! ```

use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

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
            eprintln!("usage: glommio_echo PORT [CORE]");
            std::process::exit(2);
        }
    };
    let placement = match args.next().and_then(|c| c.parse::<usize>().ok()) {
        Some(core) => Placement::Fixed(core),
        None => Placement::Unbound,
    };
    let handle = LocalExecutorBuilder::new(placement)
        .name("glommio-echo")
        .io_memory(64 << 10)
        .ring_depth(1024)
        .preempt_timer(Duration::from_millis(5))
        .spawn(move || async move {
            let listener = match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("glommio_echo: cannot listen on 127.0.0.1:{port}: {e}");
                    std::process::exit(1);
                }
            };
            eprintln!("glommio_echo: listening on 127.0.0.1:{port}");
            loop {
                if let Ok(stream) = listener.accept().await {
                    glommio::spawn_local(serve(stream)).detach();
                }
            }
        });
    match handle {
        Ok(h) => {
            let _ = h.join();
        }
        Err(e) => {
            eprintln!("glommio_echo: cannot start the executor: {e}");
            std::process::exit(1);
        }
    }
}
