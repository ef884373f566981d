//! The greeter of Twisted's client howto (`connectProtocol`): connect, send
//! `MESSAGE Hello`, another message a second later, and hang up after two seconds.
//!
//! ```text
//! cargo run --example greeter -- [ENDPOINT]     (default tcp:localhost:1234)
//! ```

use std::process::ExitCode;
use std::time::Duration;

use weft::client::{connect_protocol, react};
use weft::{Protocol, Transport, TransportHandle};

/// Talks only; whatever the server says is ignored.
struct Greeter;

impl Protocol for Greeter {
    fn data_received(&mut self, _data: &[u8], _t: &mut Transport) {}
}

fn send_message(t: &TransportHandle, msg: &str) {
    t.write(format!("MESSAGE {msg}\n").as_bytes());
}

fn main() -> ExitCode {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp:localhost:1234".into());
    let endpoint = match endpoint.parse() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("greeter: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = react(move |reactor| async move {
        let greeter = connect_protocol(&reactor, endpoint, Greeter).await?;
        let t = greeter.transport().clone();
        send_message(&t, "Hello");
        let later = t.clone();
        reactor.call_later(Duration::from_secs(1), move || {
            send_message(&later, "This is sent in a second")
        });
        reactor.call_later(Duration::from_secs(2), move || t.lose_connection());
        greeter.closed().await;
        Ok::<(), weft::client::ConnectError>(())
    });
    match outcome {
        Ok(Some(Ok(()))) => ExitCode::SUCCESS,
        Ok(Some(Err(e))) => {
            eprintln!("greeter: connection failed: {e}");
            ExitCode::FAILURE
        }
        Ok(None) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("greeter: {e}");
            ExitCode::FAILURE
        }
    }
}
