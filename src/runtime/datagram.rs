//! Datagram ports on a shard's ring: the engine side of `crate::datagram`.
//!
//! ```text
//!  port i (one per datagram endpoint per shard; UNIX ones on shard 0 only)
//!   ├─ socket (SO_REUSEPORT group for UDP), protocol instance, transport
//!   ├─ buffer pool i on the ring: buffers of 16 (io_uring_recvmsg_out) + 128 (name)
//!   │  + max_packet_size bytes, so a longer datagram is cut by the kernel
//!   │  (MSG_TRUNC: counted, logged once)
//!   ├─ Op::DgramRecv(i): one multishot RecvMsg, re-armed when it ends
//!   │     CQE ─► RecvMsgOut::parse ─► datagram_received(payload, addr) in place
//!   │          ─► the buffer goes straight back to the ring
//!   └─ sends: the transport's outbox fills during the turn; at the turn's end it
//!      is swapped with the empty `flying` outbox and each datagram becomes one
//!      Op::DgramSend(i) a SEND with its destination (one datagram) or a SendMsg
//!                       (a GSO run) whose msghdr and iovec live in `msgs`/`iovs`;
//!      nothing of `flying` is touched until its last send's CQE, then it is
//!      cleared (capacity kept) and the next batch may go
//! ```
//!
//! No allocation per datagram in steady state: the sender's address is held
//! inline, the payload is borrowed from the ring's buffer, and the outboxes,
//! `msgs` and `iovs` keep their capacity.
//!
//! Panics: `datagram_received`, `connection_refused` and `stop_protocol` run under
//! `catch_unwind`; a panic is logged with the shard, counted in
//! `ShardStats::panics`, and the port keeps serving (Twisted logs and swallows an
//! exception from `datagramReceived`). Writes made before the panic still go.
//!
//! Shutdown: a quiesce hook stops every port at once: the receive is cancelled,
//! `stop_protocol` runs, a UNIX socket file is removed. The socket is closed when
//! the shard ends, after the ring has reaped its last request.

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Instant;

use io_uring::opcode;
use io_uring::types::{Fd, RecvMsgOut};
use socket2::{SockAddr, SockAddrStorage, Socket};

use crate::datagram::outbox::Outbox;
use crate::datagram::{DatagramAddress, DatagramProtocol, DatagramTransport};
use crate::runtime::ring::op::Op;
use crate::runtime::ring::Completion;
use crate::runtime::shard::{guarded, Shard};
use crate::runtime::ShardStats;

/// Bytes of `struct io_uring_recvmsg_out` at the start of every received buffer.
const RECVMSG_OUT: usize = 16;
/// Room for the sender's address (`sizeof(struct sockaddr_storage)`).
const NAME_ROOM: usize = 128;

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a GSO send, at level SOL_UDP.
const UDP_SEGMENT: libc::c_int = 103;
/// The most datagrams one GSO send carries (the kernel's UDP_MAX_SEGMENTS).
const MAX_SEGMENTS: usize = 64;
/// The most bytes one GSO send carries (an IP packet's payload, with room for the
/// UDP and IPv6 headers).
const MAX_GSO_BYTES: usize = 65_000;

/// One send of a batch: `count` datagrams from item `first`, each `segment` bytes
/// (the last may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Group {
    first: usize,
    count: usize,
    segment: usize,
}

/// Splits a batch into sends: a run of datagrams to one address, all of one size
/// (the last may be shorter), becomes one GSO send when `gso` allows.
fn group_sends(batch: &Outbox, gso: bool, out: &mut Vec<Group>) {
    let items = batch.items();
    let mut k = 0;
    while k < items.len() {
        let head = &items[k];
        let mut count = 1;
        let mut total = head.len;
        if gso && head.len > 0 {
            while k + count < items.len() && count < MAX_SEGMENTS {
                let next = &items[k + count];
                if next.to != head.to
                    || next.len > head.len
                    || next.len == 0
                    || total + next.len > MAX_GSO_BYTES
                {
                    break;
                }
                count += 1;
                total += next.len;
                if next.len < head.len {
                    break; // a shorter datagram ends the run
                }
            }
        }
        out.push(Group {
            first: k,
            count,
            segment: head.len,
        });
        k += count;
    }
}

/// A send's `user_data` index: the port in the low 16 bits, the send above.
fn send_tag(port: usize, send: usize) -> usize {
    port | (send << 16)
}

fn split_send_tag(tag: usize) -> (usize, usize) {
    (tag & 0xffff, tag >> 16)
}

/// Whether the port's multishot receive is on the ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Recv {
    Idle,
    Armed,
}

/// One datagram port of this shard.
pub(crate) struct Port {
    socket: Rc<Socket>,
    /// The index of this port, of its ops and of its buffer pool on the ring.
    index: usize,
    bgid: u16,
    /// The receive's msghdr: only its name and control lengths matter to the
    /// kernel; boxed so that its address is stable while the receive is armed.
    recv_hdr: Box<libc::msghdr>,
    recv: Recv,
    protocol: Box<dyn DatagramProtocol>,
    transport: DatagramTransport,
    /// The batch being sent: untouched until `sends` is back to zero.
    flying: Outbox,
    /// The batch's sends: each a run of datagrams (one, or several for GSO).
    groups: Vec<Group>,
    msgs: Vec<libc::msghdr>,
    iovs: Vec<libc::iovec>,
    /// Room for each send's UDP_SEGMENT control message (8-aligned).
    ctrl: Vec<[u64; 4]>,
    sends: usize,
    /// Whether runs of same-size datagrams to one peer go as one GSO send.
    gso: bool,
    stopped: bool,
    truncation_logged: bool,
    error_logged: bool,
    /// Drops already added to the shard's counter.
    dropped_seen: u64,
    /// A UNIX socket file to remove at stop.
    unlink: Option<PathBuf>,
}

/// One received datagram, parsed out of its buffer.
#[derive(Debug)]
pub(crate) struct Received<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) from: Option<SockAddr>,
    /// The datagram was longer than the buffer had room for.
    pub(crate) truncated: bool,
}

/// Parses what a multishot RecvMsg wrote into a buffer (`buf` is the `result`
/// bytes of the CQE) for a receive made with `hdr`.
pub(crate) fn parse_received<'a>(buf: &'a [u8], hdr: &libc::msghdr) -> Option<Received<'a>> {
    let out = RecvMsgOut::parse(buf, hdr).ok()?;
    // `payload_data` borrows from `out`: take the same bytes from `buf` instead.
    let start = RECVMSG_OUT + hdr.msg_namelen as usize + hdr.msg_controllen;
    let len = out.payload_data().len();
    Some(Received {
        payload: &buf[start..start + len],
        from: sockaddr_from(out.name_data()),
        truncated: out.is_payload_truncated(),
    })
}

/// Builds a socket address from the raw bytes the kernel wrote as a msg_name.
fn sockaddr_from(name: &[u8]) -> Option<SockAddr> {
    let family_len = std::mem::size_of::<libc::sa_family_t>();
    if name.len() < family_len || name.len() > std::mem::size_of::<libc::sockaddr_storage>() {
        return None;
    }
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `storage` is a zeroed `sockaddr_storage` and `name` is no longer than
    // it (checked above), so the copy stays in bounds; the bytes are a socket
    // address the kernel wrote, of length `name.len()`, so the first `name.len()`
    // bytes of the storage are initialised as `SockAddr::new` requires.
    unsafe {
        std::ptr::copy_nonoverlapping(
            name.as_ptr(),
            (&mut storage as *mut SockAddrStorage).cast::<u8>(),
            name.len(),
        );
        Some(SockAddr::new(storage, name.len() as libc::socklen_t))
    }
}

/// The shape of a port's buffer pool for `max_packet_size`: (count, size).
fn pool_shape(max_packet_size: usize) -> (usize, usize) {
    let size = RECVMSG_OUT + NAME_ROOM + max_packet_size;
    let count = ((4 << 20) / size).clamp(16, 256);
    let count = if count.is_power_of_two() {
        count
    } else {
        count.next_power_of_two() / 2
    };
    (count, size)
}

impl Shard {
    /// Starts one datagram port on this shard: its pool, its protocol's
    /// `start_protocol`, its receive.
    pub(crate) fn serve_datagram(
        self: &Rc<Self>,
        protocol: Box<dyn DatagramProtocol>,
        sock: Socket,
        max_packet_size: usize,
        unlink: Option<PathBuf>,
    ) -> Result<(), String> {
        let host = sock
            .local_addr()
            .map_err(|e| format!("datagram port: {e}"))?;
        let unix = host.is_unix();
        let (count, size) = pool_shape(max_packet_size);
        let index = self
            .ring
            .borrow_mut()
            .add_datagram_pool(count, size)
            .map_err(|e| format!("datagram port: cannot set up its buffers: {e}"))?;
        let (bgid, _) = self.ring.borrow().datagram_pool_shape(index);
        // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
        let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        hdr.msg_namelen = NAME_ROOM as libc::socklen_t;
        let socket = Rc::new(sock);
        let transport = DatagramTransport::new(
            Rc::clone(&socket),
            DatagramAddress::from_raw(host),
            max_packet_size,
            Some(self.reactor.clone()),
        );
        let first = self.datagrams.borrow().is_empty();
        {
            let mut ports = self.datagrams.borrow_mut();
            debug_assert_eq!(ports.len(), index, "a port's index is its pool's");
            ports.push(Port {
                socket,
                index,
                bgid,
                recv_hdr: hdr,
                recv: Recv::Idle,
                protocol,
                transport,
                flying: Outbox::default(),
                groups: Vec::new(),
                msgs: Vec::new(),
                iovs: Vec::new(),
                ctrl: Vec::new(),
                sends: 0,
                gso: !unix,
                stopped: false,
                truncation_logged: false,
                error_logged: false,
                dropped_seen: 0,
                unlink,
            });
        }
        if first {
            let weak: Weak<Shard> = Rc::downgrade(self);
            self.on_quiesce(Box::new(move |_deadline: Instant| {
                if let Some(s) = weak.upgrade() {
                    s.stop_datagrams();
                }
                Box::pin(async {})
            }));
        }
        let started = {
            let mut ports = self.datagrams.borrow_mut();
            let p = &mut ports[index];
            guarded(|| p.protocol.start_protocol(&mut p.transport))
        };
        if let Err(msg) = started {
            return Err(format!(
                "start_protocol panicked on shard {}: {msg}",
                self.index
            ));
        }
        self.arm_datagram_recv(index);
        Ok(())
    }

    fn arm_datagram_recv(&self, i: usize) {
        let mut ports = self.datagrams.borrow_mut();
        let p = &mut ports[i];
        if p.stopped || self.stopping.get() || p.recv != Recv::Idle {
            return;
        }
        let hdr: *const libc::msghdr = &*p.recv_hdr;
        let sqe = opcode::RecvMsgMulti::new(Fd(p.socket.as_raw_fd()), hdr, p.bgid)
            .build()
            .user_data(Op::DgramRecv(i).encode());
        // SAFETY: the SQE names the port's socket and its boxed msghdr; both are
        // owned by the port in `Shard::datagrams`, which is dropped after the ring
        // (the ring is the shard's first field, and its drop reaps every request),
        // and neither is replaced while the port lives.
        unsafe { self.ring.borrow_mut().push(&sqe) };
        p.recv = Recv::Armed;
    }

    /// A completion of port `i`'s multishot receive.
    pub(crate) fn on_datagram(self: &Rc<Self>, i: usize, c: Completion) {
        if c.result >= 0 {
            if let Some(bid) = c.buffer() {
                let (ptr, len) = self.ring.borrow().datagram_bytes(i, bid, c.result as usize);
                // SAFETY: the buffer is held by this completion: the kernel does not
                // write into it until `datagram_give_back` below, and the ring (which
                // owns the pool) outlives this call, since `self` holds the shard.
                // The slice is not used after the give-back.
                let buf = unsafe { std::slice::from_raw_parts(ptr, len) };
                self.deliver_datagram(i, buf);
                self.ring.borrow_mut().datagram_give_back(i, bid);
            }
        } else {
            self.datagram_failed(i, -c.result);
        }
        if !c.more() {
            self.datagrams.borrow_mut()[i].recv = Recv::Idle;
            self.arm_datagram_recv(i);
        }
    }

    fn deliver_datagram(&self, i: usize, buf: &[u8]) {
        let mut ports = self.datagrams.borrow_mut();
        let p = &mut ports[i];
        if p.stopped {
            return;
        }
        let Some(got) = parse_received(buf, &p.recv_hdr) else {
            tracing::error!(shard = self.index, "a datagram buffer that does not parse");
            return;
        };
        let s = &self.stats;
        ShardStats::add(&s.datagrams_in, 1);
        ShardStats::add(&s.bytes_in, got.payload.len() as u64);
        if got.truncated {
            ShardStats::add(&s.datagrams_truncated, 1);
            if !p.truncation_logged {
                p.truncation_logged = true;
                tracing::warn!(
                    shard = self.index,
                    port = %p.transport.host(),
                    max_packet_size = p.transport.max_packet_size(),
                    "a datagram longer than maxPacketSize was truncated (logged once per port; counted in datagrams_truncated)"
                );
            }
        }
        let from =
            DatagramAddress::from_raw(got.from.unwrap_or_else(|| p.transport.host().raw().clone()));
        let Port {
            protocol,
            transport,
            ..
        } = p;
        let r = guarded(|| protocol.datagram_received(got.payload, &from, transport));
        drop(ports);
        if let Err(msg) = r {
            self.report_panic("datagram_received", &msg);
        }
    }

    fn note_drops(&self, p: &mut Port) {
        let d = p.transport.dropped();
        if d > p.dropped_seen {
            ShardStats::add(&self.stats.datagrams_dropped, d - p.dropped_seen);
            p.dropped_seen = d;
        }
    }

    /// A receive or send of port `i` failed with `errno`.
    fn datagram_failed(&self, i: usize, errno: i32) {
        match errno {
            libc::ECANCELED => {}
            // Counted by the ring (`ring_no_buffers`); the receive is re-armed.
            libc::ENOBUFS => {}
            libc::ECONNREFUSED => self.refused(i),
            _ => {
                ShardStats::add(&self.stats.datagram_errors, 1);
                let mut ports = self.datagrams.borrow_mut();
                let p = &mut ports[i];
                if !p.error_logged {
                    p.error_logged = true;
                    tracing::warn!(
                        shard = self.index,
                        port = %p.transport.host(),
                        "datagram port: {} (logged once per port; counted in datagram_errors)",
                        io::Error::from_raw_os_error(errno)
                    );
                }
            }
        }
    }

    /// The connected peer refused a datagram: `connection_refused`.
    fn refused(&self, i: usize) {
        let mut ports = self.datagrams.borrow_mut();
        let p = &mut ports[i];
        if p.stopped {
            return;
        }
        let Port {
            protocol,
            transport,
            ..
        } = p;
        let r = guarded(|| protocol.connection_refused(transport));
        drop(ports);
        if let Err(msg) = r {
            self.report_panic("connection_refused", &msg);
        }
    }

    /// A completion of one of a port's sends; `tag` names the port and the send.
    pub(crate) fn on_datagram_sent(&self, tag: usize, result: i32) {
        let (i, k) = split_send_tag(tag);
        let segments = {
            let mut ports = self.datagrams.borrow_mut();
            let p = &mut ports[i];
            let segments = p.groups.get(k).map_or(1, |g| g.count);
            p.sends -= 1;
            if p.sends == 0 {
                p.flying.clear();
            }
            if result < 0 && segments > 1 && matches!(-result, libc::EIO | libc::EINVAL) {
                // This path cannot segment (no checksum offload): send one by one.
                p.gso = false;
                tracing::warn!(
                    shard = self.index,
                    port = %p.transport.host(),
                    "UDP GSO refused ({}); this port sends datagrams one by one from now on",
                    io::Error::from_raw_os_error(-result)
                );
            }
            segments
        };
        if result >= 0 {
            ShardStats::add(&self.stats.datagrams_out, segments as u64);
            ShardStats::add(&self.stats.bytes_out, result as u64);
            if segments > 1 {
                ShardStats::add(&self.stats.datagrams_gso, segments as u64);
            }
        } else {
            self.datagram_failed(i, -result);
        }
    }

    /// Sends what every port's protocol wrote this turn (once a port's previous
    /// batch is done).
    pub(crate) fn flush_datagrams(&self) {
        let mut ports = self.datagrams.borrow_mut();
        if ports.is_empty() {
            return;
        }
        let mut ring = self.ring.borrow_mut();
        for p in ports.iter_mut() {
            self.note_drops(p);
            if p.sends > 0 || p.transport.outbox().is_empty() {
                continue;
            }
            std::mem::swap(&mut *p.transport.outbox(), &mut p.flying);
            p.groups.clear();
            p.iovs.clear();
            p.ctrl.clear();
            p.msgs.clear();
            group_sends(&p.flying, p.gso, &mut p.groups);
            for g in &p.groups {
                let first = &p.flying.items()[g.first];
                let last = &p.flying.items()[g.first + g.count - 1];
                // The group's datagrams lie back to back in the outbox's bytes.
                let base = p.flying.bytes(first).as_ptr();
                p.iovs.push(libc::iovec {
                    iov_base: base as *mut libc::c_void,
                    iov_len: last.start + last.len - first.start,
                });
                p.ctrl.push([0u64; 4]);
            }
            // `iovs` and `ctrl` are complete: they do not move again until the
            // batch is done, so the msghdrs may point into them.
            for (k, g) in p.groups.iter().enumerate() {
                // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
                let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
                if let Some(to) = &p.flying.items()[g.first].to {
                    m.msg_name = to.as_ptr() as *mut libc::c_void;
                    m.msg_namelen = to.len();
                }
                m.msg_iov = &mut p.iovs[k];
                m.msg_iovlen = 1;
                if g.count > 1 {
                    let ctrl = &mut p.ctrl[k];
                    m.msg_control = ctrl.as_mut_ptr().cast();
                    // SAFETY: CMSG_SPACE only computes a size.
                    m.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
                    // SAFETY: `ctrl` is 32 bytes, 8-aligned, at least CMSG_SPACE(2)
                    // (24 on Linux), so CMSG_FIRSTHDR returns a pointer into it with
                    // room for the header and its 2 data bytes.
                    unsafe {
                        let c = libc::CMSG_FIRSTHDR(&m);
                        (*c).cmsg_level = libc::SOL_UDP;
                        (*c).cmsg_type = UDP_SEGMENT;
                        (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
                        std::ptr::write_unaligned(
                            libc::CMSG_DATA(c).cast::<u16>(),
                            g.segment as u16,
                        );
                    }
                }
                p.msgs.push(m);
            }
            let fd = p.socket.as_raw_fd();
            for (k, (m, g)) in p.msgs.iter().zip(&p.groups).enumerate() {
                // A lone datagram goes as a `sendto`-style SEND (Linux 6.0): the
                // kernel then copies no msghdr in. A GSO run needs its control
                // message, so a SENDMSG.
                let sqe = if g.count == 1 {
                    opcode::Send::new(
                        Fd(fd),
                        p.iovs[k].iov_base as *const u8,
                        p.iovs[k].iov_len as u32,
                    )
                    .dest_addr(m.msg_name as *const libc::sockaddr)
                    .dest_addr_len(m.msg_namelen)
                    .build()
                } else {
                    opcode::SendMsg::new(Fd(fd), m).build()
                }
                .user_data(Op::DgramSend(send_tag(p.index, k)).encode());
                // SAFETY: the msghdr, its iovec, control and address, and the bytes
                // they name all live in `p.msgs`, `p.iovs`, `p.ctrl` and `p.flying`,
                // which are not touched until this batch's last send completes
                // (`sends` counts them; `flush_datagrams` skips a port with sends in
                // flight), and the port outlives the ring (see `arm_datagram_recv`).
                unsafe { ring.push(&sqe) };
                p.sends += 1;
            }
        }
    }

    /// Stops every datagram port of this shard (shutdown): no more callbacks.
    pub(crate) fn stop_datagrams(&self) {
        let n = self.datagrams.borrow().len();
        for i in 0..n {
            let r = {
                let mut ports = self.datagrams.borrow_mut();
                let p = &mut ports[i];
                if p.stopped {
                    continue;
                }
                p.stopped = true;
                p.transport.close();
                if p.recv == Recv::Armed {
                    self.ring
                        .borrow_mut()
                        .cancel(Op::DgramRecv(i), Op::DgramCancel(i));
                }
                if let Some(path) = p.unlink.take() {
                    let _ = std::fs::remove_file(path);
                }
                guarded(|| p.protocol.stop_protocol())
            };
            if let Err(msg) = r {
                self.report_panic("stop_protocol", &msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> libc::msghdr {
        // SAFETY: an all-zero msghdr is valid.
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_namelen = NAME_ROOM as libc::socklen_t;
        h
    }

    /// A buffer as the kernel fills it: the recvmsg_out header, the name field
    /// (NAME_ROOM bytes), then the payload.
    fn buffer(name: &SockAddr, payload: &[u8], full_len: u32, flags: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&name.len().to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&full_len.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        let mut field = vec![0u8; NAME_ROOM];
        // SAFETY: `as_ptr` points at a sockaddr_storage of at least `len` bytes.
        let raw =
            unsafe { std::slice::from_raw_parts(name.as_ptr().cast::<u8>(), name.len() as usize) };
        field[..raw.len()].copy_from_slice(raw);
        b.extend_from_slice(&field);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn a_received_ipv4_datagram_gives_its_sender_and_payload() {
        let from: SockAddr = "127.0.0.1:4242"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        let b = buffer(&from, b"hello", 5, 0);
        let got = parse_received(&b, &hdr()).unwrap();
        assert_eq!(got.payload, b"hello");
        assert_eq!(
            got.from.unwrap().as_socket(),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert!(!got.truncated);
    }

    #[test]
    fn an_ipv6_sender_and_an_empty_datagram_parse() {
        let from: SockAddr = "[::1]:7".parse::<std::net::SocketAddr>().unwrap().into();
        let b = buffer(&from, b"", 0, 0);
        let got = parse_received(&b, &hdr()).unwrap();
        assert_eq!(got.payload, b"");
        assert_eq!(
            got.from.unwrap().as_socket(),
            Some("[::1]:7".parse().unwrap())
        );
    }

    #[test]
    fn a_truncated_datagram_is_flagged() {
        let from: SockAddr = "127.0.0.1:1"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        let b = buffer(&from, b"abcd", 9000, libc::MSG_TRUNC as u32);
        let got = parse_received(&b, &hdr()).unwrap();
        assert_eq!(got.payload, b"abcd");
        assert!(got.truncated);
    }

    #[test]
    fn a_unix_sender_keeps_its_path() {
        let from = SockAddr::unix("/tmp/client.sock").unwrap();
        let b = buffer(&from, b"x", 1, 0);
        let got = parse_received(&b, &hdr()).unwrap();
        assert_eq!(
            got.from.unwrap().as_pathname(),
            Some(std::path::Path::new("/tmp/client.sock"))
        );
    }

    #[test]
    fn a_buffer_shorter_than_its_header_is_refused() {
        assert!(parse_received(&[0u8; 20], &hdr()).is_none());
    }

    fn batch(items: &[(&[u8], Option<&str>)]) -> Outbox {
        let mut o = Outbox::default();
        for (data, to) in items {
            let to = to.map(|a| SockAddr::from(a.parse::<std::net::SocketAddr>().unwrap()));
            assert!(o.push(data, to));
        }
        o
    }

    fn groups(o: &Outbox, gso: bool) -> Vec<(usize, usize, usize)> {
        let mut g = Vec::new();
        group_sends(o, gso, &mut g);
        g.iter().map(|g| (g.first, g.count, g.segment)).collect()
    }

    #[test]
    fn runs_of_one_size_to_one_peer_become_one_gso_send() {
        let a = Some("127.0.0.1:1");
        let b = Some("127.0.0.1:2");
        let o = batch(&[
            (&[1; 100], a),
            (&[2; 100], a),
            (&[3; 40], a), // shorter: ends the run
            (&[4; 100], a),
            (&[5; 100], b), // another peer
            (&[6; 100], b),
            (&[], b), // empty datagrams go alone
        ]);
        assert_eq!(
            groups(&o, true),
            vec![(0, 3, 100), (3, 1, 100), (4, 2, 100), (6, 1, 0)]
        );
        assert_eq!(groups(&o, false).len(), 7);
    }

    #[test]
    fn a_gso_send_stops_at_64_segments_and_64_kib() {
        let items: Vec<(&[u8], Option<&str>)> = vec![(&[0u8; 10][..], None); 100];
        let o = batch(&items);
        assert_eq!(groups(&o, true), vec![(0, 64, 10), (64, 36, 10)]);
        let big = vec![0u8; 30_000];
        let items: Vec<(&[u8], Option<&str>)> = vec![(&big[..], None); 3];
        let o = batch(&items);
        assert_eq!(groups(&o, true), vec![(0, 2, 30_000), (2, 1, 30_000)]);
    }

    #[test]
    fn send_tags_round_trip() {
        assert_eq!(split_send_tag(send_tag(3, 1000)), (3, 1000));
        assert_eq!(split_send_tag(send_tag(0, 0)), (0, 0));
    }

    #[test]
    fn pool_shapes_fit_the_packet_size() {
        assert_eq!(pool_shape(8192), (256, 8192 + 144));
        let (count, size) = pool_shape(65_536);
        assert!(count.is_power_of_two() && count >= 16);
        assert_eq!(size, 65_536 + 144);
    }
}
