//! What each request on a shard's ring is for: the `user_data` of its SQE.
//!
//! The low byte is the kind, the rest an index: a connection's slot, a listener, a
//! waiter, or a datagram port. A connection's slot is reused only after the CQE of every request it
//! submitted (see `slot.rs`), so a completion can never reach the wrong connection.

/// A request's purpose, decoded from its `user_data`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    /// A connection's multishot receive.
    Recv(usize),
    /// A connection's send.
    Send(usize),
    /// A cancellation of a connection's requests.
    Cancel(usize),
    /// A listener's multishot accept.
    Accept(usize),
    /// A cancellation of a listener's accept.
    AcceptCancel(usize),
    /// The read of the shard's doorbell (an eventfd).
    Doorbell,
    /// A readiness poll a task waits on (a client's connect).
    Poll(usize),
    /// A cancellation of such a poll.
    PollCancel(usize),
    /// A cancellation of everything in flight (the ring's end).
    CancelAll,
    /// A datagram port's multishot receive (the index is the port's, and its
    /// buffer pool's, on this shard).
    DgramRecv(usize),
    /// One of a datagram port's sends.
    DgramSend(usize),
    /// A cancellation of a datagram port's receive.
    DgramCancel(usize),
}

const RECV: u64 = 1;
const SEND: u64 = 2;
const CANCEL: u64 = 3;
const ACCEPT: u64 = 4;
const ACCEPT_CANCEL: u64 = 5;
const DOORBELL: u64 = 6;
const POLL: u64 = 7;
const POLL_CANCEL: u64 = 8;
const CANCEL_ALL: u64 = 9;
const DGRAM_RECV: u64 = 10;
const DGRAM_SEND: u64 = 11;
const DGRAM_CANCEL: u64 = 12;

impl Op {
    pub(crate) fn encode(self) -> u64 {
        let (kind, index) = match self {
            Op::Recv(i) => (RECV, i),
            Op::Send(i) => (SEND, i),
            Op::Cancel(i) => (CANCEL, i),
            Op::Accept(i) => (ACCEPT, i),
            Op::AcceptCancel(i) => (ACCEPT_CANCEL, i),
            Op::Doorbell => (DOORBELL, 0),
            Op::Poll(i) => (POLL, i),
            Op::PollCancel(i) => (POLL_CANCEL, i),
            Op::CancelAll => (CANCEL_ALL, 0),
            Op::DgramRecv(i) => (DGRAM_RECV, i),
            Op::DgramSend(i) => (DGRAM_SEND, i),
            Op::DgramCancel(i) => (DGRAM_CANCEL, i),
        };
        ((index as u64) << 8) | kind
    }

    pub(crate) fn decode(user_data: u64) -> Option<Op> {
        let i = (user_data >> 8) as usize;
        Some(match user_data & 0xff {
            RECV => Op::Recv(i),
            SEND => Op::Send(i),
            CANCEL => Op::Cancel(i),
            ACCEPT => Op::Accept(i),
            ACCEPT_CANCEL => Op::AcceptCancel(i),
            DOORBELL => Op::Doorbell,
            POLL => Op::Poll(i),
            POLL_CANCEL => Op::PollCancel(i),
            CANCEL_ALL => Op::CancelAll,
            DGRAM_RECV => Op::DgramRecv(i),
            DGRAM_SEND => Op::DgramSend(i),
            DGRAM_CANCEL => Op::DgramCancel(i),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips() {
        for op in [
            Op::Recv(0),
            Op::Send(7),
            Op::Cancel(1 << 30),
            Op::Accept(3),
            Op::AcceptCancel(3),
            Op::Doorbell,
            Op::Poll(12),
            Op::PollCancel(12),
            Op::CancelAll,
            Op::DgramRecv(2),
            Op::DgramSend(2),
            Op::DgramCancel(2),
        ] {
            assert_eq!(Op::decode(op.encode()), Some(op));
        }
        assert_eq!(Op::decode(0), None);
    }
}
