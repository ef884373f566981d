//! loadgen: weft's benchmark harness, built to be more honest than the load generators it
//! replaces.
//!
//! ```text
//!   cli ─► config ─► runner ─┬─► thread 0: epoll loop (echo | connect | chat) ─┐
//!                            ├─► thread 1: ...                                 ├─► runner
//!                            └─► ... (started together at a barrier)           ┘   merges
//!        live line/s ◄── interval reports (a histogram per thread per second)      by adding
//!        final report, --json, --hlog, --plot ◄── merged histograms               histograms
//! ```
//!
//! What "honest" means here:
//!
//! - **Coordinated omission is not omitted.** With `--rate`, each request has an intended
//!   send time computed from the schedule ([`schedule`]); its response time runs from that
//!   instant. Requests that cannot go out on time wait in a queue and are counted.
//! - **Three times per request**: response (intended → done), service (sent → done) and
//!   the generator's own lag (intended → sent), each in its own HdrHistogram ([`stats`]).
//! - **Histograms are added, never averaged**, and never clamped.
//! - **Every echoed byte is checked** against what was sent ([`payload`]); a mismatch is
//!   an error and the exit status says so.
//! - **The generator watches itself**: its CPU time per request and utilisation are
//!   reported ([`cpu`]), with a warning when it, not the server, may be the bottleneck.
//! - **It is cheap**: one epoll loop per thread over non-blocking sockets ([`poller`],
//!   [`socket`]), one `recv` and one `send` per connection per wake-up, no allocation per
//!   request.
//!
//! It speaks TLS (`--tls`, echo and connect, on rustls) but not HTTP, nor anything but
//! the framings of `weft::protocols::Framing`.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod cpu;
pub mod echo;
pub mod hlog;
pub mod json;
pub mod payload;
pub mod plot;
pub mod poller;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod socket;
pub mod stats;
pub mod tls;
pub mod udp;
pub mod worker;

use config::Command;

/// Runs the command line `args` (without the program name) and returns the exit status:
/// 0 for a run without errors, 1 for a run with errors or a failed command, 2 for bad usage.
pub fn main_with_args(args: &[String]) -> i32 {
    let cmd = match cli::parse(args) {
        Ok(c) => c,
        Err(cli::Usage::Info(text)) => {
            print!("{text}");
            return 0;
        }
        Err(cli::Usage::Error(text)) => {
            eprint!("{text}");
            return 2;
        }
    };
    match cmd {
        Command::Plot(p) => match plot::plot_files(&p) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("loadgen: {e}");
                1
            }
        },
        Command::Run(cfg) => {
            let outcome = match runner::run(*cfg) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    return 1;
                }
            };
            print!("{}", report::final_report(&outcome));
            let mut status = i32::from(outcome.counts.error_count() > 0);
            if let Some(path) = &outcome.cfg.json {
                if let Err(e) = json::write(&outcome, path) {
                    eprintln!("loadgen: {e}");
                    status = 1;
                }
            }
            if let Some(path) = &outcome.cfg.plot {
                let label = format!("{} {}", outcome.cfg.mode.name(), outcome.cfg.target);
                if let Err(e) = plot::plot_histograms(
                    &[(label, &outcome.metrics.response)],
                    "Response time by percentile",
                    path,
                ) {
                    eprintln!("loadgen: {e}");
                    status = 1;
                }
            }
            status
        }
    }
}
