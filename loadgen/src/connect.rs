//! The connection storm: connect, record the handshake time, close; repeat.
//!
//! `--connections N` attempts are in flight at once. Without `--rate`, each finished
//! attempt starts the next at once (as fast as possible). With `--rate R`, attempt `k`
//! is intended at the schedule's tick `k`; when all N slots are busy it waits in a queue
//! (counted as `queued`) and its connect latency still runs from its intended time.
//!
//! A connect is a non-blocking `connect()` followed by writability and `SO_ERROR`, so a
//! refused or unreachable connect is counted by its errno (`connect:ECONNREFUSED`), and a
//! handshake still unfinished at the end of the drain is a `timeout`. By default each
//! socket is closed with a reset (`SO_LINGER` 0) so that the client's ports do not pile up
//! in `TIME_WAIT` and a long storm does not end in `EADDRNOTAVAIL`; `--close fin` closes
//! normally.
//!
//! With `--tls` an attempt goes on past the TCP connect to a full TLS handshake (rustls,
//! no session resumption), driven by the same epoll loop, and its latency runs to the
//! handshake's end: a storm of `--tls` connects is a handshake benchmark.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use weft::tls::rustls::pki_types::ServerName;
use weft::tls::rustls::{ClientConfig, ClientConnection};

use crate::clock::Nanos;
use crate::config::CloseStyle;
use crate::poller::{Poller, READABLE, WRITABLE};
use crate::schedule::Schedule;
use crate::socket::{self, ConnectState};
use crate::stats::{Recorder, ThreadResult};
use crate::tls;
use crate::worker::{ThreadCtx, Ticker, Timeline};

struct Attempt {
    fd: OwnedFd,
    intended: Nanos,
    started: Nanos,
    queued: bool,
    /// `--tls`: the handshake, once the TCP connect is done.
    tls: Option<Box<ClientConnection>>,
}

struct Storm<'a> {
    ctx: &'a ThreadCtx,
    slots: Vec<Option<Attempt>>,
    free: Vec<usize>,
    poller: Poller,
    rec: Recorder,
    issuing: bool,
    issued_measured: u64,
    /// `--tls`: the client config and the name to verify.
    client: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Storm<'_> {
    fn busy(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn close(&self, fd: OwnedFd) {
        if self.ctx.cfg.close == CloseStyle::Reset {
            socket::set_linger_zero(&fd);
        }
        drop(fd);
    }

    /// Starts attempt at `intended`; returns false when no slot was free.
    fn start(&mut self, intended: Nanos, now: Nanos, queued: bool) -> bool {
        let Some(slot) = self.free.pop() else {
            return false;
        };
        if self.rec.measured(intended) {
            self.issued_measured += 1;
            if self.ctx.quota.is_some_and(|q| self.issued_measured >= q) {
                self.issuing = false;
            }
        }
        // Connected at once with TLS to speak: watch for the server's reply to the
        // ClientHello. Connecting: watch for the connect's end.
        let (fd, interest) = match socket::connect(&self.ctx.addr) {
            Ok((fd, ConnectState::Connected)) if self.client.is_none() => {
                self.rec.complete(intended, now, now, !queued);
                self.close(fd);
                self.free.push(slot);
                return true;
            }
            Ok((fd, ConnectState::Connected)) => (fd, READABLE),
            Ok((fd, ConnectState::InProgress)) => (fd, WRITABLE),
            Err(e) => {
                self.rec
                    .error(&format!("connect:{}", socket::error_name(&e)));
                self.free.push(slot);
                return true;
            }
        };
        if let Err(e) = self.poller.add(fd.as_raw_fd(), interest, slot as u64) {
            self.rec.error(&format!("epoll:{}", socket::error_name(&e)));
            self.free.push(slot);
            return true;
        }
        self.rec.open_connections += 1;
        self.slots[slot] = Some(Attempt {
            fd,
            intended,
            started: now,
            queued,
            tls: None,
        });
        if interest == READABLE {
            self.begin_tls(slot);
        }
        true
    }

    /// An event on attempt `slot`: its TCP connect ended, or (`--tls`) its handshake
    /// moved.
    fn event(&mut self, slot: usize, now: Nanos) {
        let Some(a) = self.slots[slot].as_ref() else {
            return;
        };
        if a.tls.is_some() {
            self.drive_tls(slot, now);
            return;
        }
        match socket::take_error(&a.fd) {
            Ok(None) if self.client.is_some() => self.begin_tls(slot),
            Ok(None) => self.end(slot, now, None),
            Ok(Some(e)) | Err(e) => {
                let kind = format!("connect:{}", socket::error_name(&e));
                self.end(slot, now, Some(&kind));
            }
        }
    }

    /// Ends attempt `slot`: completed (`error` None) or failed with `error`.
    fn end(&mut self, slot: usize, now: Nanos, error: Option<&str>) {
        let Some(a) = self.slots[slot].take() else {
            return;
        };
        self.rec.open_connections -= 1;
        self.free.push(slot);
        match error {
            None => self.rec.complete(a.intended, a.started, now, !a.queued),
            Some(kind) => self.rec.error(kind),
        }
        self.close(a.fd);
    }

    /// The TCP connect of `slot` is done: starts the TLS handshake (the ClientHello).
    fn begin_tls(&mut self, slot: usize) {
        let Some((config, name)) = self.client.as_ref() else {
            return;
        };
        let session = match ClientConnection::new(Arc::clone(config), name.clone()) {
            Ok(s) => s,
            Err(e) => {
                let kind = tls::error_kind(&e);
                self.end(slot, 0, Some(&kind));
                return;
            }
        };
        if let Some(a) = self.slots[slot].as_mut() {
            a.tls = Some(Box::new(session));
        }
        self.send_and_watch(slot, 0);
    }

    /// Moves the handshake of `slot` on with what arrived; ends the attempt when the
    /// handshake is done or failed.
    fn drive_tls(&mut self, slot: usize, now: Nanos) {
        let Some(a) = self.slots[slot].as_mut() else {
            return;
        };
        let Some(session) = a.tls.as_mut() else {
            return;
        };
        loop {
            match session.read_tls(&mut tls::FdIo(&a.fd)) {
                Ok(0) => {
                    self.end(slot, now, Some("tls:closed_by_peer"));
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    let kind = format!("recv:{}", socket::error_name(&e));
                    self.end(slot, now, Some(&kind));
                    return;
                }
            }
            if let Err(e) = session.process_new_packets() {
                let _ = tls::send_queued(session, &a.fd);
                let kind = tls::error_kind(&e);
                self.end(slot, now, Some(&kind));
                return;
            }
        }
        if !session.is_handshaking() {
            // The client's Finished goes out first, so the server sees a whole handshake.
            let _ = tls::send_queued(session, &a.fd);
            self.end(slot, now, None);
            return;
        }
        self.send_and_watch(slot, now);
    }

    /// Sends what the handshake of `slot` has queued and waits for the socket to be
    /// readable (and writable, if some is left).
    fn send_and_watch(&mut self, slot: usize, now: Nanos) {
        let Some(a) = self.slots[slot].as_mut() else {
            return;
        };
        let Some(session) = a.tls.as_mut() else {
            return;
        };
        if let Err(e) = tls::send_queued(session, &a.fd) {
            let kind = format!("send:{}", socket::error_name(&e));
            self.end(slot, now, Some(&kind));
            return;
        }
        let interest = if session.wants_write() {
            READABLE | WRITABLE
        } else {
            READABLE
        };
        if let Err(e) = self.poller.modify(a.fd.as_raw_fd(), interest, slot as u64) {
            let kind = format!("epoll:{}", socket::error_name(&e));
            self.end(slot, now, Some(&kind));
        }
    }
}

/// Runs one connection-storm thread to the end of the run.
pub fn run_thread(ctx: ThreadCtx) -> ThreadResult {
    let timeline = Timeline::of(&ctx.cfg);
    let rec = Recorder::new(timeline.warmup_end);
    if let Err(e) = ctx.pin() {
        eprintln!("loadgen: {e}");
    }
    let poller = match Poller::new(ctx.connections.min(1024)) {
        Ok(p) => p,
        Err(e) => {
            return ctx.give_up(rec, &format!("epoll:{}", socket::error_name(&e)));
        }
    };
    let client = match tls::client_of(&ctx.cfg) {
        Ok(c) => c,
        Err(e) => return ctx.give_up(Recorder::new(timeline.warmup_end), &e),
    };
    let mut s = Storm {
        client,
        ctx: &ctx,
        slots: (0..ctx.connections).map(|_| None).collect(),
        free: (0..ctx.connections).rev().collect(),
        poller,
        rec,
        issuing: true,
        issued_measured: 0,
    };
    let schedule = ctx.rate.and_then(|r| Schedule::new(r, ctx.phase));
    let mut backlog: VecDeque<Nanos> = VecDeque::new();
    let mut next_tick = 0u64;

    let clock = ctx.start_together();
    let mut ticker = Ticker::new();
    loop {
        let mut now = clock.now();
        ticker.tick(now, &mut s.rec, &ctx);
        if now >= timeline.measure_end {
            s.issuing = false;
        }
        if s.issuing {
            match &schedule {
                Some(sched) => {
                    let due = sched.ticks_due(now);
                    while next_tick < due && s.issuing {
                        let intended = sched.intended(next_tick);
                        if intended >= timeline.measure_end {
                            s.issuing = false;
                            break;
                        }
                        if !backlog.is_empty() || !s.start(intended, now, false) {
                            backlog.push_back(intended);
                            if s.rec.measured(intended) {
                                s.rec.counts.queued += 1;
                                s.rec.interval_counts.queued += 1;
                            }
                        }
                        next_tick += 1;
                    }
                }
                None => {
                    while s.issuing && !s.free.is_empty() {
                        now = clock.now();
                        s.start(now, now, false);
                    }
                }
            }
        }
        if !s.issuing && s.busy() == 0 && backlog.is_empty() {
            break;
        }
        if now >= timeline.drain_end {
            for slot in 0..s.slots.len() {
                if let Some(a) = s.slots[slot].take() {
                    s.rec.unfinished(a.intended, now);
                    s.rec.error("timeout");
                    s.close(a.fd);
                }
            }
            for intended in backlog.drain(..) {
                s.rec.unfinished(intended, now);
                s.rec.error("timeout");
            }
            break;
        }
        let mut wake = ticker.next().min(timeline.drain_end);
        if s.issuing {
            wake = wake.min(timeline.measure_end);
            if let Some(sched) = &schedule {
                wake = wake.min(sched.intended(next_tick));
            }
        }
        let n = match s.poller.wait(wake.saturating_sub(now)) {
            Ok(n) => n,
            Err(e) => {
                s.rec.error(&format!("epoll:{}", socket::error_name(&e)));
                break;
            }
        };
        let now = clock.now();
        for i in 0..n {
            let ev = s.poller.event(i);
            s.event(ev.token as usize, now);
        }
        // Queued attempts take the freed slots first, in order.
        while !s.free.is_empty() {
            let Some(intended) = backlog.pop_front() else {
                break;
            };
            let now = clock.now();
            s.start(intended, now, true);
        }
    }
    let now = clock.now();
    let cpu_ns = ticker.finish(now, &mut s.rec, &ctx);
    ThreadResult {
        metrics: s.rec.total,
        counts: s.rec.counts,
        cpu_ns,
        end: now,
    }
}
