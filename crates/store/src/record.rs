//! The records a store keeps, as the broker hands them over and gets them
//! back at recovery. Times are wall-clock (UNIX) so that downtime counts:
//! a session's disconnect time in seconds, a message's absolute expiry in
//! milliseconds.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Properties, Protocol, QoS, SubscriptionOptions};

/// A session's key in the store, chosen by the broker (unique among the
/// sessions stored; a new session for the same client id gets a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// An application message, stored once however many sessions hold it
/// (queue entries, in-flight entries and retained topics reference it by
/// `id`; the body goes when the last reference does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// From [`crate::Store::next_message_id`].
    pub id: u64,
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// The 5.0 publish properties kept: Payload Format Indicator, Content
    /// Type, Response Topic, Correlation Data, User Properties. Others are
    /// not stored (the expiry is `expires_at_ms`; topic alias and
    /// subscription identifiers are per hop).
    pub properties: Properties,
    /// Client id of the publisher (No Local), if any.
    pub publisher: Option<ByteString>,
    /// Absolute expiry, UNIX milliseconds (received time + Message Expiry
    /// Interval), so that time spent down counts.
    pub expires_at_ms: Option<u64>,
}

impl StoredMessage {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub client_id: ByteString,
    pub protocol: Protocol,
    /// Session Expiry Interval in seconds; `u32::MAX` never expires.
    pub expiry_interval: u32,
    /// When its last connection ended, UNIX seconds; `None` while a
    /// connection is attached. At recovery a session that was online is
    /// given the store's last commit time, and one whose
    /// `disconnected_at + expiry_interval` has passed is dropped.
    pub disconnected_at: Option<u64>,
    pub username: Option<ByteString>,
}

/// One subscription of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub filter: ByteString,
    pub options: SubscriptionOptions,
    /// 5.0 Subscription Identifier.
    pub id: Option<u32>,
}

/// How one message goes to one session (the parts of a delivery that are
/// not the message itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub msg: Arc<StoredMessage>,
    /// min(published QoS, granted QoS).
    pub qos: QoS,
    /// The RETAIN flag to send.
    pub retain: bool,
    /// 5.0 Subscription Identifiers of the matching subscriptions.
    pub sub_ids: Vec<u32>,
    /// The shared subscription (`$share/g/f`) it came through, if any.
    pub share: Option<ByteString>,
}

/// A queued message of a session, in `seq` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecord {
    /// From [`crate::Store::next_seq`]: the queue order.
    pub seq: u64,
    pub delivery: DeliveryRecord,
}

/// Where an outbound in-flight message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflightState {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish(DeliveryRecord),
    /// PUBREL sent, waiting for PUBCOMP.
    PubRel,
}

/// An outbound in-flight message of a session, by packet id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InflightRecord {
    pub pkid: u16,
    /// Send order, to resend in order after a reconnect (any increasing
    /// number, e.g. from [`crate::Store::next_seq`]).
    pub seq: u64,
    pub state: InflightState,
}

/// The will of a session: armed while its connection lives (`due_at_ms`
/// `None`), or waiting for its Will Delay Interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillRecord {
    /// The will message (its `id` is not used: a will is stored inline).
    pub msg: StoredMessage,
    /// Will Delay Interval, seconds.
    pub delay: u32,
    /// When it is due, UNIX milliseconds; `None` while the connection that
    /// set it is attached.
    pub due_at_ms: Option<u64>,
}
