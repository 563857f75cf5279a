//! The application message routed through the broker: one allocation shared
//! by every subscriber (`Arc<Message>`), payload shared as one `Bytes`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Properties, QoS};
use midge_store::StoredMessage;

/// A message to route: what a PUBLISH carries, plus where it came from.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// 5.0 publish properties passed through to subscribers (Payload Format
    /// Indicator, Message Expiry Interval, Content Type, Response Topic,
    /// Correlation Data, User Properties). Topic Alias and Subscription
    /// Identifiers are per-hop and are not kept here.
    pub properties: Properties,
    /// Client id of the publisher (for No Local and events); `None` for
    /// messages published from inside midge.
    pub publisher: Option<Arc<str>>,
    /// When the broker received it: the Message Expiry Interval counts from
    /// here.
    pub received_at: Instant,
    /// Its record in the durable store, made the first time a persistent
    /// session needs it (or it is retained) and shared by every write that
    /// references it: the body is stored once. Empty without a store.
    pub(crate) stored: OnceLock<Arc<StoredMessage>>,
}

impl Message {
    pub fn new(
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            properties: Properties::default(),
            publisher: None,
            received_at: Instant::now(),
            stored: OnceLock::new(),
        }
    }

    /// A copy that shares no memory with the buffer it was decoded from.
    /// Decoded strings and payloads are slices of the connection's read
    /// buffer, which they keep alive; a message stored for long (retained)
    /// is detached once so that it pins only its own bytes.
    pub fn detached(&self) -> Message {
        fn s(v: &ByteString) -> ByteString {
            ByteString::from(&**v)
        }
        fn b(v: &Bytes) -> Bytes {
            Bytes::copy_from_slice(v)
        }
        let p = &self.properties;
        Message {
            topic: s(&self.topic),
            payload: b(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties: Properties {
                content_type: p.content_type.as_ref().map(s),
                response_topic: p.response_topic.as_ref().map(s),
                correlation_data: p.correlation_data.as_ref().map(b),
                user_properties: p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (s(k), s(v)))
                    .collect(),
                ..p.clone()
            },
            publisher: self.publisher.clone(),
            received_at: self.received_at,
            stored: OnceLock::new(),
        }
    }

    /// When the message expires, if it has a Message Expiry Interval.
    pub fn expires_at(&self) -> Option<Instant> {
        self.properties
            .message_expiry_interval
            .map(|s| self.received_at + Duration::from_secs(u64::from(s)))
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// The Message Expiry Interval to send at `now`: the remaining seconds
    /// (rounded up so that a message still alive never says 0).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let at = self.expires_at()?;
        let left = at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(u32::try_from(secs).unwrap_or(u32::MAX).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_expiry_counts_down() {
        let mut m = Message::new("a", Bytes::new(), QoS::AtMostOnce, false);
        assert_eq!(m.remaining_expiry(m.received_at), None);
        m.properties.message_expiry_interval = Some(10);
        let t0 = m.received_at;
        assert_eq!(m.remaining_expiry(t0), Some(10));
        assert_eq!(
            m.remaining_expiry(t0 + Duration::from_millis(3500)),
            Some(7)
        );
        assert!(!m.is_expired(t0 + Duration::from_secs(9)));
        assert!(m.is_expired(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn detached_copies_bytes() {
        let buf = Bytes::from_static(b"topicpayload");
        let mut m = Message::new("t", buf.slice(5..), QoS::AtMostOnce, true);
        m.properties.user_properties = vec![("k".into(), "v".into())];
        let d = m.detached();
        assert_eq!(d.payload, m.payload);
        assert_ne!(d.payload.as_ptr(), m.payload.as_ptr());
        assert_eq!(d.properties, m.properties);
    }
}
