//! The echo workload: framed requests on N connections, each response checked byte for byte.
//!
//! One thread runs one epoll loop over its connections. Per connection:
//!
//! ```text
//!   issue: append frame(seq) to `out`, push {seq, intended, sent} on `in_flight`
//!   flush: one send() of everything in `out` (the rest waits for EPOLLOUT)
//!   read:  one recv() into the thread's scratch buffer; compare the bytes with the front
//!          request's frame; each completed frame pops `in_flight` and is recorded
//! ```
//!
//! Closed loop (`--depth D`): every completion issues the next request at once, so each
//! connection keeps D requests in flight. Open loop (`--rate R`): tick `k` of the schedule
//! goes to connection `k mod N` at its intended time; if that connection already has D in
//! flight, the tick waits in the connection's backlog (counted as `queued`) and is sent when
//! a response frees a slot, still timed from its intended time.
//!
//! A response byte that differs from what was sent is a `mismatch` error: the connection
//! is closed and the run will exit non-zero. Requests still outstanding when the drain
//! period ends are `timeout` errors, recorded at their age.
//!
//! Steady state allocates nothing: buffers and queues are sized at connect time and reused.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::clock::Nanos;
use crate::payload::Payload;
use crate::poller::{Poller, HANGUP, READABLE, WRITABLE};
use crate::schedule::Schedule;
use crate::socket;
use crate::stats::{Recorder, ThreadResult};
use crate::tls;
use crate::worker::{ThreadCtx, Ticker, Timeline};

/// Bytes read per `recv`.
const SCRATCH: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    intended: Nanos,
    sent: Nanos,
    /// Waited in the backlog for a free slot: its lateness is the server's, not ours.
    queued: bool,
}

struct Conn {
    fd: Option<OwnedFd>,
    out: Vec<u8>,
    out_pos: usize,
    wants_write: bool,
    dirty: bool,
    in_flight: VecDeque<Pending>,
    backlog: VecDeque<Nanos>,
    rx_pos: usize,
    next_seq: u64,
    /// The TLS session (`--tls`): requests go in as plaintext, ciphertext goes out.
    tls: Option<weft::tls::rustls::ClientConnection>,
}

impl Conn {
    fn outstanding(&self) -> usize {
        self.in_flight.len() + self.backlog.len()
    }
}

/// Opens a blocking-connected socket to the run's target and turns it non-blocking with
/// `TCP_NODELAY`.
pub(crate) fn open_connection(ctx: &ThreadCtx) -> Result<OwnedFd, String> {
    open_connection_to(&ctx.addr)
}

/// Opens a blocking-connected socket to `addr` and turns it non-blocking with `TCP_NODELAY`.
pub(crate) fn open_connection_to(addr: &SocketAddr) -> Result<OwnedFd, String> {
    let stream = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .map_err(|e| format!("connect:{}", socket::error_name(&e)))?;
    stream
        .set_nodelay(true)
        .and_then(|_| stream.set_nonblocking(true))
        .map_err(|e| format!("connect:{}", socket::error_name(&e)))?;
    Ok(OwnedFd::from(stream))
}

struct Echo<'a> {
    ctx: &'a ThreadCtx,
    payload: Payload,
    depth: usize,
    conns: Vec<Conn>,
    dirty: Vec<usize>,
    rec: Recorder,
    poller: Poller,
    issuing: bool,
    issued_measured: u64,
    reported_mismatch: bool,
}

impl Echo<'_> {
    fn issue(&mut self, c: usize, intended: Nanos, now: Nanos, queued: bool) {
        let conn = &mut self.conns[c];
        let seq = conn.next_seq;
        conn.next_seq += 1;
        self.payload.append(seq, &mut conn.out);
        conn.in_flight.push_back(Pending {
            seq,
            intended,
            sent: now,
            queued,
        });
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(c);
        }
        if self.rec.measured(intended) {
            self.issued_measured += 1;
            if let Some(q) = self.ctx.quota {
                if self.issued_measured >= q {
                    self.issuing = false;
                }
            }
        }
    }

    fn close(&mut self, c: usize, kind: Option<&str>) {
        let conn = &mut self.conns[c];
        if conn.fd.take().is_some() {
            self.rec.open_connections -= 1;
        }
        conn.in_flight.clear();
        conn.backlog.clear();
        conn.out.clear();
        conn.out_pos = 0;
        if let Some(kind) = kind {
            self.rec.error(kind);
        }
    }

    fn flush(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        conn.dirty = false;
        let Some(fd) = conn.fd.as_ref() else { return };
        if let Some(session) = conn.tls.as_mut() {
            if conn.out_pos < conn.out.len() {
                use std::io::Write;
                // rustls encrypts at once; it takes less only past its buffer limit.
                conn.out_pos += session
                    .writer()
                    .write(&conn.out[conn.out_pos..])
                    .unwrap_or(0);
            }
            match tls::send_queued(session, fd) {
                Ok(n) => self.rec.sent_bytes(n),
                Err(e) => {
                    let kind = format!("send:{}", socket::error_name(&e));
                    self.close(c, Some(&kind));
                    return;
                }
            }
        } else if conn.out_pos < conn.out.len() {
            match socket::send(fd, &conn.out[conn.out_pos..]) {
                Ok(n) => {
                    conn.out_pos += n;
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
        let conn = &mut self.conns[c];
        let unsent = conn.out_pos < conn.out.len();
        let pending = unsent || conn.tls.as_ref().is_some_and(|t| t.wants_write());
        if !unsent {
            conn.out.clear();
            conn.out_pos = 0;
        }
        if pending != conn.wants_write {
            conn.wants_write = pending;
            let interest = if pending {
                READABLE | WRITABLE
            } else {
                READABLE
            };
            if let Some(fd) = conn.fd.as_ref() {
                let _ = self.poller.modify(fd.as_raw_fd(), interest, c as u64);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while let Some(c) = self.dirty.pop() {
            self.flush(c);
        }
    }

    /// Reads once from connection `c` and checks and completes what arrived. Returns
    /// true when more may be waiting.
    fn read(&mut self, c: usize, scratch: &mut [u8], now_of: impl Fn() -> Nanos) -> bool {
        if self.conns[c].tls.is_some() {
            return self.read_tls(c, scratch, now_of);
        }
        let Some(fd) = self.conns[c].fd.as_ref() else {
            return false;
        };
        let read = socket::recv(fd, scratch);
        let Some(n) = self.read_outcome(c, read) else {
            return false;
        };
        let now = now_of();
        self.rec.received_bytes(n);
        if self.check(c, &scratch[..n], now) {
            self.refill(c, now);
        }
        n == scratch.len()
    }

    /// What one read from connection `c` gave: `Some(bytes)`, or `None` when there was
    /// nothing to read or the connection ended (closed, with the error recorded).
    fn read_outcome(&mut self, c: usize, read: std::io::Result<usize>) -> Option<usize> {
        match read {
            Ok(0) => {
                let kind = if self.conns[c].outstanding() > 0 {
                    "closed_by_peer"
                } else {
                    "closed_idle"
                };
                self.close(c, Some(kind));
                None
            }
            Ok(n) => Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => {
                let kind = format!("recv:{}", socket::error_name(&e));
                self.close(c, Some(&kind));
                None
            }
        }
    }

    /// Reads ciphertext once from connection `c` into its TLS session, then checks and
    /// completes the plaintext it yields. Returns true when more may be waiting.
    fn read_tls(&mut self, c: usize, scratch: &mut [u8], now_of: impl Fn() -> Nanos) -> bool {
        use std::io::Read;
        let read = {
            let conn = &mut self.conns[c];
            let (Some(fd), Some(session)) = (conn.fd.as_ref(), conn.tls.as_mut()) else {
                return false;
            };
            session.read_tls(&mut tls::FdIo(fd))
        };
        let Some(n) = self.read_outcome(c, read) else {
            return false;
        };
        self.rec.received_bytes(n);
        let conn = &mut self.conns[c];
        let (Some(fd), Some(session)) = (conn.fd.as_ref(), conn.tls.as_mut()) else {
            return false;
        };
        if let Err(e) = session.process_new_packets() {
            // The alert rustls queued goes out before the close.
            let _ = tls::send_queued(session, fd);
            self.close(c, Some(&tls::error_kind(&e)));
            return false;
        }
        let now = now_of();
        loop {
            let Some(session) = self.conns[c].tls.as_mut() else {
                return false;
            };
            let m = match session.reader().read(scratch) {
                // The server's close_notify.
                Ok(0) => {
                    let kind = if self.conns[c].outstanding() > 0 {
                        "closed_by_peer"
                    } else {
                        "closed_idle"
                    };
                    self.close(c, Some(kind));
                    return false;
                }
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    let kind = format!("recv:{}", socket::error_name(&e));
                    self.close(c, Some(&kind));
                    return false;
                }
            };
            if !self.check(c, &scratch[..m], now) {
                return false;
            }
        }
        self.refill(c, now);
        // What rustls has to say (a key update's answer) goes with the next flush.
        let conn = &mut self.conns[c];
        if conn.tls.as_ref().is_some_and(|t| t.wants_write()) && !conn.dirty {
            conn.dirty = true;
            self.dirty.push(c);
        }
        // rustls reads at most 4 KiB (more with a partial record) per call.
        n >= 4096
    }

    /// Checks `data` (plaintext from connection `c`) against the requests in flight and
    /// completes those it ends. Returns false on a mismatch (the connection is closed).
    fn check(&mut self, c: usize, data: &[u8], now: Nanos) -> bool {
        let frame_len = self.payload.frame_len();
        let mut data = data;
        while !data.is_empty() {
            let conn = &mut self.conns[c];
            let Some(front) = conn.in_flight.front().copied() else {
                self.mismatch(c, None, data);
                return false;
            };
            let take = data.len().min(frame_len - conn.rx_pos);
            if !self.payload.matches(front.seq, conn.rx_pos, &data[..take]) {
                self.mismatch(c, Some(front.seq), &data[..take]);
                return false;
            }
            let conn = &mut self.conns[c];
            conn.rx_pos += take;
            data = &data[take..];
            if conn.rx_pos == frame_len {
                conn.rx_pos = 0;
                conn.in_flight.pop_front();
                self.rec
                    .complete(front.intended, front.sent, now, !front.queued);
            }
        }
        true
    }

    /// Refills connection `c`'s window of requests in flight.
    fn refill(&mut self, c: usize, now: Nanos) {
        loop {
            let conn = &mut self.conns[c];
            if conn.in_flight.len() >= self.depth {
                break;
            }
            if let Some(intended) = conn.backlog.pop_front() {
                self.issue(c, intended, now, true);
            } else if self.ctx.rate.is_none() && self.issuing {
                self.issue(c, now, now, false);
            } else {
                break;
            }
        }
    }

    fn mismatch(&mut self, c: usize, seq: Option<u64>, got: &[u8]) {
        if !self.reported_mismatch {
            self.reported_mismatch = true;
            let pos = self.conns[c].rx_pos;
            let detail = match seq {
                Some(seq) => {
                    let i = self.payload.first_difference(seq, pos, got).unwrap_or(0);
                    let want = self.payload.expected_byte(seq, pos + i);
                    format!(
                        "request {seq}, byte {} of its frame: expected {:?}, got {:?}",
                        pos + i,
                        want.map(|b| b as char),
                        got.get(i).map(|&b| b as char)
                    )
                }
                None => format!("{} bytes arrived with no request outstanding", got.len()),
            };
            eprintln!(
                "loadgen: mismatch on thread {} connection {c}: {detail}",
                self.ctx.index
            );
        }
        self.close(c, Some("mismatch"));
    }
}

/// Runs one echo thread to the end of the run.
pub fn run_thread(ctx: ThreadCtx) -> ThreadResult {
    let timeline = Timeline::of(&ctx.cfg);
    let mut rec = Recorder::new(timeline.warmup_end);
    if let Err(e) = ctx.pin() {
        eprintln!("loadgen: {e}");
    }
    let payload = match Payload::new(ctx.cfg.framing, &ctx.cfg.delimiter, ctx.cfg.size) {
        Ok(p) => p,
        Err(e) => {
            // Validated before the threads start; kept as an error rather than a panic.
            return ctx.give_up(rec, &format!("payload:{e}"));
        }
    };
    let depth = ctx.cfg.depth;
    let poller = match Poller::new(ctx.connections.min(1024)) {
        Ok(p) => p,
        Err(e) => {
            return ctx.give_up(rec, &format!("epoll:{}", socket::error_name(&e)));
        }
    };
    let client = match tls::client_of(&ctx.cfg) {
        Ok(c) => c,
        Err(e) => return ctx.give_up(rec, &e),
    };
    let mut conns = Vec::with_capacity(ctx.connections);
    for i in 0..ctx.connections {
        let opened = match &client {
            Some((config, name)) => {
                tls::connect_blocking(&ctx.addr, config, name).map(|(fd, t)| (fd, Some(t)))
            }
            None => open_connection(&ctx).map(|fd| (fd, None)),
        };
        let mut session = None;
        let fd = match opened {
            Ok((fd, t)) => match poller.add(fd.as_raw_fd(), READABLE, i as u64) {
                Ok(()) => {
                    rec.open_connections += 1;
                    session = t;
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
        conns.push(Conn {
            fd,
            out: Vec::with_capacity(payload.frame_len() * depth),
            out_pos: 0,
            wants_write: false,
            dirty: false,
            in_flight: VecDeque::with_capacity(depth),
            backlog: VecDeque::new(),
            rx_pos: 0,
            next_seq: 0,
            tls: session,
        });
    }
    let mut e = Echo {
        ctx: &ctx,
        payload,
        depth,
        dirty: Vec::with_capacity(conns.len()),
        conns,
        rec,
        poller,
        issuing: true,
        issued_measured: 0,
        reported_mismatch: false,
    };
    let mut scratch = vec![0u8; SCRATCH];
    let schedule = ctx.rate.and_then(|r| Schedule::new(r, ctx.phase));
    let n_conns = e.conns.len();

    let clock = ctx.start_together();
    let mut ticker = Ticker::new();
    let mut next_tick: u64 = 0;
    let now = clock.now();
    if schedule.is_none() {
        for c in 0..n_conns {
            for _ in 0..depth {
                if e.conns[c].fd.is_some() && e.issuing {
                    e.issue(c, now, now, false);
                }
            }
        }
    }
    loop {
        let now = clock.now();
        ticker.tick(now, &mut e.rec, &ctx);
        if now >= timeline.measure_end {
            e.issuing = false;
        }
        if let (Some(s), true) = (&schedule, e.issuing) {
            let due = s.ticks_due(now);
            while next_tick < due && e.issuing {
                let intended = s.intended(next_tick);
                if intended >= timeline.measure_end {
                    e.issuing = false;
                    break;
                }
                // The tick's connection, or the next open one after it.
                let first = (next_tick % n_conns as u64) as usize;
                let Some(c) = (0..n_conns)
                    .map(|i| (first + i) % n_conns)
                    .find(|&c| e.conns[c].fd.is_some())
                else {
                    e.issuing = false;
                    break;
                };
                if e.conns[c].in_flight.len() < depth && e.conns[c].backlog.is_empty() {
                    e.issue(c, intended, now, false);
                } else {
                    e.conns[c].backlog.push_back(intended);
                    if e.rec.measured(intended) {
                        e.rec.counts.queued += 1;
                        e.rec.interval_counts.queued += 1;
                    }
                }
                next_tick += 1;
            }
        }
        e.flush_dirty();
        let outstanding: usize = e.conns.iter().map(Conn::outstanding).sum();
        if !e.issuing && outstanding == 0 {
            break;
        }
        if e.rec.open_connections == 0 {
            // Every connection is gone: nothing more can happen.
            break;
        }
        if now >= timeline.drain_end {
            for c in 0..n_conns {
                let conn = &mut e.conns[c];
                let ages: Vec<Nanos> = conn
                    .in_flight
                    .iter()
                    .map(|p| p.intended)
                    .chain(conn.backlog.iter().copied())
                    .collect();
                for intended in ages {
                    e.rec.unfinished(intended, now);
                    e.rec.error("timeout");
                }
                conn.in_flight.clear();
                conn.backlog.clear();
            }
            break;
        }
        let mut wake = ticker.next().min(timeline.drain_end);
        if e.issuing {
            wake = wake.min(timeline.measure_end);
            if let Some(s) = &schedule {
                wake = wake.min(s.intended(next_tick));
            }
        }
        let n = match e.poller.wait(wake.saturating_sub(now)) {
            Ok(n) => n,
            Err(err) => {
                e.rec.error(&format!("epoll:{}", socket::error_name(&err)));
                break;
            }
        };
        for i in 0..n {
            let ev = e.poller.event(i);
            let c = ev.token as usize;
            if ev.flags & (READABLE | HANGUP) != 0 {
                // A full scratch buffer means more may be waiting: read again now.
                while e.read(c, &mut scratch, || clock.now()) {}
            }
            if ev.flags & WRITABLE != 0 && e.conns[c].fd.is_some() {
                e.flush(c);
            }
        }
    }
    let now = clock.now();
    let cpu_ns = ticker.finish(now, &mut e.rec, &ctx);
    for c in 0..n_conns {
        e.close(c, None);
    }
    ThreadResult {
        metrics: e.rec.total,
        counts: e.rec.counts,
        cpu_ns,
        end: now,
    }
}
