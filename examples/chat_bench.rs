//! A small, bounded chat fan-out benchmark: N clients each send lines at a fixed
//! rate to a running chat server; every client measures, for every line it
//! receives, the time from the sender's write to its arrival.
//!
//! ```text
//! weft serve chat tcp:8123:interface=127.0.0.1 --cores 2 &
//! cargo run --release --example chat_bench -- 127.0.0.1:8123 --clients 64 --rate 20 --secs 10
//! ```
//! Prints deliveries per second, latency percentiles (p50, p99, p99.9, max) and how
//! many deliveries were missing at the end. A stand-in until `loadgen chat` lands.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    clients: usize,
    rate: u64,
    secs: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let addr = a
        .next()
        .ok_or("usage: chat_bench ADDR [--clients N] [--rate LINES_PER_SEC] [--secs S]")?
        .parse()
        .map_err(|e| format!("ADDR: {e}"))?;
    let mut args = Args {
        addr,
        clients: 64,
        rate: 20,
        secs: 10,
    };
    while let Some(flag) = a.next() {
        let v = a.next().ok_or(format!("{flag} needs a value"))?;
        let n: u64 = v.parse().map_err(|_| format!("{flag}: bad number {v:?}"))?;
        match flag.as_str() {
            "--clients" => args.clients = n as usize,
            "--rate" => args.rate = n.max(1),
            "--secs" => args.secs = n.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let base = Instant::now();
    let mut writers = Vec::new();
    let (tx, rx) = mpsc::channel::<Vec<u64>>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    for i in 0..args.clients {
        let s = TcpStream::connect(args.addr)?;
        s.set_nodelay(true)?;
        let r = s.try_clone()?;
        let (tx, ready_tx) = (tx.clone(), ready_tx.clone());
        let expect = args.clients as u64 * args.rate * args.secs;
        thread::spawn(move || {
            let mut reader = BufReader::new(r);
            let mut line = String::new();
            let mut lat = Vec::with_capacity(expect as usize);
            let mut welcomed = 0;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if welcomed < 3 {
                    welcomed += 1;
                    if welcomed == 3 {
                        let _ = ready_tx.send(());
                    }
                    continue;
                }
                // "HOST says b<i> <seq> <sent_ns>"
                let Some((_, text)) = line.trim_end().split_once(" says ") else {
                    continue;
                };
                if text == format!("end{i}") {
                    break;
                }
                if let Some(ns) = text.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) {
                    let now = base.elapsed().as_nanos() as u64;
                    lat.push(now.saturating_sub(ns));
                }
            }
            let _ = tx.send(lat);
        });
        writers.push(s);
    }
    drop(tx);
    for _ in 0..args.clients {
        ready_rx.recv_timeout(Duration::from_secs(10))?;
    }
    thread::sleep(Duration::from_millis(200)); // join notices settle

    let interval = Duration::from_nanos(1_000_000_000 / args.rate);
    let started = Instant::now();
    let mut handles = Vec::new();
    for (i, mut s) in writers.into_iter().enumerate() {
        let (rate, secs) = (args.rate, args.secs);
        handles.push(thread::spawn(move || {
            // Spread the clients' send times over one interval.
            thread::sleep(interval * i as u32 / 64);
            let t0 = Instant::now();
            for seq in 0..rate * secs {
                let due = t0 + interval * seq as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let ns = base.elapsed().as_nanos() as u64;
                if s.write_all(format!("b{i} {seq} {ns}\r\n").as_bytes())
                    .is_err()
                {
                    return s;
                }
            }
            s
        }));
    }
    let streams: Vec<TcpStream> = handles
        .into_iter()
        .map(|h| h.join().expect("writer"))
        .collect();
    let sent_for = started.elapsed();
    // Give the fan-out a moment, then end each reader with its own marker line.
    thread::sleep(Duration::from_millis(500));
    for (i, mut s) in streams.into_iter().enumerate() {
        let _ = s.write_all(format!("end{i}\r\n").as_bytes());
    }
    let mut all = Vec::new();
    for _ in 0..args.clients {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(v) => all.extend(v),
            Err(_) => break,
        }
    }
    all.sort_unstable();
    let expected = (args.clients as u64).pow(2) * args.rate * args.secs;
    println!(
        "clients {} rate {}/s each for {} s: {} deliveries ({} missing), {:.0} deliveries/s",
        args.clients,
        args.rate,
        args.secs,
        all.len(),
        expected.saturating_sub(all.len() as u64),
        all.len() as f64 / sent_for.as_secs_f64()
    );
    println!(
        "latency us: p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0)
    );
    Ok(())
}
