//! Broker values to store records and back. Times become wall-clock on the
//! way in (an `Instant` does not survive a restart): a message's expiry is
//! stored as an absolute UNIX time, so time spent down counts, and comes
//! back as the interval that remains.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use midge_store::{DeliveryRecord, SessionRecord, StoredMessage, WillRecord};

use crate::message::Message;
use crate::session::{Delivery, Session, SessionState, WillState};

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The record of `msg` with store id `id`, as of `now` (= `now_ms`).
pub(crate) fn stored_message(msg: &Message, id: u64, now_ms: u64, now: Instant) -> StoredMessage {
    let mut properties = msg.properties.clone();
    // Per hop, or kept as `expires_at_ms`.
    properties.message_expiry_interval = None;
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    StoredMessage {
        id,
        topic: msg.topic.clone(),
        payload: msg.payload.clone(),
        qos: msg.qos,
        retain: msg.retain,
        properties,
        publisher: msg.publisher.as_deref().map(ByteString::from),
        expires_at_ms: msg
            .expires_at()
            .map(|at| now_ms.saturating_add(millis(at.saturating_duration_since(now)))),
    }
}

/// The message of a stored record as of `now_ms`: its expiry interval is
/// what remains (0 once passed, so that it is not sent), counted from now.
/// It keeps `stored`, so that writes about it reference the same record.
pub(crate) fn message_from(stored: &Arc<StoredMessage>, now_ms: u64) -> Message {
    let mut properties = stored.properties.clone();
    properties.message_expiry_interval = stored.expires_at_ms.map(|at| {
        let left = at.saturating_sub(now_ms);
        u32::try_from(left.div_ceil(1000)).unwrap_or(u32::MAX)
    });
    Message {
        topic: stored.topic.clone(),
        payload: stored.payload.clone(),
        qos: stored.qos,
        retain: stored.retain,
        properties,
        publisher: stored.publisher.as_deref().map(Arc::from),
        received_at: Instant::now(),
        stored: OnceLock::from(stored.clone()),
    }
}

pub(crate) fn delivery_record(d: &Delivery, msg: Arc<StoredMessage>) -> DeliveryRecord {
    DeliveryRecord {
        msg,
        qos: d.qos,
        retain: d.retain,
        sub_ids: d.sub_ids.clone(),
        share: d.share.as_deref().map(ByteString::from),
    }
}

pub(crate) fn delivery_from(r: &DeliveryRecord, msg: Arc<Message>) -> Delivery {
    Delivery {
        msg,
        qos: r.qos,
        retain: r.retain,
        sub_ids: r.sub_ids.clone(),
        share: r.share.as_deref().map(Arc::from),
    }
}

/// The session's record; `disconnected_at` (UNIX seconds) is `None` while a
/// connection is attached.
pub(crate) fn session_record(
    session: &Session,
    st: &SessionState,
    disconnected_at: Option<u64>,
) -> SessionRecord {
    SessionRecord {
        client_id: ByteString::from(&*session.client_id),
        protocol: st.protocol,
        expiry_interval: st.expiry_interval,
        disconnected_at,
        username: session.username().as_deref().map(ByteString::from),
    }
}

/// A will as stored. A will's Message Expiry Interval counts from when it
/// is published, not from now, so its record keeps the interval itself (in
/// milliseconds) where a message keeps its absolute expiry; wills are
/// stored inline and never purged by expiry, so nothing else reads it.
pub(crate) fn will_record(w: &WillState, due_at_ms: Option<u64>) -> WillRecord {
    let mut msg = stored_message(&w.msg, 0, 0, w.msg.received_at);
    msg.expires_at_ms = w
        .msg
        .properties
        .message_expiry_interval
        .map(|s| u64::from(s) * 1000);
    WillRecord {
        msg,
        delay: w.delay,
        due_at_ms,
    }
}

/// The will message of a record, to publish (its expiry counts from then).
pub(crate) fn will_message(w: &WillRecord) -> Message {
    let m = &w.msg;
    let mut properties = m.properties.clone();
    properties.message_expiry_interval = m
        .expires_at_ms
        .map(|ms| u32::try_from(ms / 1000).unwrap_or(u32::MAX));
    let mut msg = Message::new(m.topic.clone(), m.payload.clone(), m.qos, m.retain);
    msg.properties = properties;
    msg.publisher = m.publisher.as_deref().map(Arc::from);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use midge_proto::QoS;

    #[test]
    fn expiry_counts_across_the_store() {
        let mut m = Message::new("t", Bytes::from_static(b"x"), QoS::AtLeastOnce, false);
        m.properties.message_expiry_interval = Some(10);
        m.properties.content_type = Some("text/plain".into());
        let now = m.received_at + Duration::from_secs(3);
        let s = Arc::new(stored_message(&m, 7, 1_000_000, now));
        assert_eq!(s.expires_at_ms, Some(1_007_000));
        assert_eq!(s.properties.message_expiry_interval, None);
        // 2.5 s later (the broker was down): 4.5 s left, sent as 5.
        let back = message_from(&s, 1_002_500);
        assert_eq!(back.properties.message_expiry_interval, Some(5));
        assert_eq!(back.properties.content_type.as_deref(), Some("text/plain"));
        assert_eq!(back.stored.get().map(|s| s.id), Some(7));
        // Passed: 0, so it is expired at once.
        let late = message_from(&s, 2_000_000);
        assert!(late.is_expired(Instant::now()));
    }

    #[test]
    fn will_keeps_its_interval_not_an_absolute_time() {
        let mut m = Message::new("w", Bytes::from_static(b"bye"), QoS::AtLeastOnce, true);
        m.properties.message_expiry_interval = Some(30);
        m.publisher = Some(Arc::from("c"));
        let w = WillState { msg: m, delay: 5 };
        let r = will_record(&w, Some(123));
        let back = will_message(&r);
        assert_eq!(back.properties.message_expiry_interval, Some(30));
        assert_eq!(back.publisher.as_deref(), Some("c"));
        assert!(back.retain);
        assert_eq!((r.delay, r.due_at_ms), (5, Some(123)));
    }
}
