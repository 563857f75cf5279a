//! Byte-exact vectors for every packet type and protocol level, written by
//! hand from the field layouts of the MQTT 3.1, 3.1.1 and 5.0
//! specifications. Each vector is decoded (must give the packet and consume
//! every byte) and the packet encoded (must give the same bytes, with
//! `encoded_len` equal to their count). A few `decode_only` vectors cover
//! longer-than-needed 5.0 forms that the encoder shortens.

use bytes::{Bytes, BytesMut};
use midge_proto::{
    decode, encode, encoded_len, Auth, ConnAck, Connect, Disconnect, Packet, Properties, Protocol,
    PubResp, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

use Protocol::{V3_1, V3_1_1, V5};

const ALL: [Protocol; 3] = [V3_1, V3_1_1, V5];

fn both_ways(protocol: Protocol, bytes: &[u8], packet: Packet) {
    decode_only(protocol, bytes, &packet);
    let mut out = BytesMut::new();
    assert_eq!(encode(&packet, protocol, &mut out), Ok(()), "{packet:?}");
    assert_eq!(&out[..], bytes, "{protocol:?} encode of {packet:?}");
    assert_eq!(encoded_len(&packet, protocol), bytes.len(), "{packet:?}");
}

fn decode_only(protocol: Protocol, bytes: &[u8], packet: &Packet) {
    let mut buf = BytesMut::from(bytes);
    assert_eq!(
        decode(&mut buf, protocol, usize::MAX).as_ref(),
        Ok(packet),
        "{protocol:?} decode of {bytes:02x?}"
    );
    assert!(buf.is_empty(), "bytes left after {packet:?}");
}

fn props(f: impl FnOnce(&mut Properties)) -> Properties {
    let mut p = Properties::default();
    f(&mut p);
    p
}

fn publish(qos: QoS, topic: &str, pkid: u16, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        pkid,
        payload: Bytes::from_static(payload),
        properties: Properties::default(),
    }
}

fn sub(filter: &str, qos: QoS) -> Subscription {
    Subscription {
        filter: filter.into(),
        options: SubscriptionOptions {
            qos,
            ..Default::default()
        },
    }
}

#[test]
fn connect_v3_1_minimal() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x11,
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name
        0x03, // level
        0x02, // clean session
        0x00, 0x3C, // keep alive 60
        0x00, 0x03, b'a', b'b', b'c', // client id
    ];
    let c = Connect {
        protocol: V3_1,
        clean_start: true,
        keep_alive: 60,
        client_id: "abc".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    both_ways(V3_1, &bytes, Packet::Connect(Box::new(c.clone())));
    // CONNECT carries its own level: the connection's guess does not matter.
    both_ways(V5, &bytes, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v3_1_1_with_will_and_credentials() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x1C,
        0x00, 0x04, b'M', b'Q', b'T', b'T',
        0x04,
        0xEE, // user, password, will retain, will QoS 1, will, clean
        0x00, 0x0A,
        0x00, 0x02, b'i', b'd',
        0x00, 0x01, b'w', // will topic
        0x00, 0x02, b'b', b'y', // will payload
        0x00, 0x01, b'u', // user name
        0x00, 0x02, b'p', b'w', // password
    ];
    let c = Connect {
        protocol: V3_1_1,
        clean_start: true,
        keep_alive: 10,
        client_id: "id".into(),
        will: Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"by"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"pw")),
        properties: Properties::default(),
    };
    both_ways(V3_1_1, &bytes, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v5_with_properties_and_empty_client_id() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x15,
        0x00, 0x04, b'M', b'Q', b'T', b'T',
        0x05,
        0x02,
        0x00, 0x00,
        0x08, // property length
        0x11, 0x00, 0x00, 0x00, 0x78, // session expiry 120
        0x21, 0x00, 0x10, // receive maximum 16
        0x00, 0x00, // empty client id
    ];
    let c = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 0,
        client_id: "".into(),
        will: None,
        username: None,
        password: None,
        properties: props(|p| {
            p.session_expiry_interval = Some(120);
            p.receive_maximum = Some(16);
        }),
    };
    both_ways(V5, &bytes, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_v5_will_properties_and_password_without_user() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x1E,
        0x00, 0x04, b'M', b'Q', b'T', b'T',
        0x05,
        0x54, // password, will QoS 2, will
        0x00, 0x05,
        0x00, // no properties
        0x00, 0x01, b'c',
        0x07, // will property length
        0x01, 0x01, // payload format indicator 1
        0x18, 0x00, 0x00, 0x00, 0x0A, // will delay 10
        0x00, 0x01, b't',
        0x00, 0x00, // empty will payload
        0x00, 0x01, b'x', // password (allowed without user name in 5.0)
    ];
    let c = Connect {
        protocol: V5,
        clean_start: false,
        keep_alive: 5,
        client_id: "c".into(),
        will: Some(Will {
            topic: "t".into(),
            payload: Bytes::new(),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: props(|p| {
                p.payload_format_indicator = Some(1);
                p.will_delay_interval = Some(10);
            }),
        }),
        username: None,
        password: Some(Bytes::from_static(b"x")),
        properties: Properties::default(),
    };
    both_ways(V5, &bytes, Packet::Connect(Box::new(c)));
}

#[test]
fn connack_every_version() {
    let ack = |session_present, reason| {
        Packet::ConnAck(ConnAck {
            session_present,
            reason,
            properties: Properties::default(),
        })
    };
    // 3.1: the first byte is reserved and written as 0.
    both_ways(
        V3_1,
        &[0x20, 0x02, 0x00, 0x00],
        ack(false, ReasonCode::Success),
    );
    both_ways(
        V3_1,
        &[0x20, 0x02, 0x00, 0x05],
        ack(false, ReasonCode::NotAuthorized),
    );
    both_ways(
        V3_1_1,
        &[0x20, 0x02, 0x01, 0x00],
        ack(true, ReasonCode::Success),
    );
    both_ways(
        V3_1_1,
        &[0x20, 0x02, 0x00, 0x04],
        ack(false, ReasonCode::BadUserNameOrPassword),
    );
    both_ways(
        V3_1_1,
        &[0x20, 0x02, 0x00, 0x01],
        ack(false, ReasonCode::UnsupportedProtocolVersion),
    );
    both_ways(
        V5,
        &[0x20, 0x03, 0x00, 0x00, 0x00],
        ack(false, ReasonCode::Success),
    );
    both_ways(
        V5,
        &[0x20, 0x03, 0x00, 0x87, 0x00],
        ack(false, ReasonCode::NotAuthorized),
    );
    both_ways(
        V5,
        &[0x20, 0x03, 0x00, 0x84, 0x00],
        ack(false, ReasonCode::UnsupportedProtocolVersion),
    );
    #[rustfmt::skip]
    let with_props = [
        0x20, 0x0A, 0x01, 0x00,
        0x07,
        0x12, 0x00, 0x02, b'i', b'd', // assigned client identifier
        0x24, 0x01, // maximum QoS 1
    ];
    both_ways(
        V5,
        &with_props,
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason: ReasonCode::Success,
            properties: props(|p| {
                p.assigned_client_identifier = Some("id".into());
                p.maximum_qos = Some(1);
            }),
        }),
    );
}

#[test]
fn connack_v3_maps_v5_reasons_to_return_codes() {
    let p = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::ServerBusy,
        properties: Properties::default(),
    });
    let mut out = BytesMut::new();
    assert_eq!(encode(&p, V3_1_1, &mut out), Ok(()));
    assert_eq!(&out[..], &[0x20, 0x02, 0x00, 0x03]);
}

#[test]
fn publish_v3() {
    for v in [V3_1, V3_1_1] {
        both_ways(
            v,
            &[0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'],
            Packet::Publish(publish(QoS::AtMostOnce, "a/b", 0, b"hi")),
        );
        let mut p = publish(QoS::AtLeastOnce, "t", 10, b"x");
        p.dup = true;
        p.retain = true;
        both_ways(
            v,
            &[0x3B, 0x06, 0x00, 0x01, b't', 0x00, 0x0A, b'x'],
            Packet::Publish(p),
        );
        both_ways(
            v,
            &[0x34, 0x05, 0x00, 0x01, b't', 0x12, 0x34],
            Packet::Publish(publish(QoS::ExactlyOnce, "t", 0x1234, b"")),
        );
    }
}

#[test]
fn publish_v5() {
    both_ways(
        V5,
        &[0x30, 0x05, 0x00, 0x01, b't', 0x00, b'p'],
        Packet::Publish(publish(QoS::AtMostOnce, "t", 0, b"p")),
    );
    #[rustfmt::skip]
    let bytes = [
        0x32, 0x1D,
        0x00, 0x01, b't',
        0x00, 0x01, // packet id
        0x16, // property length 22
        0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry 60
        0x03, 0x00, 0x01, b'j', // content type
        0x0B, 0x80, 0x01, // subscription identifier 128
        0x23, 0x00, 0x01, // topic alias 1
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property
        b'p',
    ];
    let mut p = publish(QoS::AtLeastOnce, "t", 1, b"p");
    p.properties = props(|p| {
        p.message_expiry_interval = Some(60);
        p.content_type = Some("j".into());
        p.subscription_identifiers = vec![128];
        p.topic_alias = Some(1);
        p.user_properties = vec![("k".into(), "v".into())];
    });
    both_ways(V5, &bytes, Packet::Publish(p));
    // Empty topic with a topic alias.
    let mut p = publish(QoS::AtMostOnce, "", 0, b"z");
    p.properties.topic_alias = Some(7);
    both_ways(
        V5,
        &[0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07, b'z'],
        Packet::Publish(p),
    );
}

#[test]
fn publish_encode_drops_dup_and_pkid_on_qos0() {
    let mut p = publish(QoS::AtMostOnce, "t", 99, b"");
    p.dup = true;
    let mut out = BytesMut::new();
    assert_eq!(encode(&Packet::Publish(p), V3_1_1, &mut out), Ok(()));
    assert_eq!(&out[..], &[0x30, 0x03, 0x00, 0x01, b't']);
}

#[test]
fn pub_acks_v3() {
    for v in [V3_1, V3_1_1] {
        both_ways(
            v,
            &[0x40, 0x02, 0x00, 0x07],
            Packet::PubAck(PubResp::new(7)),
        );
        both_ways(
            v,
            &[0x50, 0x02, 0x00, 0x07],
            Packet::PubRec(PubResp::new(7)),
        );
        both_ways(
            v,
            &[0x62, 0x02, 0x00, 0x07],
            Packet::PubRel(PubResp::new(7)),
        );
        both_ways(
            v,
            &[0x70, 0x02, 0xFF, 0xFF],
            Packet::PubComp(PubResp::new(0xFFFF)),
        );
    }
}

#[test]
fn pub_acks_v5_short_and_long_forms() {
    let with = |reason, properties| PubResp {
        pkid: 7,
        reason,
        properties,
    };
    both_ways(
        V5,
        &[0x40, 0x02, 0x00, 0x07],
        Packet::PubAck(PubResp::new(7)),
    );
    both_ways(
        V5,
        &[0x40, 0x03, 0x00, 0x07, 0x10],
        Packet::PubAck(with(
            ReasonCode::NoMatchingSubscribers,
            Properties::default(),
        )),
    );
    both_ways(
        V5,
        &[0x50, 0x03, 0x00, 0x07, 0x97],
        Packet::PubRec(with(ReasonCode::QuotaExceeded, Properties::default())),
    );
    both_ways(
        V5,
        &[0x62, 0x03, 0x00, 0x07, 0x92],
        Packet::PubRel(with(
            ReasonCode::PacketIdentifierNotFound,
            Properties::default(),
        )),
    );
    both_ways(
        V5,
        &[0x70, 0x02, 0x00, 0x07],
        Packet::PubComp(PubResp::new(7)),
    );
    both_ways(
        V5,
        &[
            0x40, 0x0A, 0x00, 0x07, 0x80, 0x06, 0x1F, 0x00, 0x03, b'b', b'a', b'd',
        ],
        Packet::PubAck(with(
            ReasonCode::UnspecifiedError,
            props(|p| p.reason_string = Some("bad".into())),
        )),
    );
    // Success with an explicit empty property block: shortened on encode.
    decode_only(
        V5,
        &[0x40, 0x04, 0x00, 0x07, 0x00, 0x00],
        &Packet::PubAck(PubResp::new(7)),
    );
    decode_only(
        V5,
        &[0x70, 0x03, 0x00, 0x07, 0x00],
        &Packet::PubComp(PubResp::new(7)),
    );
}

#[test]
fn subscribe_v3() {
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x0C, 0x00, 0x0A,
        0x00, 0x03, b'a', b'/', b'#', 0x01,
        0x00, 0x01, b'+', 0x02,
    ];
    for v in [V3_1, V3_1_1] {
        both_ways(
            v,
            &bytes,
            Packet::Subscribe(Subscribe {
                pkid: 10,
                filters: vec![sub("a/#", QoS::AtLeastOnce), sub("+", QoS::ExactlyOnce)],
                properties: Properties::default(),
            }),
        );
    }
}

#[test]
fn subscribe_v5_options_and_identifier() {
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x09, 0x00, 0x0A,
        0x02, 0x0B, 0x05, // subscription identifier 5
        0x00, 0x01, b'a',
        0x2D, // retain handling 2, retain as published, no local, QoS 1
    ];
    both_ways(
        V5,
        &bytes,
        Packet::Subscribe(Subscribe {
            pkid: 10,
            filters: vec![Subscription {
                filter: "a".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            }],
            properties: props(|p| p.subscription_identifiers = vec![5]),
        }),
    );
}

#[test]
fn suback_every_version() {
    for v in [V3_1, V3_1_1] {
        both_ways(
            v,
            &[0x90, 0x05, 0x00, 0x0A, 0x00, 0x01, 0x80],
            Packet::SubAck(SubAck {
                pkid: 10,
                reasons: vec![
                    ReasonCode::Success,
                    ReasonCode::GrantedQoS1,
                    ReasonCode::UnspecifiedError,
                ],
                properties: Properties::default(),
            }),
        );
    }
    both_ways(
        V5,
        &[0x90, 0x08, 0x00, 0x0A, 0x00, 0x00, 0x01, 0x02, 0x87, 0xA2],
        Packet::SubAck(SubAck {
            pkid: 10,
            reasons: vec![
                ReasonCode::Success,
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS2,
                ReasonCode::NotAuthorized,
                ReasonCode::WildcardSubscriptionsNotSupported,
            ],
            properties: Properties::default(),
        }),
    );
    // A 5.0 failure reason becomes 0x80 for a 3.1.1 client.
    let p = Packet::SubAck(SubAck {
        pkid: 1,
        reasons: vec![ReasonCode::TopicFilterInvalid],
        properties: Properties::default(),
    });
    let mut out = BytesMut::new();
    assert_eq!(encode(&p, V3_1_1, &mut out), Ok(()));
    assert_eq!(&out[..], &[0x90, 0x03, 0x00, 0x01, 0x80]);
}

#[test]
fn unsubscribe_every_version() {
    let bytes = [
        0xA2, 0x0A, 0x00, 0x0B, 0x00, 0x01, b'a', 0x00, 0x03, b'b', b'/', b'+',
    ];
    for v in [V3_1, V3_1_1] {
        both_ways(
            v,
            &bytes,
            Packet::Unsubscribe(Unsubscribe {
                pkid: 11,
                filters: vec!["a".into(), "b/+".into()],
                properties: Properties::default(),
            }),
        );
    }
    #[rustfmt::skip]
    let v5 = [
        0xA2, 0x0B, 0x00, 0x0B,
        0x05, 0x26, 0x00, 0x00, 0x00, 0x00, // user property ("", "")
        0x00, 0x01, b'a',
    ];
    both_ways(
        V5,
        &v5,
        Packet::Unsubscribe(Unsubscribe {
            pkid: 11,
            filters: vec!["a".into()],
            properties: props(|p| p.user_properties = vec![("".into(), "".into())]),
        }),
    );
}

#[test]
fn unsuback_every_version() {
    for v in [V3_1, V3_1_1] {
        both_ways(
            v,
            &[0xB0, 0x02, 0x00, 0x0B],
            Packet::UnsubAck(UnsubAck {
                pkid: 11,
                reasons: vec![],
                properties: Properties::default(),
            }),
        );
    }
    both_ways(
        V5,
        &[0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11],
        Packet::UnsubAck(UnsubAck {
            pkid: 11,
            reasons: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
            properties: Properties::default(),
        }),
    );
}

#[test]
fn pings_every_version() {
    for v in ALL {
        both_ways(v, &[0xC0, 0x00], Packet::PingReq);
        both_ways(v, &[0xD0, 0x00], Packet::PingResp);
    }
}

#[test]
fn disconnect_every_version() {
    let normal = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
    for v in ALL {
        both_ways(v, &[0xE0, 0x00], normal.clone());
    }
    both_ways(
        V5,
        &[0xE0, 0x01, 0x04],
        Packet::Disconnect(Disconnect::new(ReasonCode::DisconnectWithWillMessage)),
    );
    #[rustfmt::skip]
    let bytes = [
        0xE0, 0x0B, 0x8E,
        0x09,
        0x11, 0x00, 0x00, 0x00, 0x00, // session expiry 0
        0x1C, 0x00, 0x01, b's', // server reference
    ];
    both_ways(
        V5,
        &bytes,
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::SessionTakenOver,
            properties: props(|p| {
                p.session_expiry_interval = Some(0);
                p.server_reference = Some("s".into());
            }),
        }),
    );
    decode_only(V5, &[0xE0, 0x02, 0x00, 0x00], &normal);
    // Before 5.0 a reason cannot be carried: DISCONNECT is empty.
    let mut out = BytesMut::new();
    let p = Packet::Disconnect(Disconnect::new(ReasonCode::ServerShuttingDown));
    assert_eq!(encode(&p, V3_1_1, &mut out), Ok(()));
    assert_eq!(&out[..], &[0xE0, 0x00]);
}

#[test]
fn auth_v5() {
    both_ways(
        V5,
        &[0xF0, 0x00],
        Packet::Auth(Auth {
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }),
    );
    #[rustfmt::skip]
    let bytes = [
        0xF0, 0x0F, 0x18,
        0x0D,
        0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method
        0x16, 0x00, 0x02, 0x01, 0x02, // authentication data
    ];
    both_ways(
        V5,
        &bytes,
        Packet::Auth(Auth {
            reason: ReasonCode::ContinueAuthentication,
            properties: props(|p| {
                p.authentication_method = Some("SCRAM".into());
                p.authentication_data = Some(Bytes::from_static(&[1, 2]));
            }),
        }),
    );
    decode_only(
        V5,
        &[0xF0, 0x01, 0x19],
        &Packet::Auth(Auth {
            reason: ReasonCode::ReAuthenticate,
            properties: Properties::default(),
        }),
    );
}

#[test]
fn remaining_length_boundaries() {
    // 127 bytes of remaining length fit one length byte, 128 need two.
    for (payload_len, header) in [(122usize, vec![0x30, 0x7F]), (123, vec![0x30, 0x80, 0x01])] {
        let payload = Bytes::from(vec![b'x'; payload_len]);
        let p = Packet::Publish(Publish {
            payload: payload.clone(),
            ..publish(QoS::AtMostOnce, "abc", 0, b"")
        });
        let mut expected = header;
        expected.extend_from_slice(&[0x00, 0x03, b'a', b'b', b'c']);
        expected.extend_from_slice(&payload);
        both_ways(V3_1_1, &expected, p);
    }
}

#[test]
fn decoded_strings_and_payloads_share_the_read_buffer() {
    let mut buf = BytesMut::from(&[0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'][..]);
    let start = buf.as_ptr() as usize;
    let Ok(Packet::Publish(p)) = decode(&mut buf, V3_1_1, 1024) else {
        panic!("PUBLISH expected");
    };
    // Zero copy: the topic and payload point into the original allocation.
    assert_eq!(p.topic.as_bytes().as_ptr() as usize, start + 4);
    assert_eq!(p.payload.as_ptr() as usize, start + 7);
}
