//! The echo client of Twisted's `echoclient.py`: send three lines, print every
//! line that comes back, hang up after `Bye-bye!`.
//!
//! ```text
//! cargo run --example echo_client -- [ENDPOINT]     (default tcp:localhost:8000)
//! ```
//!
//! Try it against `weft serve echo`. It exits 0 once the connection is lost and 1
//! if it cannot connect, as `task.react` does with the `done` Deferred.

use std::process::ExitCode;

use weft::client::{connect_protocol, react};
use weft::{Protocol, Transport};

const LINES: [&str; 3] = ["Hello, world!", "What a fine day it is.", "Bye-bye!"];

/// Sends the lines, then prints what comes back, one line at a time.
#[derive(Default)]
struct EchoClient {
    partial: Vec<u8>,
}

impl Protocol for EchoClient {
    fn connection_made(&mut self, t: &mut Transport) {
        for line in LINES {
            t.write_sequence([line.as_bytes(), b"\r\n"]);
        }
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            println!("receive: {line}");
            if line == "Bye-bye!" {
                t.lose_connection();
            }
        }
    }
}

fn main() -> ExitCode {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp:localhost:8000".into());
    let endpoint = match endpoint.parse() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("echo_client: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = react(move |reactor| async move {
        let connected = connect_protocol(&reactor, endpoint, EchoClient::default()).await?;
        connected.closed().await;
        Ok::<(), weft::client::ConnectError>(())
    });
    match outcome {
        Ok(Some(Ok(()))) => ExitCode::SUCCESS,
        Ok(Some(Err(e))) => {
            eprintln!("echo_client: connection failed: {e}");
            ExitCode::FAILURE
        }
        Ok(None) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}
