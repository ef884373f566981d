//! The tokio UDP peer for `benches/peers/udp_compare.sh`: the straightforward UDP
//! echo server.
//!
//! One thread per core given, each pinned, with its own current-thread runtime and
//! its own socket bound with `SO_REUSEPORT` to the same port (weft's layout), each
//! running a `recv_from` / `send_to` loop.
//!
//! ```text
//! cargo run --release -p loadgen --example tokio_udp_echo -- PORT [CORE ...]
//! ```

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

fn bind(port: u16) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn serve(sock: std::net::UdpSocket, core: Option<usize>) {
    if let Some(core) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            eprintln!("tokio_udp_echo: could not pin to core {core}");
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tokio_udp_echo: cannot build the runtime: {e}");
            std::process::exit(1);
        });
    rt.block_on(async move {
        let sock = UdpSocket::from_std(sock).unwrap_or_else(|e| {
            eprintln!("tokio_udp_echo: {e}");
            std::process::exit(1);
        });
        let mut buf = vec![0u8; 65_536];
        loop {
            if let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let _ = sock.send_to(&buf[..n], from).await;
            }
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(port) = args.next().and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: tokio_udp_echo PORT [CORE ...]");
        std::process::exit(2);
    };
    let cores: Vec<usize> = args.filter_map(|c| c.parse().ok()).collect();
    let plan: Vec<Option<usize>> = if cores.is_empty() {
        vec![None]
    } else {
        cores.into_iter().map(Some).collect()
    };
    let mut threads = Vec::new();
    for core in plan {
        let sock = bind(port).unwrap_or_else(|e| {
            eprintln!("tokio_udp_echo: cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        });
        threads.push(std::thread::spawn(move || serve(sock, core)));
    }
    eprintln!("tokio_udp_echo: listening on udp:127.0.0.1:{port}");
    for t in threads {
        let _ = t.join();
    }
}
