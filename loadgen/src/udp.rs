//! The UDP echo workload: datagrams on N flows (one connected UDP socket each), every
//! reply checked byte for byte, losses counted.
//!
//! ```text
//!   issue: build datagram(seq) in the thread's buffer, one send(); push
//!          {seq, intended, sent} on the flow's `in_flight`
//!   read:  recv() until EAGAIN; each reply names its seq (first 8 bytes): its
//!          pending entry is found, the bytes compared, the sample recorded
//!   sweep: every 10 ms, entries older than --loss-timeout are `lost` (recorded at
//!          their age); in closed loop a replacement is issued at once
//! ```
//!
//! Closed loop (`--depth D`): each flow keeps D datagrams in flight. Open loop
//! (`--rate R`): tick `k` goes to flow `k mod N` at its intended time, waiting in the
//! flow's backlog (counted as `queued`) while D are in flight, as in the echo mode.
//!
//! Errors (each makes the run exit non-zero): `lost` (no reply within the loss
//! timeout, or still missing when the drain ends), `mismatch` (a reply whose bytes
//! differ from what was sent), `late` (a reply for a datagram already counted lost,
//! or one never sent), `refused` (ICMP port unreachable: nothing listens), and send
//! errors by errno.
//!
//! Steady state allocates nothing: the flows' queues are sized at start and reused.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::clock::Nanos;
use crate::poller::{Poller, HANGUP, READABLE};
use crate::schedule::Schedule;
use crate::socket;
use crate::stats::{Recorder, ThreadResult};
use crate::worker::{ThreadCtx, Ticker, Timeline};

/// The smallest datagram: it carries its 8-byte sequence number.
pub const MIN_SIZE: usize = 8;
/// How often the flows are swept for lost datagrams.
const SWEEP_NS: Nanos = 10_000_000;

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    intended: Nanos,
    sent: Nanos,
    queued: bool,
}

struct Flow {
    fd: Option<OwnedFd>,
    in_flight: VecDeque<Pending>,
    backlog: VecDeque<Nanos>,
    next_seq: u64,
}

/// Writes datagram `seq` of `size` bytes into `out`: the sequence number, then a
/// pattern that depends on it, so a reply for the wrong request cannot match.
pub fn datagram(seq: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((MIN_SIZE..size).map(|k| (seq as usize).wrapping_add(k) as u8));
}

/// Returns the sequence number a reply carries, if it is long enough.
pub fn seq_of(reply: &[u8]) -> Option<u64> {
    reply
        .get(..MIN_SIZE)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// Opens a non-blocking UDP socket connected to `addr` (a flow).
fn open_flow(addr: SocketAddr) -> Result<OwnedFd, String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or(addr)
    } else {
        "[::]:0".parse().unwrap_or(addr)
    };
    let s = UdpSocket::bind(bind).map_err(|e| format!("bind:{}", socket::error_name(&e)))?;
    s.connect(addr)
        .and_then(|_| s.set_nonblocking(true))
        .map_err(|e| format!("connect:{}", socket::error_name(&e)))?;
    Ok(OwnedFd::from(s))
}

struct Udp<'a> {
    ctx: &'a ThreadCtx,
    size: usize,
    depth: usize,
    flows: Vec<Flow>,
    rec: Recorder,
    out: Vec<u8>,
    expect: Vec<u8>,
    issuing: bool,
    issued_measured: u64,
    loss_ns: Nanos,
}

impl Udp<'_> {
    fn issue(&mut self, f: usize, intended: Nanos, now: Nanos, queued: bool) {
        let flow = &mut self.flows[f];
        let Some(fd) = &flow.fd else { return };
        let seq = flow.next_seq;
        flow.next_seq += 1;
        datagram(seq, self.size, &mut self.out);
        match socket::send(fd, &self.out) {
            Ok(n) => self.rec.sent_bytes(n),
            Err(e) => {
                // Counted, and the datagram is treated as sent: it will be `lost`.
                self.rec.error(&format!("send:{}", socket::error_name(&e)));
            }
        }
        flow.in_flight.push_back(Pending {
            seq,
            intended,
            sent: now,
            queued,
        });
        if self.rec.measured(intended) {
            self.issued_measured += 1;
            if let Some(q) = self.ctx.quota {
                if self.issued_measured >= q {
                    self.issuing = false;
                }
            }
        }
    }

    /// After a reply or a loss freed a slot: the next datagram of the flow.
    fn refill(&mut self, f: usize, now: Nanos, closed_loop: bool) {
        if closed_loop {
            if self.issuing {
                self.issue(f, now, now, false);
            }
        } else if let Some(intended) = self.flows[f].backlog.pop_front() {
            self.issue(f, intended, now, true);
        }
    }

    /// Reads every reply waiting on flow `f`.
    fn read(&mut self, f: usize, scratch: &mut [u8], now_of: impl Fn() -> Nanos, closed: bool) {
        loop {
            let Some(fd) = &self.flows[f].fd else { return };
            let n = match socket::recv(fd, scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    self.rec.error("refused");
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.rec.error(&format!("recv:{}", socket::error_name(&e)));
                    return;
                }
            };
            let now = now_of();
            self.rec.received_bytes(n);
            let reply = &scratch[..n];
            let flow = &mut self.flows[f];
            let pos = seq_of(reply).and_then(|s| flow.in_flight.iter().position(|p| p.seq == s));
            let Some(pos) = pos else {
                self.rec.error("late");
                continue;
            };
            let Some(p) = flow.in_flight.remove(pos) else {
                continue;
            };
            datagram(p.seq, self.size, &mut self.expect);
            if reply != self.expect.as_slice() {
                self.rec.unfinished(p.intended, now);
                self.rec.error("mismatch");
            } else {
                self.rec.complete(p.intended, p.sent, now, !p.queued);
            }
            self.refill(f, now, closed);
        }
    }

    /// Counts datagrams with no reply for longer than the loss timeout as lost.
    fn sweep(&mut self, now: Nanos, closed: bool) {
        for f in 0..self.flows.len() {
            while let Some(p) = self.flows[f].in_flight.front().copied() {
                if now.saturating_sub(p.sent) < self.loss_ns {
                    break;
                }
                self.flows[f].in_flight.pop_front();
                self.rec.unfinished(p.intended, now);
                self.rec.error("lost");
                self.refill(f, now, closed);
            }
        }
    }
}

/// Runs one UDP thread to the end of the run.
pub fn run_thread(ctx: ThreadCtx) -> ThreadResult {
    let timeline = Timeline::of(&ctx.cfg);
    let mut rec = Recorder::new(timeline.warmup_end);
    if let Err(e) = ctx.pin() {
        eprintln!("loadgen: {e}");
    }
    let depth = ctx.cfg.depth;
    let mut poller = match Poller::new(ctx.connections.min(1024)) {
        Ok(p) => p,
        Err(e) => {
            return ctx.give_up(rec, &format!("epoll:{}", socket::error_name(&e)));
        }
    };
    let mut flows = Vec::with_capacity(ctx.connections);
    for i in 0..ctx.connections {
        let fd = match open_flow(ctx.addr) {
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
        flows.push(Flow {
            fd,
            in_flight: VecDeque::with_capacity(depth),
            backlog: VecDeque::new(),
            next_seq: 0,
        });
    }
    let size = ctx.cfg.size.max(MIN_SIZE);
    let mut u = Udp {
        ctx: &ctx,
        size,
        depth,
        flows,
        rec,
        out: Vec::with_capacity(size),
        expect: Vec::with_capacity(size),
        issuing: true,
        issued_measured: 0,
        loss_ns: ctx.cfg.loss_timeout.as_nanos() as Nanos,
    };
    let mut scratch = vec![0u8; 65_536];
    let schedule = ctx.rate.and_then(|r| Schedule::new(r, ctx.phase));
    let closed = schedule.is_none();
    let n_flows = u.flows.len();

    let clock = ctx.start_together();
    let mut ticker = Ticker::new();
    let mut next_tick: u64 = 0;
    let mut next_sweep: Nanos = 0;
    let now = clock.now();
    if closed {
        for f in 0..n_flows {
            for _ in 0..depth {
                if u.issuing {
                    u.issue(f, now, now, false);
                }
            }
        }
    }
    loop {
        let now = clock.now();
        ticker.tick(now, &mut u.rec, &ctx);
        if now >= timeline.measure_end {
            u.issuing = false;
        }
        if let (Some(s), true) = (&schedule, u.issuing) {
            let due = s.ticks_due(now);
            while next_tick < due && u.issuing {
                let intended = s.intended(next_tick);
                if intended >= timeline.measure_end {
                    u.issuing = false;
                    break;
                }
                let f = (next_tick % n_flows as u64) as usize;
                if u.flows[f].in_flight.len() < u.depth && u.flows[f].backlog.is_empty() {
                    u.issue(f, intended, now, false);
                } else {
                    u.flows[f].backlog.push_back(intended);
                    if u.rec.measured(intended) {
                        u.rec.counts.queued += 1;
                        u.rec.interval_counts.queued += 1;
                    }
                }
                next_tick += 1;
            }
        }
        if now >= next_sweep {
            u.sweep(now, closed);
            next_sweep = now + SWEEP_NS;
        }
        let outstanding: usize = u
            .flows
            .iter()
            .map(|f| f.in_flight.len() + f.backlog.len())
            .sum();
        if (!u.issuing && outstanding == 0) || u.rec.open_connections == 0 {
            break;
        }
        if now >= timeline.drain_end {
            for f in 0..n_flows {
                let flow = &mut u.flows[f];
                let ages: Vec<Nanos> = flow
                    .in_flight
                    .iter()
                    .map(|p| p.intended)
                    .chain(flow.backlog.iter().copied())
                    .collect();
                flow.in_flight.clear();
                flow.backlog.clear();
                for intended in ages {
                    u.rec.unfinished(intended, now);
                    u.rec.error("lost");
                }
            }
            break;
        }
        let mut wake = ticker.next().min(timeline.drain_end).min(next_sweep);
        if u.issuing {
            wake = wake.min(timeline.measure_end);
            if let Some(s) = &schedule {
                wake = wake.min(s.intended(next_tick));
            }
        }
        let n = match poller.wait(wake.saturating_sub(now)) {
            Ok(n) => n,
            Err(err) => {
                u.rec.error(&format!("epoll:{}", socket::error_name(&err)));
                break;
            }
        };
        for i in 0..n {
            let ev = poller.event(i);
            if ev.flags & (READABLE | HANGUP) != 0 {
                u.read(ev.token as usize, &mut scratch, || clock.now(), closed);
            }
        }
    }
    let now = clock.now();
    let cpu_ns = ticker.finish(now, &mut u.rec, &ctx);
    ThreadResult {
        metrics: u.rec.total,
        counts: u.rec.counts,
        cpu_ns,
        end: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_carries_its_sequence_and_a_pattern_of_its_own() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        datagram(7, 64, &mut a);
        datagram(8, 64, &mut b);
        assert_eq!(a.len(), 64);
        assert_eq!(seq_of(&a), Some(7));
        assert_ne!(a[8..], b[8..]);
        datagram(1, 8, &mut a);
        assert_eq!(a, 1u64.to_le_bytes());
        assert_eq!(seq_of(b"short"), None);
    }
}
