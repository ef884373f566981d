//! The servers howto's logging factory: `LoggingProtocol` appends every line it
//! receives to the factory's file, which `LogfileFactory` opens in `start_factory`
//! and closes in `stop_factory`. Nothing is sent back.
//!
//! ```text
//! cargo run --example logger -- [ENDPOINT [FILE]]     (default tcp:8000, weft.log)
//! ```
//!
//! weft runs one factory per core, so each shard opens the file itself. Each line is
//! written with one `write(2)` on an `O_APPEND` descriptor, which keeps lines from
//! different shards whole. (`weft serve logger --file PATH` also batches lines.)

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::rc::Rc;

use weft::protocols::{LineControl, LineHandler, LineReceiver};
use weft::{Address, Factory, Server};

struct LoggingProtocol {
    fp: Rc<RefCell<Option<File>>>,
}

impl LineHandler for LoggingProtocol {
    fn line_received(&mut self, line: &[u8], _t: &mut LineControl<'_>) {
        if let Some(fp) = self.fp.borrow_mut().as_mut() {
            let record = [line, b"\n"].concat();
            if let Err(e) = fp.write_all(&record) {
                eprintln!("logger: {e}");
            }
        }
    }
}

struct LogfileFactory {
    file_name: String,
    fp: Rc<RefCell<Option<File>>>,
}

impl Factory for LogfileFactory {
    type Protocol = LineReceiver<LoggingProtocol>;

    fn start_factory(&mut self) {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.file_name);
        *self.fp.borrow_mut() = Some(file.expect("open the log file"));
    }

    fn stop_factory(&mut self) {
        self.fp.borrow_mut().take(); // closes the file
    }

    fn build_protocol(&mut self, _peer: &Address) -> Option<Self::Protocol> {
        Some(LineReceiver::new(LoggingProtocol {
            fp: Rc::clone(&self.fp),
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "tcp:8000".into());
    let file_name = args.next().unwrap_or_else(|| "weft.log".into());
    let server = Server::builder()
        .handle_signals(true)
        .listen(&endpoint, move |_shard| LogfileFactory {
            file_name: file_name.clone(),
            fp: Rc::default(),
        })
        .start()?;
    for addr in server.addresses() {
        eprintln!("listening on {addr}");
    }
    server.join()?;
    Ok(())
}
