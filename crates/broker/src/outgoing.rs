//! The PUBLISH packets the broker sends, in their common shape: no
//! properties to send (MQTT 3.x, or 5.0 with no message properties, no
//! subscription identifier and no topic alias). Those are written straight
//! from the shared message into the write buffer: no `Packet` value is
//! built (a 5.0 `Properties` is some 400 bytes to fill and move) and no
//! reference count is touched, so one delivery costs a header and two
//! copies (topic and payload). Every other shape goes through
//! midge-proto's encoder; the bytes are the same either way (tested).

use bytes::{BufMut, BytesMut};
use midge_proto::{varint_len, write_varint, Properties, Protocol, QoS, MAX_REMAINING_LENGTH};

use crate::session::Delivery;

/// What [`encode_plain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoded {
    /// Written: this many bytes.
    Written(usize),
    /// Longer than the client's Maximum Packet Size: nothing written.
    TooLarge,
    /// Not the plain shape (or not encodable): use the full encoder.
    NotPlain,
}

/// Writes the PUBLISH of `d` into `out` if it has the plain shape; the
/// caller has checked that no topic alias applies. `max_out` is the
/// client's Maximum Packet Size.
pub(crate) fn encode_plain(
    out: &mut BytesMut,
    protocol: Protocol,
    d: &Delivery,
    pkid: u16,
    dup: bool,
    max_out: usize,
) -> Encoded {
    let v5 = protocol.is_v5();
    let msg = &*d.msg;
    if v5 && (!d.sub_ids.is_empty() || !no_properties(&msg.properties)) {
        return Encoded::NotPlain;
    }
    let topic = msg.topic.as_bytes();
    let qos = d.qos != QoS::AtMostOnce;
    // The full encoder reports these (an empty topic needs an alias; a QoS
    // 1/2 message needs a packet id).
    if topic.is_empty() || topic.len() > usize::from(u16::MAX) || (qos && pkid == 0) {
        return Encoded::NotPlain;
    }
    let remaining = 2 + topic.len() + if qos { 2 } else { 0 } + usize::from(v5) + msg.payload.len();
    if remaining > MAX_REMAINING_LENGTH {
        return Encoded::NotPlain;
    }
    let total = 1 + varint_len(remaining as u32) + remaining;
    if total > max_out {
        return Encoded::TooLarge;
    }
    out.reserve(total);
    let mut byte1 = 0x30 | ((d.qos as u8) << 1) | u8::from(d.retain);
    if dup && qos {
        byte1 |= 0x08;
    }
    out.put_u8(byte1);
    write_varint(out, remaining as u32);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic);
    if qos {
        out.put_u16(pkid);
    }
    if v5 {
        // Property length 0.
        out.put_u8(0);
    }
    out.put_slice(&msg.payload);
    Encoded::Written(total)
}

/// True when none of the properties is set. Written out field by field (a
/// few loads, no `Properties::default()` to build and compare), and with
/// no `..`, so that a property added to midge-proto fails to compile here
/// rather than being silently left out of the fast path's check.
fn no_properties(p: &Properties) -> bool {
    let Properties {
        payload_format_indicator,
        message_expiry_interval,
        content_type,
        response_topic,
        correlation_data,
        subscription_identifiers,
        session_expiry_interval,
        assigned_client_identifier,
        server_keep_alive,
        authentication_method,
        authentication_data,
        request_problem_information,
        will_delay_interval,
        request_response_information,
        response_information,
        server_reference,
        reason_string,
        receive_maximum,
        topic_alias_maximum,
        topic_alias,
        maximum_qos,
        retain_available,
        user_properties,
        maximum_packet_size,
        wildcard_subscription_available,
        subscription_identifier_available,
        shared_subscription_available,
    } = p;
    payload_format_indicator.is_none()
        && message_expiry_interval.is_none()
        && content_type.is_none()
        && response_topic.is_none()
        && correlation_data.is_none()
        && subscription_identifiers.is_empty()
        && session_expiry_interval.is_none()
        && assigned_client_identifier.is_none()
        && server_keep_alive.is_none()
        && authentication_method.is_none()
        && authentication_data.is_none()
        && request_problem_information.is_none()
        && will_delay_interval.is_none()
        && request_response_information.is_none()
        && response_information.is_none()
        && server_reference.is_none()
        && reason_string.is_none()
        && receive_maximum.is_none()
        && topic_alias_maximum.is_none()
        && topic_alias.is_none()
        && maximum_qos.is_none()
        && retain_available.is_none()
        && user_properties.is_empty()
        && maximum_packet_size.is_none()
        && wildcard_subscription_available.is_none()
        && subscription_identifier_available.is_none()
        && shared_subscription_available.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use midge_proto::{encode, Packet, Publish};
    use std::sync::Arc;

    fn delivery(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Delivery {
        Delivery {
            msg: Arc::new(Message::new(
                topic,
                Bytes::copy_from_slice(payload),
                qos,
                retain,
            )),
            qos,
            retain,
            sub_ids: Vec::new(),
            share: None,
        }
    }

    fn reference(d: &Delivery, protocol: Protocol, pkid: u16, dup: bool) -> BytesMut {
        let p = Packet::Publish(Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: d.msg.topic.clone(),
            pkid,
            payload: d.msg.payload.clone(),
            properties: Properties::default(),
        });
        let mut b = BytesMut::new();
        encode(&p, protocol, &mut b).unwrap();
        b
    }

    #[test]
    fn same_bytes_as_the_full_encoder() {
        let big = [7u8; 200];
        for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for (retain, dup) in [(false, false), (true, false), (false, true), (true, true)] {
                    for payload in [&b""[..], &b"hello"[..], &big[..]] {
                        let d = delivery("a/b/c", payload, qos, retain);
                        let pkid = if qos == QoS::AtMostOnce { 0 } else { 513 };
                        let mut out = BytesMut::from(&b"xy"[..]);
                        let r = encode_plain(&mut out, protocol, &d, pkid, dup, usize::MAX);
                        let want = reference(&d, protocol, pkid, dup);
                        assert_eq!(r, Encoded::Written(want.len()));
                        assert_eq!(&out[2..], &want[..], "{protocol:?} {qos:?} {retain} {dup}");
                    }
                }
            }
        }
    }

    #[test]
    fn other_shapes_go_to_the_full_encoder() {
        let mut out = BytesMut::new();
        let mut d = delivery("t", b"x", QoS::AtMostOnce, false);
        d.sub_ids = vec![3];
        assert_eq!(
            encode_plain(&mut out, Protocol::V5, &d, 0, false, usize::MAX),
            Encoded::NotPlain
        );
        // Subscription identifiers are a 5.0 thing: 3.1.1 ignores them.
        assert!(matches!(
            encode_plain(&mut out, Protocol::V3_1_1, &d, 0, false, usize::MAX),
            Encoded::Written(_)
        ));
        let mut m = Message::new("t", Bytes::from_static(b"x"), QoS::AtMostOnce, false);
        m.properties.message_expiry_interval = Some(10);
        let d = Delivery {
            msg: Arc::new(m),
            ..delivery("t", b"x", QoS::AtMostOnce, false)
        };
        out.clear();
        assert_eq!(
            encode_plain(&mut out, Protocol::V5, &d, 0, false, usize::MAX),
            Encoded::NotPlain
        );
        assert!(out.is_empty());
        let d = delivery("t", b"x", QoS::AtLeastOnce, false);
        assert_eq!(
            encode_plain(&mut out, Protocol::V5, &d, 0, false, usize::MAX),
            Encoded::NotPlain,
            "QoS 1 without a packet id"
        );
        let d = delivery("", b"x", QoS::AtMostOnce, false);
        assert_eq!(
            encode_plain(&mut out, Protocol::V5, &d, 0, false, usize::MAX),
            Encoded::NotPlain,
            "empty topic"
        );
    }

    #[test]
    fn maximum_packet_size_is_honoured() {
        let d = delivery("t", &[0u8; 100], QoS::AtMostOnce, false);
        let mut out = BytesMut::new();
        // 1 + 1 + (2 + 1 + 1 + 100) = 106 bytes in 5.0.
        assert_eq!(
            encode_plain(&mut out, Protocol::V5, &d, 0, false, 105),
            Encoded::TooLarge
        );
        assert!(out.is_empty());
        assert_eq!(
            encode_plain(&mut out, Protocol::V5, &d, 0, false, 106),
            Encoded::Written(106)
        );
    }

    #[test]
    fn no_properties_sees_every_field() {
        assert!(no_properties(&Properties::default()));
        let p = Properties {
            shared_subscription_available: Some(1),
            ..Properties::default()
        };
        assert!(!no_properties(&p));
        let mut p = Properties::default();
        p.user_properties.push(("k".into(), "v".into()));
        assert!(!no_properties(&p));
    }
}
