//! The chat workload: N clients of a chat server, each line broadcast to every client.
//!
//! The server's wire protocol (Twisted's classic chat example): on connect it sends three
//! welcome lines and tells the others `NAME has joined the party.`; a line `X` from a client
//! reaches every client, the sender included, as `NAME says X\r\n`; `/NAME new` renames.
//!
//! Each client waits for its welcome, renames itself `cID`, and the threads start together.
//! A line carries what is needed to measure it wherever it lands:
//!
//! ```text
//!   m <sender> <seq> <intended_ns> <sent_ns> aaaa...   (hex fields, padded to --size)
//! ```
//!
//! so its arrival at any client, on any thread, yields a delivery latency from the intended
//! time (`response`) and from the actual send (`service`) on the run's common clock. A
//! client's own line coming back ends its "request": closed loop keeps `--depth` own lines
//! in flight per client; open loop sends `--rate` lines per second in total, queueing lines
//! of a client that is at its depth. Latency samples are taken at the *other* clients only,
//! as a user reading the room sees them; every delivery counts in `deliveries`.
//!
//! `--target` may name several servers (`A:P,B:Q`: processes joined by a bus, say): client
//! `i` connects to target `i mod n`, and a line is still expected at every client of every
//! server, its latency measured end to end on the one clock.
//!
//! At the end the threads drain together until every expected delivery arrived (a shared
//! counter) or the drain period ends; the runner reports missing ones as `chat_lost`.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use crate::clock::{Clock, Nanos};
use crate::echo::open_connection_to;
use crate::poller::{Poller, HANGUP, READABLE, WRITABLE};
use crate::schedule::Schedule;
use crate::socket;
use crate::stats::{Recorder, ThreadResult};
use crate::worker::{ThreadCtx, Ticker, Timeline};

/// Welcome lines the server sends on connect.
const WELCOME_LINES: usize = 3;
/// Longest line accepted from the server.
const MAX_LINE: usize = 64 * 1024;
/// How long clients may take to connect and be welcomed.
const SETUP_NS: Nanos = 5_000_000_000;

struct Client {
    fd: Option<OwnedFd>,
    id: u64,
    rx: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    wants_write: bool,
    dirty: bool,
    lines_seen: usize,
    in_flight: usize,
    backlog: VecDeque<Nanos>,
    next_seq: u64,
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// A chat line of ours as seen in `NAME says m ...`: (sender, intended, sent).
fn parse_line(line: &[u8]) -> Option<(u64, Nanos, Nanos)> {
    const SAYS: &[u8] = b" says m ";
    let at = line.windows(SAYS.len()).position(|w| w == SAYS)?;
    let mut fields = line[at + SAYS.len()..].split(|&b| b == b' ');
    let sender = parse_hex(fields.next()?)?;
    let _seq = parse_hex(fields.next()?)?;
    let intended = parse_hex(fields.next()?)?;
    let sent = parse_hex(fields.next()?)?;
    Some((sender, intended, sent))
}

struct Chat<'a> {
    ctx: &'a ThreadCtx,
    clients: Vec<Client>,
    dirty: Vec<usize>,
    poller: Poller,
    rec: Recorder,
    size: usize,
    depth: usize,
    issuing: bool,
    issued_measured: u64,
    /// Change to the shared outstanding-deliveries counter not yet published.
    outstanding_delta: i64,
    total_clients: i64,
}

impl Chat<'_> {
    fn queue_out(&mut self, c: usize) {
        if !self.clients[c].dirty {
            self.clients[c].dirty = true;
            self.dirty.push(c);
        }
    }

    fn send_line(&mut self, c: usize, intended: Nanos, now: Nanos) {
        let cl = &mut self.clients[c];
        let seq = cl.next_seq;
        cl.next_seq += 1;
        let start = cl.out.len();
        // Writing to a Vec cannot fail.
        let _ = write!(cl.out, "m {:x} {seq:x} {intended:x} {now:x} ", cl.id);
        let len = cl.out.len() - start;
        cl.out
            .extend((len..self.size).map(|i| b'a' + (i % 26) as u8));
        cl.out.extend_from_slice(b"\r\n");
        cl.in_flight += 1;
        self.outstanding_delta += self.total_clients;
        if self.rec.measured(intended) {
            self.rec.counts.requests += 1;
            self.issued_measured += 1;
            if self.ctx.quota.is_some_and(|q| self.issued_measured >= q) {
                self.stop_issuing();
            }
        }
        self.rec.interval_counts.requests += 1;
        self.queue_out(c);
    }

    fn stop_issuing(&mut self) {
        if self.issuing {
            self.issuing = false;
            self.ctx.shared.issuing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn close(&mut self, c: usize, kind: Option<&str>) {
        let cl = &mut self.clients[c];
        if cl.fd.take().is_some() {
            self.rec.open_connections -= 1;
        }
        cl.in_flight = 0;
        cl.backlog.clear();
        if let Some(kind) = kind {
            self.rec.error(kind);
        }
    }

    fn flush(&mut self, c: usize) {
        let cl = &mut self.clients[c];
        cl.dirty = false;
        let Some(fd) = cl.fd.as_ref() else { return };
        if cl.out_pos < cl.out.len() {
            match socket::send(fd, &cl.out[cl.out_pos..]) {
                Ok(n) => {
                    cl.out_pos += n;
                    self.rec.sent_bytes(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let kind = format!("send:{}", socket::error_name(&e));
                    self.close(c, Some(&kind));
                    return;
                }
            }
        }
        let cl = &mut self.clients[c];
        let pending = cl.out_pos < cl.out.len();
        if !pending {
            cl.out.clear();
            cl.out_pos = 0;
        }
        if pending != cl.wants_write {
            cl.wants_write = pending;
            let interest = if pending {
                READABLE | WRITABLE
            } else {
                READABLE
            };
            if let Some(fd) = cl.fd.as_ref() {
                let _ = self.poller.modify(fd.as_raw_fd(), interest, c as u64);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while let Some(c) = self.dirty.pop() {
            self.flush(c);
        }
    }

    /// Reads once from client `c` and handles every complete line; returns whether the
    /// scratch buffer was filled (more may be waiting).
    fn read(&mut self, c: usize, scratch: &mut [u8], clock: &Clock, running: bool) -> bool {
        let Some(fd) = self.clients[c].fd.as_ref() else {
            return false;
        };
        let n = match socket::recv(fd, scratch) {
            Ok(0) => {
                self.close(c, Some("closed_by_peer"));
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) => {
                let kind = format!("recv:{}", socket::error_name(&e));
                self.close(c, Some(&kind));
                return false;
            }
        };
        let now = clock.now();
        self.rec.received_bytes(n);
        let mut rx = std::mem::take(&mut self.clients[c].rx);
        rx.extend_from_slice(&scratch[..n]);
        let mut consumed = 0;
        while let Some(end) = rx[consumed..].iter().position(|&b| b == b'\n') {
            let line = &rx[consumed..consumed + end];
            consumed += end + 1;
            self.clients[c].lines_seen += 1;
            if !running {
                continue;
            }
            let Some((sender, intended, sent)) = parse_line(line) else {
                // Joins, renames and anything else that is not a measured line.
                continue;
            };
            self.outstanding_delta -= 1;
            if self.rec.measured(intended) {
                self.rec.counts.deliveries += 1;
            }
            self.rec.interval_counts.deliveries += 1;
            if sender == self.clients[c].id {
                let cl = &mut self.clients[c];
                cl.in_flight = cl.in_flight.saturating_sub(1);
            } else {
                self.rec.complete_delivery(intended, sent, now);
            }
        }
        rx.drain(..consumed);
        let too_long = rx.len() > MAX_LINE;
        self.clients[c].rx = rx;
        if too_long {
            self.close(c, Some("chat_line_too_long"));
            return false;
        }
        if running {
            loop {
                let cl = &mut self.clients[c];
                if cl.fd.is_none() || cl.in_flight >= self.depth {
                    break;
                }
                if let Some(intended) = cl.backlog.pop_front() {
                    self.send_line(c, intended, now);
                } else if self.ctx.rate.is_none() && self.issuing {
                    self.send_line(c, now, now);
                } else {
                    break;
                }
            }
        }
        n == scratch.len()
    }
}

/// Runs one chat thread to the end of the run.
pub fn run_thread(ctx: ThreadCtx) -> ThreadResult {
    let timeline = Timeline::of(&ctx.cfg);
    let mut rec = Recorder::new(timeline.warmup_end);
    if let Err(e) = ctx.pin() {
        eprintln!("loadgen: {e}");
    }
    let poller = match Poller::new(ctx.connections.min(1024)) {
        Ok(p) => p,
        Err(e) => {
            ctx.shared.issuing.fetch_sub(1, Ordering::AcqRel);
            return ctx.give_up(rec, &format!("epoll:{}", socket::error_name(&e)));
        }
    };
    let mut clients = Vec::with_capacity(ctx.connections);
    for i in 0..ctx.connections {
        // Clients go round-robin over the targets by their global id, so every thread's
        // share is spread too.
        let id = ctx.first_connection + i;
        let fd = match open_connection_to(&ctx.addrs[id % ctx.addrs.len()]) {
            Ok(fd) => match poller.add(fd.as_raw_fd(), READABLE, i as u64) {
                Ok(()) => {
                    rec.open_connections += 1;
                    Some(fd)
                }
                Err(e) => {
                    rec.error(&format!("epoll:{}", socket::error_name(&e)));
                    None
                }
            },
            Err(kind) => {
                rec.error(&kind);
                None
            }
        };
        clients.push(Client {
            fd,
            id: id as u64,
            rx: Vec::with_capacity(4096),
            out: Vec::with_capacity(ctx.cfg.size * ctx.cfg.depth + 64),
            out_pos: 0,
            wants_write: false,
            dirty: false,
            lines_seen: 0,
            in_flight: 0,
            backlog: VecDeque::new(),
            next_seq: 0,
        });
    }
    let mut ch = Chat {
        ctx: &ctx,
        dirty: Vec::with_capacity(clients.len()),
        clients,
        poller,
        rec,
        size: ctx.cfg.size,
        depth: ctx.cfg.depth,
        issuing: true,
        issued_measured: 0,
        outstanding_delta: 0,
        total_clients: ctx.cfg.connections as i64,
    };
    let mut scratch = vec![0u8; 64 * 1024];
    let n_clients = ch.clients.len();

    // Setup: wait for each client's welcome, then rename it.
    let setup = Clock::starting_now();
    let mut renamed = vec![false; n_clients];
    loop {
        for (c, done) in renamed.iter_mut().enumerate() {
            if !*done && ch.clients[c].lines_seen >= WELCOME_LINES {
                *done = true;
                let id = ch.clients[c].id;
                let _ = write!(ch.clients[c].out, "/NAME c{id}\r\n");
                ch.queue_out(c);
            }
        }
        ch.flush_dirty();
        let waiting = (0..n_clients).any(|c| ch.clients[c].fd.is_some() && !renamed[c]);
        let now = setup.now();
        if !waiting || now >= SETUP_NS {
            break;
        }
        let n = ch.poller.wait(SETUP_NS - now).unwrap_or(0);
        for i in 0..n {
            let c = ch.poller.event(i).token as usize;
            while ch.read(c, &mut scratch, &setup, false) {}
        }
    }
    for (c, done) in renamed.iter().enumerate() {
        if !done && ch.clients[c].fd.is_some() {
            ch.close(c, Some("chat_no_welcome"));
        }
    }

    let schedule = ctx.rate.and_then(|r| Schedule::new(r, ctx.phase));
    let clock = ctx.start_together();
    let mut ticker = Ticker::new();
    let mut next_tick = 0u64;
    if schedule.is_none() {
        let now = clock.now();
        for c in 0..n_clients {
            for _ in 0..ch.depth {
                if ch.clients[c].fd.is_some() && ch.issuing {
                    ch.send_line(c, now, now);
                }
            }
        }
    }
    loop {
        let now = clock.now();
        ticker.tick(now, &mut ch.rec, &ctx);
        if now >= timeline.measure_end || ch.rec.open_connections == 0 {
            ch.stop_issuing();
        }
        if let (Some(s), true) = (&schedule, ch.issuing) {
            let due = s.ticks_due(now);
            while next_tick < due && ch.issuing {
                let intended = s.intended(next_tick);
                if intended >= timeline.measure_end {
                    ch.stop_issuing();
                    break;
                }
                let first = (next_tick % n_clients as u64) as usize;
                let Some(c) = (0..n_clients)
                    .map(|i| (first + i) % n_clients)
                    .find(|&c| ch.clients[c].fd.is_some())
                else {
                    ch.stop_issuing();
                    break;
                };
                if ch.clients[c].in_flight < ch.depth && ch.clients[c].backlog.is_empty() {
                    ch.send_line(c, intended, now);
                } else {
                    ch.clients[c].backlog.push_back(intended);
                    if ch.rec.measured(intended) {
                        ch.rec.counts.queued += 1;
                        ch.rec.interval_counts.queued += 1;
                    }
                }
                next_tick += 1;
            }
        }
        ch.flush_dirty();
        if ch.outstanding_delta != 0 {
            ch.ctx
                .shared
                .outstanding
                .fetch_add(ch.outstanding_delta, Ordering::AcqRel);
            ch.outstanding_delta = 0;
        }
        let everyone_done = ctx.shared.issuing.load(Ordering::Acquire) == 0
            && ctx.shared.outstanding.load(Ordering::Acquire) <= 0;
        if (!ch.issuing && everyone_done) || ch.rec.open_connections == 0 {
            break;
        }
        if now >= timeline.drain_end {
            for c in 0..n_clients {
                let cl = &mut ch.clients[c];
                let queued: Vec<Nanos> = cl.backlog.drain(..).collect();
                for intended in queued {
                    ch.rec.unfinished(intended, now);
                    ch.rec.error("timeout");
                }
            }
            break;
        }
        let mut wake = ticker.next().min(timeline.drain_end);
        if ch.issuing {
            wake = wake.min(timeline.measure_end);
            if let Some(s) = &schedule {
                wake = wake.min(s.intended(next_tick));
            }
        } else {
            // Draining: look at the shared counter now and then.
            wake = wake.min(now + 10_000_000);
        }
        let n = match ch.poller.wait(wake.saturating_sub(now)) {
            Ok(n) => n,
            Err(e) => {
                ch.rec.error(&format!("epoll:{}", socket::error_name(&e)));
                break;
            }
        };
        for i in 0..n {
            let ev = ch.poller.event(i);
            let c = ev.token as usize;
            if ev.flags & (READABLE | HANGUP) != 0 {
                while ch.read(c, &mut scratch, &clock, true) {}
            }
            if ev.flags & WRITABLE != 0 && ch.clients[c].fd.is_some() {
                ch.flush(c);
            }
        }
    }
    ch.stop_issuing();
    let now = clock.now();
    let cpu_ns = ticker.finish(now, &mut ch.rec, &ctx);
    ThreadResult {
        metrics: ch.rec.total,
        counts: ch.rec.counts,
        cpu_ns,
        end: now,
    }
}
