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

/// The most plaintext one TLS record carries.
pub(crate) const MAX_PLAINTEXT: usize = 16 * 1024;

/// Room for one full record: header, plaintext, content type, tag and padding
/// (TLS 1.2's explicit nonce included).
const RECORD_ROOM: usize = MAX_PLAINTEXT + 5 + 256;

/// A rustls connection, server or client side, without buffers of its own.
pub(crate) enum Session {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

impl Session {
    /// rustls's view of the session (version, suite, ALPN, peer certificates).
    pub(crate) fn common(&self) -> &CommonState {
        match self {
            Session::Server(c) => c,
            Session::Client(c) => c,
        }
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

    /// The output buffer (its length is its usable size; the contents are junk).
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
