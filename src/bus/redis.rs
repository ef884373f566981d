//! The bus's two Redis connections as weft client protocols: a subscriber
//! (`SUBSCRIBE room`, then `message` pushes) and a publisher (`PUBLISH`, integer
//! replies), each under a `ReconnectingClientFactory`.
//!
//! ```text
//!  Subscriber: connected ─► SUBSCRIBE room ─► ["subscribe", room, 1] ─► up
//!              ["message", room, payload] ─► Bridge::message
//!  Publisher:  connected ─► Bridge::publisher_up (queued lines go out)
//!              :N replies ─► ignored; lost ─► Bridge::publisher_down
//!  Both: an error reply is logged; a RESP error closes (and so reconnects);
//!        a graceful stop ends the retrying.
//! ```

use std::rc::Rc;

use crate::address::Address;
use crate::client::{
    connect, ClientFactory, ConnectError, Connector, Reconnect, ReconnectingClientFactory,
};
use crate::protocol::Protocol;
use crate::protocols::resp::{encode_command, RespDecoder, RespValue};
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::transport::Transport;

use super::bridge::Bridge;
use super::BUS_MAX_RETRY_DELAY;

/// Which of the two connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Subscriber,
    Publisher,
}

/// One Redis connection of the bridge.
struct RedisLink {
    role: Role,
    bridge: Rc<Bridge>,
    reconnect: Reconnect,
    decoder: RespDecoder,
}

impl RedisLink {
    fn value(&mut self, v: RespValue) {
        match (self.role, v) {
            (_, RespValue::Error(e)) => {
                tracing::warn!("bus: redis answered: {}", String::from_utf8_lossy(&e));
            }
            (Role::Subscriber, RespValue::Array(items)) => {
                let kind = items.first().and_then(RespValue::as_bytes);
                match (kind, items.get(2)) {
                    (Some(b"message"), Some(RespValue::Bulk(payload))) => {
                        self.bridge.message(payload);
                    }
                    (Some(b"subscribe"), _) => {
                        self.reconnect.reset_delay();
                        self.bridge.subscriber_up();
                        tracing::info!("bus: subscribed to {}", self.bridge.url());
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl Protocol for RedisLink {
    fn connection_made(&mut self, t: &mut Transport) {
        match self.role {
            Role::Subscriber => {
                t.write(&encode_command(&[
                    b"SUBSCRIBE",
                    self.bridge.url().room.as_bytes(),
                ]));
            }
            Role::Publisher => {
                self.reconnect.reset_delay();
                tracing::info!("bus: publishing to {}", self.bridge.url());
                self.bridge.publisher_up(t.handle());
            }
        }
    }

    fn data_received(&mut self, data: &[u8], t: &mut Transport) {
        self.decoder.feed(data);
        loop {
            match self.decoder.next_event() {
                Ok(Some(v)) => self.value(v),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("bus: closing the {:?} connection: {e}", self.role);
                    t.lose_connection();
                    return;
                }
            }
        }
    }

    fn connection_lost(&mut self, _reason: Reason) {
        if self.role == Role::Publisher {
            self.bridge.publisher_down();
        }
    }
}

/// Builds a [`RedisLink`] per attempt and ends the retrying at a graceful stop.
struct LinkFactory {
    role: Role,
    bridge: Rc<Bridge>,
    reconnect: Reconnect,
}

impl ClientFactory for LinkFactory {
    type Protocol = RedisLink;

    fn build_protocol(&mut self, _addr: &Address) -> Option<RedisLink> {
        Some(RedisLink {
            role: self.role,
            bridge: Rc::clone(&self.bridge),
            reconnect: self.reconnect.clone(),
            decoder: RespDecoder::new(),
        })
    }

    fn client_connection_failed(&mut self, _c: &Connector, reason: &ConnectError) {
        if matches!(reason, ConnectError::ShuttingDown) || self.bridge.stopping.get() {
            self.reconnect.stop_trying();
            return;
        }
        tracing::warn!(
            "bus: cannot reach {} ({:?}): {reason}",
            self.bridge.url(),
            self.role
        );
    }

    fn client_connection_lost(&mut self, _c: &Connector, reason: &Reason) {
        if matches!(reason, Reason::Shutdown { .. }) || self.bridge.stopping.get() {
            self.reconnect.stop_trying();
            return;
        }
        tracing::warn!(
            "bus: lost {} ({:?}): {reason}",
            self.bridge.url(),
            self.role
        );
    }
}

/// Connects the bridge's subscriber and publisher from this shard.
pub(crate) fn start(bridge: &Rc<Bridge>, reactor: &Reactor) {
    for role in [Role::Subscriber, Role::Publisher] {
        let reconnect = Reconnect::new().max_delay(BUS_MAX_RETRY_DELAY.as_secs_f64());
        let factory = ReconnectingClientFactory::with_policy(
            reconnect.clone(),
            LinkFactory {
                role,
                bridge: Rc::clone(bridge),
                reconnect,
            },
        );
        let connector = connect(reactor, bridge.url().endpoint(), factory);
        bridge.connectors.borrow_mut().push(connector);
    }
}

impl Bridge {
    /// Connects to the bus from the shard this runs on (the subscriber and the
    /// publisher); they reconnect by themselves until [`Bridge::stop`] or a
    /// graceful stop of the server.
    pub fn start(self: &Rc<Self>, reactor: &Reactor) {
        start(self, reactor);
    }
}
