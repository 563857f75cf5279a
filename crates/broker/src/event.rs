//! Broker events for the dashboard, SSE, rules and metrics. Sent on a
//! bounded broadcast channel: a lagging receiver loses events, the broker
//! never waits.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Protocol, QoS, ReasonCode};

/// Why a message was not delivered to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The subscriber's queue was full.
    QueueFull,
    /// A QoS 0 message still queued when its session went offline (offline
    /// sessions keep QoS 1/2 only). QoS 0 messages routed to a session that
    /// is already offline are skipped without being counted.
    Offline,
    /// Larger than the subscriber's Maximum Packet Size.
    TooLarge,
    /// Its Message Expiry Interval passed while it waited.
    Expired,
    /// `authorize_deliver` said no.
    NotAuthorized,
}

/// Something that happened in the broker.
#[derive(Debug, Clone)]
pub enum Event {
    ClientConnected {
        client_id: Arc<str>,
        username: Option<Arc<str>>,
        remote_addr: Option<SocketAddr>,
        listener: Arc<str>,
        protocol: Protocol,
        clean_start: bool,
        keep_alive: u16,
        session_present: bool,
    },
    ClientDisconnected {
        client_id: Arc<str>,
        /// The DISCONNECT reason the client sent or the reason the broker
        /// closed the connection for.
        reason: ReasonCode,
        /// False when the client sent DISCONNECT itself.
        abnormal: bool,
    },
    Subscribed {
        client_id: Arc<str>,
        filter: ByteString,
        qos: QoS,
    },
    Unsubscribed {
        client_id: Arc<str>,
        filter: ByteString,
    },
    MessagePublished {
        topic: ByteString,
        qos: QoS,
        retain: bool,
        payload_len: usize,
        payload: Bytes,
        /// `None` for messages published from inside midge.
        client_id: Option<Arc<str>>,
    },
    MessageDropped {
        client_id: Arc<str>,
        reason: DropReason,
    },
}
