//! The record layer once the handshake is done: weft opens and seals TLS 1.3 and
//! TLS 1.2 records itself, with ring's AEADs and the keys rustls hands over.
//!
//! Why not rustls's own record layer: it allocates for every record (a `Vec` for
//! each decrypted record's plaintext, a `PrefixedPayload` for each encrypted one),
//! and its API does not let a caller avoid either. Here a record is opened in place
//! in the shard's input buffer and sealed in place in its output buffer, so a
//! session in steady state allocates nothing per message.
//!
//! rustls keeps what needs its state: the handover uses
//! `dangerous_into_kernel_connection`, the API rustls provides for kernel TLS, which
//! leaves a [`KernelConnection`] that derives the next keys of a TLS 1.3 key update
//! and stores a server's session tickets. Everything else after the handshake is
//! here:
//!
//! - application data, in records of at most 16 KiB of plaintext;
//! - alerts: close_notify both ways; a peer's other fatal alerts end the session;
//!   our own fatal alert (bad_record_mac, record_overflow, unexpected_message,
//!   decode_error) is sealed before the close;
//! - TLS 1.3 post-handshake messages: KeyUpdate (the receive keys move on; when the
//!   peer asks, our KeyUpdate goes out and the send keys move on too),
//!   NewSessionTicket on a client (given to rustls), anything else is refused;
//! - the cipher's confidentiality limit: before it, TLS 1.3 renews the send keys
//!   with a KeyUpdate of our own; TLS 1.2, which cannot, ends the session.
//!
//! Not supported, and refused with unexpected_message like rustls itself does:
//! TLS 1.2 renegotiation. A post-handshake message split across records is refused
//! too (decode_error); no known peer splits a KeyUpdate or a ticket.
//!
//! ```text
//!   TLS 1.3:  17 03 03 len | AEAD(plaintext ‖ type ‖ zeros) ‖ tag   nonce = iv ⊕ seq
//!   TLS 1.2 AES-GCM:   type 03 03 len | explicit nonce (8) ‖ AEAD(plaintext) ‖ tag
//!   TLS 1.2 ChaCha20:  type 03 03 len | AEAD(plaintext) ‖ tag       nonce = iv ⊕ seq
//! ```

use std::ops::Range;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{
    AlertDescription, ConnectionTrafficSecrets, Error, ExtractedSecrets, InvalidMessage,
    PeerMisbehaved, ProtocolVersion,
};

use super::records::MAX_PLAINTEXT;

/// A record's header: content type, version, length.
const HEADER: usize = 5;
/// Every AEAD here has a 16-byte tag.
const TAG: usize = 16;
/// TLS 1.2 AES-GCM's explicit nonce, sent ahead of the ciphertext.
const EXPLICIT_NONCE: usize = 8;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;

/// Records in a row that carry no application byte (empty records, tickets, key
/// updates, warnings) before the peer is cut off: they cost work and deliver
/// nothing.
const MAX_EMPTY_RECORDS: u32 = 64;

/// Records sealed with one TLS 1.3 key before it is renewed, short of the
/// cipher's confidentiality limit (2^24 full records for AES-GCM, per rustls).
const REKEY_MARGIN: u64 = 1 << 16;

/// The side of rustls that derives keys and keeps tickets.
pub(crate) enum Kernel {
    Server(KernelConnection<ServerConnectionData>),
    Client(KernelConnection<ClientConnectionData>),
}

impl Kernel {
    fn next_secrets(&mut self, send: bool) -> Result<(u64, ConnectionTrafficSecrets), Error> {
        match (self, send) {
            (Kernel::Server(k), true) => k.update_tx_secret(),
            (Kernel::Server(k), false) => k.update_rx_secret(),
            (Kernel::Client(k), true) => k.update_tx_secret(),
            (Kernel::Client(k), false) => k.update_rx_secret(),
        }
    }
}

/// How records are framed and their nonces made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// TLS 1.3: the content type inside the encryption, the header as AAD.
    Tls13,
    /// TLS 1.2 AES-GCM: nonce = the key's 4-byte salt ‖ 8 explicit bytes sent in
    /// the record (ours are iv ⊕ seq, as rustls sends them).
    Tls12Gcm,
    /// TLS 1.2 ChaCha20-Poly1305: nonce = iv ⊕ seq, nothing explicit.
    Tls12Chacha,
}

/// One direction's key, nonce base and sequence number.
struct Keys {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Keys {
    fn new((seq, secrets): (u64, ConnectionTrafficSecrets)) -> Result<Keys, Error> {
        let (alg, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => {
                return Err(Error::General(
                    "cipher suite not supported by weft's record layer".into(),
                ))
            }
        };
        let key = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| Error::General("rustls handed over a key of the wrong size".into()))?;
        let iv = iv
            .as_ref()
            .try_into()
            .map_err(|_| Error::General("rustls handed over an IV of the wrong size".into()))?;
        Ok(Keys {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// iv ⊕ seq (big-endian, in the last eight bytes).
    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// Moves to the next record; a sequence number never wraps.
    fn advance(&mut self) -> Result<(), Error> {
        self.seq = self.seq.checked_add(1).ok_or(Error::EncryptError)?;
        Ok(())
    }
}

/// The records one key may seal (rustls's figure for the suite).
fn limit_of(suite: rustls::SupportedCipherSuite) -> u64 {
    match suite {
        rustls::SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
        rustls::SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
    }
}

/// TLS 1.2's additional data: sequence number, type, version, plaintext length.
fn tls12_aad(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = typ;
    aad[9..11].copy_from_slice(&[3, 3]);
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

/// What one opened record holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// Application data: where its plaintext lies in the slice given to `open`.
    Data(Range<usize>),
    /// Nothing for the protocol (an empty record, a ticket, a key update).
    Nothing,
    /// The peer's close_notify.
    Close,
}

/// A record opened: how many bytes of the input it took, and what it held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    pub(crate) len: usize,
    pub(crate) content: Content,
}

/// Why the session ends, and the alert the peer is owed (none when the peer sent
/// one).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) alert: Option<AlertDescription>,
}

fn failure(error: Error, alert: AlertDescription) -> Failure {
    Failure {
        error,
        alert: Some(alert),
    }
}

/// A session's record layer after the handshake.
pub(crate) struct Traffic {
    framing: Framing,
    send: Keys,
    receive: Keys,
    kernel: Kernel,
    /// Records one TLS 1.3 key may seal before it is renewed; TLS 1.2 ends there.
    rekey_at: u64,
    /// The peer asked for a key update and ours has not gone out yet.
    key_update_owed: bool,
    /// Records in a row without application data.
    empty_records: u32,
}

impl Traffic {
    /// Takes over from rustls with the keys and sequence numbers it handed over.
    pub(crate) fn new(secrets: ExtractedSecrets, kernel: Kernel) -> Result<Traffic, Error> {
        let (version, limit) = match &kernel {
            Kernel::Server(k) => (k.protocol_version(), limit_of(k.negotiated_cipher_suite())),
            Kernel::Client(k) => (k.protocol_version(), limit_of(k.negotiated_cipher_suite())),
        };
        let chacha = matches!(
            secrets.tx.1,
            ConnectionTrafficSecrets::Chacha20Poly1305 { .. }
        );
        let framing = match (version, chacha) {
            (ProtocolVersion::TLSv1_3, _) => Framing::Tls13,
            (ProtocolVersion::TLSv1_2, false) => Framing::Tls12Gcm,
            (ProtocolVersion::TLSv1_2, true) => Framing::Tls12Chacha,
            (other, _) => {
                return Err(Error::General(format!(
                    "weft's record layer does not speak {other:?}"
                )))
            }
        };
        Ok(Traffic {
            framing,
            send: Keys::new(secrets.tx)?,
            receive: Keys::new(secrets.rx)?,
            kernel,
            rekey_at: limit.saturating_sub(REKEY_MARGIN),
            key_update_owed: false,
            empty_records: 0,
        })
    }

    /// Renews the send keys (TLS 1.3) or gives up (TLS 1.2) after `records` more.
    #[cfg(test)]
    pub(crate) fn set_rekey_after(&mut self, records: u64) {
        self.rekey_at = self.send.seq + records;
    }

    /// Opens the first record in `buf` in place. `Ok(None)`: the record is not
    /// whole yet (nothing was taken).
    pub(crate) fn open(&mut self, buf: &mut [u8]) -> Result<Option<Opened>, Failure> {
        if buf.len() < HEADER {
            return Ok(None);
        }
        let typ = buf[0];
        let body_len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
        let expansion = match self.framing {
            Framing::Tls13 => 256,
            Framing::Tls12Gcm | Framing::Tls12Chacha => 2048,
        };
        if buf[1] != 3 {
            return Err(failure(
                Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion),
                AlertDescription::ProtocolVersion,
            ));
        }
        if body_len > MAX_PLAINTEXT + expansion {
            return Err(failure(
                Error::PeerSentOversizedRecord,
                AlertDescription::RecordOverflow,
            ));
        }
        let len = HEADER + body_len;
        if buf.len() < len {
            return Ok(None);
        }
        let (header, body) = buf[..len].split_at_mut(HEADER);
        let content = match self.framing {
            Framing::Tls13 => self.open_tls13(header, body)?,
            Framing::Tls12Gcm | Framing::Tls12Chacha => self.open_tls12(typ, body)?,
        };
        let content = match content {
            Content::Data(r) if !r.is_empty() => {
                self.empty_records = 0;
                Content::Data(HEADER + r.start..HEADER + r.end)
            }
            Content::Close => Content::Close,
            _ => {
                self.empty_records += 1;
                if self.empty_records > MAX_EMPTY_RECORDS {
                    return Err(failure(
                        Error::PeerMisbehaved(PeerMisbehaved::TooManyEmptyFragments),
                        AlertDescription::UnexpectedMessage,
                    ));
                }
                Content::Nothing
            }
        };
        Ok(Some(Opened { len, content }))
    }

    fn open_tls13(&mut self, header: &[u8], body: &mut [u8]) -> Result<Content, Failure> {
        if header[0] != APPLICATION_DATA {
            return Err(unexpected(
                "only application_data records are sent after a TLS 1.3 handshake",
            ));
        }
        let nonce = Nonce::assume_unique_for_key(self.receive.nonce());
        let plain_len = self
            .receive
            .key
            .open_in_place(nonce, Aad::from(header), body)
            .map_err(|_| failure(Error::DecryptError, AlertDescription::BadRecordMac))?
            .len();
        self.receive.advance().map_err(decode)?;
        // TLSInnerPlaintext: content ‖ type ‖ zero padding.
        let Some(type_at) = body[..plain_len].iter().rposition(|&b| b != 0) else {
            return Err(failure(
                Error::PeerMisbehaved(PeerMisbehaved::IllegalTlsInnerPlaintext),
                AlertDescription::UnexpectedMessage,
            ));
        };
        if type_at > MAX_PLAINTEXT {
            return Err(failure(
                Error::PeerSentOversizedRecord,
                AlertDescription::RecordOverflow,
            ));
        }
        let inner = &body[..type_at];
        match body[type_at] {
            APPLICATION_DATA => Ok(Content::Data(0..type_at)),
            ALERT => alert(inner, true),
            HANDSHAKE => self.post_handshake(inner),
            _ => Err(unexpected("unexpected content type after the handshake")),
        }
    }

    fn open_tls12(&mut self, typ: u8, body: &mut [u8]) -> Result<Content, Failure> {
        let bad_mac = || failure(Error::DecryptError, AlertDescription::BadRecordMac);
        let seq = self.receive.seq;
        let (nonce, start) = match self.framing {
            Framing::Tls12Gcm => {
                if body.len() < EXPLICIT_NONCE + TAG {
                    return Err(bad_mac());
                }
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&self.receive.iv[..4]);
                n[4..].copy_from_slice(&body[..EXPLICIT_NONCE]);
                (n, EXPLICIT_NONCE)
            }
            _ => {
                if body.len() < TAG {
                    return Err(bad_mac());
                }
                (self.receive.nonce(), 0)
            }
        };
        let aad = tls12_aad(seq, typ, body.len() - start - TAG);
        let plain_len = self
            .receive
            .key
            .open_within(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                body,
                start..,
            )
            .map_err(|_| bad_mac())?
            .len();
        self.receive.advance().map_err(decode)?;
        if plain_len > MAX_PLAINTEXT {
            return Err(failure(
                Error::PeerSentOversizedRecord,
                AlertDescription::RecordOverflow,
            ));
        }
        match typ {
            APPLICATION_DATA => Ok(Content::Data(0..plain_len)),
            ALERT => alert(&body[..plain_len], false),
            HANDSHAKE => Err(unexpected("TLS 1.2 renegotiation is not supported")),
            CHANGE_CIPHER_SPEC => Err(unexpected("change_cipher_spec after the handshake")),
            _ => Err(failure(
                Error::InvalidMessage(InvalidMessage::InvalidContentType),
                AlertDescription::UnexpectedMessage,
            )),
        }
    }

    /// TLS 1.3 handshake messages after the handshake, each whole in this record.
    fn post_handshake(&mut self, mut msgs: &[u8]) -> Result<Content, Failure> {
        while !msgs.is_empty() {
            if msgs.len() < 4 {
                return Err(split());
            }
            let typ = msgs[0];
            let len = usize::from(msgs[1]) << 16 | usize::from(msgs[2]) << 8 | usize::from(msgs[3]);
            if msgs.len() < 4 + len {
                return Err(split());
            }
            let body = &msgs[4..4 + len];
            msgs = &msgs[4 + len..];
            match (typ, &mut self.kernel) {
                (KEY_UPDATE, _) => {
                    let request = match body {
                        [0] => false,
                        [1] => true,
                        _ => {
                            return Err(failure(
                                Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate),
                                AlertDescription::DecodeError,
                            ))
                        }
                    };
                    // New keys apply from the next record: nothing may follow the
                    // KeyUpdate in this one.
                    if !msgs.is_empty() {
                        return Err(failure(
                            Error::PeerMisbehaved(PeerMisbehaved::KeyEpochWithPendingFragment),
                            AlertDescription::UnexpectedMessage,
                        ));
                    }
                    let next = self.kernel.next_secrets(false).map_err(internal)?;
                    self.receive = Keys::new(next).map_err(internal)?;
                    self.key_update_owed |= request;
                }
                (NEW_SESSION_TICKET, Kernel::Client(k)) => {
                    k.handle_new_session_ticket(body).map_err(|e| Failure {
                        error: e,
                        alert: Some(AlertDescription::DecodeError),
                    })?;
                }
                _ => {
                    return Err(unexpected(
                        "unexpected handshake message after the handshake",
                    ))
                }
            }
        }
        Ok(Content::Nothing)
    }

    /// Seals `plain` (at most 16 KiB) as application data into `out`, after the key
    /// update the peer asked for or the confidentiality limit calls for; returns
    /// how many bytes of `out` were written.
    pub(crate) fn seal_data(&mut self, plain: &[u8], out: &mut [u8]) -> Result<usize, Failure> {
        debug_assert!(plain.len() <= MAX_PLAINTEXT);
        let mut n = self.seal_key_update(out)?;
        if self.send.seq >= self.rekey_at {
            if self.framing != Framing::Tls13 {
                return Err(failure(
                    Error::EncryptError,
                    AlertDescription::InternalError,
                ));
            }
            self.key_update_owed = true;
            n += self.seal_key_update(&mut out[n..])?;
        }
        n += self.seal(APPLICATION_DATA, plain, &mut out[n..])?;
        Ok(n)
    }

    /// Seals the key update owed, if any, and moves the send keys on.
    pub(crate) fn seal_key_update(&mut self, out: &mut [u8]) -> Result<usize, Failure> {
        if !self.key_update_owed {
            return Ok(0);
        }
        self.key_update_owed = false;
        // KeyUpdate, length 1, update_not_requested.
        let n = self.seal(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
        let next = self.kernel.next_secrets(true).map_err(internal)?;
        self.send = Keys::new(next).map_err(internal)?;
        Ok(n)
    }

    /// Seals an alert (close_notify is a warning, the rest fatal).
    pub(crate) fn seal_alert(
        &mut self,
        what: AlertDescription,
        out: &mut [u8],
    ) -> Result<usize, Failure> {
        let level = if what == AlertDescription::CloseNotify {
            1
        } else {
            2
        };
        self.seal(ALERT, &[level, u8::from(what)], out)
    }

    /// Seals one record of type `typ` into `out`; returns its length.
    fn seal(&mut self, typ: u8, plain: &[u8], out: &mut [u8]) -> Result<usize, Failure> {
        let (outer, body_len, start) = match self.framing {
            Framing::Tls13 => (APPLICATION_DATA, plain.len() + 1 + TAG, HEADER),
            Framing::Tls12Gcm => (
                typ,
                EXPLICIT_NONCE + plain.len() + TAG,
                HEADER + EXPLICIT_NONCE,
            ),
            Framing::Tls12Chacha => (typ, plain.len() + TAG, HEADER),
        };
        let len = HEADER + body_len;
        let internal_error = || failure(Error::EncryptError, AlertDescription::InternalError);
        if out.len() < len {
            return Err(internal_error());
        }
        out[0] = outer;
        out[1..3].copy_from_slice(&[3, 3]);
        out[3..5].copy_from_slice(&(body_len as u16).to_be_bytes());
        let nonce = self.send.nonce();
        out[start..start + plain.len()].copy_from_slice(plain);
        let mut sealed = start + plain.len();
        let tag = match self.framing {
            Framing::Tls13 => {
                out[sealed] = typ;
                sealed += 1;
                let (header, rest) = out.split_at_mut(HEADER);
                self.send.key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&header[..]),
                    &mut rest[..sealed - HEADER],
                )
            }
            Framing::Tls12Gcm | Framing::Tls12Chacha => {
                if self.framing == Framing::Tls12Gcm {
                    out[HEADER..HEADER + EXPLICIT_NONCE].copy_from_slice(&nonce[4..]);
                }
                let aad = tls12_aad(self.send.seq, typ, plain.len());
                self.send.key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut out[start..sealed],
                )
            }
        }
        .map_err(|_| internal_error())?;
        out[sealed..sealed + TAG].copy_from_slice(tag.as_ref());
        self.send.advance().map_err(|_| internal_error())?;
        Ok(len)
    }
}

/// An alert from the peer: close_notify closes; in TLS 1.2 other warnings are
/// ignored (as rustls does), in TLS 1.3 only user_canceled is.
fn alert(body: &[u8], tls13: bool) -> Result<Content, Failure> {
    let [level, desc] = body else {
        return Err(decode(Error::InvalidMessage(
            InvalidMessage::MessageTooShort,
        )));
    };
    let desc = AlertDescription::from(*desc);
    if desc == AlertDescription::CloseNotify {
        return Ok(Content::Close);
    }
    let warning = *level == 1;
    if (warning && !tls13) || desc == AlertDescription::UserCanceled {
        return Ok(Content::Nothing);
    }
    Err(Failure {
        error: Error::AlertReceived(desc),
        alert: None,
    })
}

fn unexpected(why: &'static str) -> Failure {
    failure(
        Error::InvalidMessage(InvalidMessage::UnexpectedMessage(why)),
        AlertDescription::UnexpectedMessage,
    )
}

fn split() -> Failure {
    failure(
        Error::InvalidMessage(InvalidMessage::MessageTooShort),
        AlertDescription::DecodeError,
    )
}

fn decode(e: Error) -> Failure {
    failure(e, AlertDescription::DecodeError)
}

fn internal(e: Error) -> Failure {
    failure(e, AlertDescription::InternalError)
}
