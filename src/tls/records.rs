//! The rustls half of a TLS session: an unbuffered rustls connection (server or
//! client side) and the per-shard scratch buffers it decrypts in and encrypts into.
//!
//! rustls's unbuffered API owns no I/O buffer: it decrypts records in place in the
//! caller's input buffer and encrypts into the caller's output buffer. A shard runs
//! one callback at a time, so one input and one output buffer per shard serve all of
//! its sessions; a session keeps bytes of its own only for a record split across
//! reads, and frees them once the record is whole. An idle session holds rustls's
//! state (keys, handshake leftovers) and nothing else.

use std::cell::Cell;
use std::ops::Deref;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    EncodeError, EncodeTlsData, EncryptError, UnbufferedConnectionCommon, UnbufferedStatus,
    WriteTraffic,
};
use rustls::CommonState;

use super::traffic::{Kernel, Traffic};

/// The most plaintext one TLS record carries.
pub(crate) const MAX_PLAINTEXT: usize = 16 * 1024;

/// Room for one full record: header, plaintext, content type, tag and padding
/// (TLS 1.2's explicit nonce included).
const RECORD_ROOM: usize = MAX_PLAINTEXT + 5 + 256;

/// A session's TLS state: a rustls connection (server or client side, without
/// buffers of its own) until the handshake is done, then weft's record layer.
pub(crate) enum Session {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
    /// After the handshake: records opened and sealed by weft (`traffic.rs`).
    Traffic(Box<Traffic>),
    /// The handover to the record layer failed; rustls's connection is gone with
    /// it and the session is failing.
    HandoverFailed,
}

impl Session {
    /// Tells whether the handshake is still running.
    pub(crate) fn is_handshaking(&self) -> bool {
        match self {
            Session::Server(c) => c.is_handshaking(),
            Session::Client(c) => c.is_handshaking(),
            Session::Traffic(_) | Session::HandoverFailed => false,
        }
    }

    /// Hands the session over from rustls to weft's record layer. rustls must be
    /// done with the handshake and have nothing left to send.
    pub(crate) fn hand_over(&mut self) -> Result<(), rustls::Error> {
        let traffic = match std::mem::replace(self, Session::HandoverFailed) {
            Session::Server(c) => c
                .dangerous_into_kernel_connection()
                .and_then(|(secrets, k)| Traffic::new(secrets, Kernel::Server(k))),
            Session::Client(c) => c
                .dangerous_into_kernel_connection()
                .and_then(|(secrets, k)| Traffic::new(secrets, Kernel::Client(k))),
            other => {
                *self = other;
                return Ok(());
            }
        }?;
        *self = Session::Traffic(Box::new(traffic));
        Ok(())
    }
}

/// What the server and client sides of rustls's unbuffered API have in common: one
/// step of record processing over the caller's input buffer.
pub(crate) trait Records: Deref<Target = CommonState> {
    /// rustls's side marker (`ServerConnectionData` or `ClientConnectionData`).
    type Side;
    /// Processes records in `incoming` until rustls has something to report.
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Side>;
}

impl Records for UnbufferedConnectionCommon<ServerConnectionData> {
    type Side = ServerConnectionData;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
}

impl Records for UnbufferedConnectionCommon<ClientConnectionData> {
    type Side = ClientConnectionData;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
}

/// A shard's two scratch buffers. Each is taken out for the length of one use and
/// put back, so a nested use (never expected) finds an empty one instead of a
/// borrowed one.
#[derive(Default)]
pub(crate) struct Scratch {
    input: Cell<Vec<u8>>,
    output: Cell<Vec<u8>>,
}

impl Scratch {
    /// The input buffer, empty, with the capacity it had.
    pub(crate) fn take_input(&self) -> Vec<u8> {
        let mut v = self.input.take();
        v.clear();
        v
    }

    pub(crate) fn put_input(&self, v: Vec<u8>) {
        self.input.set(v);
    }

    /// The output buffer (its length, at least one full record, is its usable
    /// size; the contents are junk).
    pub(crate) fn take_output(&self) -> Vec<u8> {
        let mut v = self.output.take();
        if v.len() < RECORD_ROOM {
            v.resize(RECORD_ROOM, 0);
        }
        v
    }

    pub(crate) fn put_output(&self, v: Vec<u8>) {
        self.output.set(v);
    }
}

/// Encodes a handshake record into `buf` (grown if it is too small); returns its
/// length.
pub(crate) fn encode<S>(e: &mut EncodeTlsData<'_, S>, buf: &mut Vec<u8>) -> usize {
    loop {
        match e.encode(buf) {
            Ok(n) => return n,
            Err(EncodeError::InsufficientSize(s)) => buf.resize(s.required_size, 0),
            // Each state is encoded once: nothing is left to write.
            Err(EncodeError::AlreadyEncoded) => return 0,
        }
    }
}

/// Encrypts `data` (at most [`MAX_PLAINTEXT`] bytes, so one record) into `buf`;
/// returns the record's length.
pub(crate) fn encrypt<S>(
    w: &mut WriteTraffic<'_, S>,
    data: &[u8],
    buf: &mut Vec<u8>,
) -> Result<usize, EncryptError> {
    loop {
        match w.encrypt(data, buf) {
            Err(EncryptError::InsufficientSize(s)) => buf.resize(s.required_size, 0),
            other => return other,
        }
    }
}

/// Encrypts a close_notify alert into `buf`; returns its length.
pub(crate) fn close_notify<S>(w: &mut WriteTraffic<'_, S>, buf: &mut Vec<u8>) -> usize {
    loop {
        match w.queue_close_notify(buf) {
            Ok(n) => return n,
            Err(EncryptError::InsufficientSize(s)) => buf.resize(s.required_size, 0),
            Err(EncryptError::EncryptExhausted) => return 0,
        }
    }
}
