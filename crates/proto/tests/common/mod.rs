//! Proptest strategies for valid packets of each protocol level: only what
//! that level can express (no properties before 5.0, 3.x CONNACK codes from
//! the mappable set, ...), so that `decode(encode(p)) == p` must hold.

#![allow(dead_code)]

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{
    Auth, ConnAck, Connect, Disconnect, Packet, PacketType, Properties, PropertyContext, Protocol,
    PubResp, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

/// Any MQTT string: UTF-8 without U+0000.
pub fn string() -> impl Strategy<Value = ByteString> {
    "[^\u{0}]{0,12}".prop_map(ByteString::from)
}

/// A topic name: no wildcards, no U+0000, non-empty.
pub fn topic() -> impl Strategy<Value = ByteString> {
    "[^\u{0}+#]{1,16}".prop_map(ByteString::from)
}

pub fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

pub fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

pub fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::V3_1),
        Just(Protocol::V3_1_1),
        Just(Protocol::V5)
    ]
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    of(0u8..=1)
}

fn nonzero_u16() -> impl Strategy<Value = u16> {
    1u16..=u16::MAX
}

/// Properties valid in `ctx` (and empty before 5.0).
pub fn properties(protocol: Protocol, ctx: PropertyContext) -> BoxedStrategy<Properties> {
    if !protocol.is_v5() {
        return Just(Properties::default()).boxed();
    }
    let a = (
        flag(),
        of(any::<u32>()),
        of(string()),
        of(topic()),
        of(bytes(8)),
        vec(1u32..=268_435_455, 0..3),
        of(any::<u32>()),
        of(string()),
        of(any::<u16>()),
    );
    let b = (
        of(string()),
        of(bytes(8)),
        flag(),
        of(any::<u32>()),
        flag(),
        of(string()),
        of(string()),
        of(string()),
        of(nonzero_u16()),
    );
    let c = (
        of(any::<u16>()),
        of(nonzero_u16()),
        flag(),
        flag(),
        vec((string(), string()), 0..3),
        of(1u32..=u32::MAX),
        flag(),
        flag(),
        flag(),
    );
    (a, b, c)
        .prop_map(move |(a, b, c)| {
            let mut p = Properties {
                payload_format_indicator: a.0,
                message_expiry_interval: a.1,
                content_type: a.2,
                response_topic: a.3,
                correlation_data: a.4,
                subscription_identifiers: a.5,
                session_expiry_interval: a.6,
                assigned_client_identifier: a.7,
                server_keep_alive: a.8,
                authentication_method: b.0,
                authentication_data: b.1,
                request_problem_information: b.2,
                will_delay_interval: b.3,
                request_response_information: b.4,
                response_information: b.5,
                server_reference: b.6,
                reason_string: b.7,
                receive_maximum: b.8,
                topic_alias_maximum: c.0,
                topic_alias: c.1,
                maximum_qos: c.2,
                retain_available: c.3,
                user_properties: c.4,
                maximum_packet_size: c.5,
                wildcard_subscription_available: c.6,
                subscription_identifier_available: c.7,
                shared_subscription_available: c.8,
            };
            restrict(&mut p, ctx);
            p
        })
        .boxed()
}

/// Clears what `ctx` does not allow, and fixes the cross-field rules.
pub fn restrict(p: &mut Properties, ctx: PropertyContext) {
    use midge_proto::properties::id::*;
    macro_rules! keep {
        ($field:ident, $id:expr) => {
            if !ctx.allows($id) {
                p.$field = Default::default();
            }
        };
    }
    keep!(payload_format_indicator, PAYLOAD_FORMAT_INDICATOR);
    keep!(message_expiry_interval, MESSAGE_EXPIRY_INTERVAL);
    keep!(content_type, CONTENT_TYPE);
    keep!(response_topic, RESPONSE_TOPIC);
    keep!(correlation_data, CORRELATION_DATA);
    keep!(subscription_identifiers, SUBSCRIPTION_IDENTIFIER);
    keep!(session_expiry_interval, SESSION_EXPIRY_INTERVAL);
    keep!(assigned_client_identifier, ASSIGNED_CLIENT_IDENTIFIER);
    keep!(server_keep_alive, SERVER_KEEP_ALIVE);
    keep!(authentication_method, AUTHENTICATION_METHOD);
    keep!(authentication_data, AUTHENTICATION_DATA);
    keep!(request_problem_information, REQUEST_PROBLEM_INFORMATION);
    keep!(will_delay_interval, WILL_DELAY_INTERVAL);
    keep!(request_response_information, REQUEST_RESPONSE_INFORMATION);
    keep!(response_information, RESPONSE_INFORMATION);
    keep!(server_reference, SERVER_REFERENCE);
    keep!(reason_string, REASON_STRING);
    keep!(receive_maximum, RECEIVE_MAXIMUM);
    keep!(topic_alias_maximum, TOPIC_ALIAS_MAXIMUM);
    keep!(topic_alias, TOPIC_ALIAS);
    keep!(maximum_qos, MAXIMUM_QOS);
    keep!(retain_available, RETAIN_AVAILABLE);
    keep!(user_properties, USER_PROPERTY);
    keep!(maximum_packet_size, MAXIMUM_PACKET_SIZE);
    keep!(
        wildcard_subscription_available,
        WILDCARD_SUBSCRIPTION_AVAILABLE
    );
    keep!(
        subscription_identifier_available,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE
    );
    keep!(shared_subscription_available, SHARED_SUBSCRIPTION_AVAILABLE);
    if ctx == PropertyContext::Subscribe {
        p.subscription_identifiers.truncate(1);
    }
    if p.authentication_method.is_none() {
        p.authentication_data = None;
    }
}

/// A reason code valid in `kind` for `protocol`.
fn reason(protocol: Protocol, kind: PacketType) -> BoxedStrategy<ReasonCode> {
    let codes: Vec<ReasonCode> = if protocol.is_v5() {
        ReasonCode::ALL
            .iter()
            .copied()
            .filter(|c| c.valid_for(kind))
            .collect()
    } else {
        match kind {
            PacketType::ConnAck => (0..=5).filter_map(ReasonCode::from_v3_connack).collect(),
            PacketType::SubAck => vec![
                ReasonCode::Success,
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS2,
                ReasonCode::UnspecifiedError,
            ],
            _ => vec![ReasonCode::Success],
        }
    };
    proptest::sample::select(codes).boxed()
}

fn connect(protocol: Protocol) -> BoxedStrategy<Packet> {
    let will = (
        string(),
        bytes(16),
        qos(),
        any::<bool>(),
        properties(protocol, PropertyContext::Will),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        of(will),
        of(string()),
        of(bytes(8)),
        properties(protocol, PropertyContext::Connect),
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive,
                client_id,
                will,
                mut username,
                password,
                properties,
            )| {
                if !protocol.is_v5() && password.is_some() && username.is_none() {
                    username = Some(ByteString::new());
                }
                Packet::Connect(Box::new(Connect {
                    protocol,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
        .boxed()
}

fn connack(protocol: Protocol) -> BoxedStrategy<Packet> {
    (
        any::<bool>(),
        reason(protocol, PacketType::ConnAck),
        properties(protocol, PropertyContext::ConnAck),
    )
        .prop_map(move |(session_present, reason, properties)| {
            Packet::ConnAck(ConnAck {
                // 3.1 has no session present flag.
                session_present: session_present && protocol != Protocol::V3_1,
                reason,
                properties,
            })
        })
        .boxed()
}

pub fn publish(protocol: Protocol, max_payload: usize) -> BoxedStrategy<Publish> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        prop_oneof![3 => topic(), 1 => Just(ByteString::new())],
        nonzero_u16(),
        bytes(max_payload),
        properties(protocol, PropertyContext::Publish),
    )
        .prop_map(
            move |(dup, qos, retain, mut topic, pkid, payload, mut properties)| {
                if topic.is_empty() {
                    if protocol.is_v5() {
                        properties.topic_alias.get_or_insert(1);
                    } else {
                        topic = ByteString::from_static("t");
                    }
                }
                let at_most_once = qos == QoS::AtMostOnce;
                Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic,
                    pkid: if at_most_once { 0 } else { pkid },
                    payload,
                    properties,
                }
            },
        )
        .boxed()
}

fn pubresp(protocol: Protocol, kind: PacketType) -> BoxedStrategy<PubResp> {
    let ctx = match kind {
        PacketType::PubAck => PropertyContext::PubAck,
        PacketType::PubRec => PropertyContext::PubRec,
        PacketType::PubRel => PropertyContext::PubRel,
        _ => PropertyContext::PubComp,
    };
    (
        nonzero_u16(),
        reason(protocol, kind),
        properties(protocol, ctx),
    )
        .prop_map(|(pkid, reason, properties)| PubResp {
            pkid,
            reason,
            properties,
        })
        .boxed()
}

fn options(protocol: Protocol) -> impl Strategy<Value = SubscriptionOptions> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(RetainHandling::SendAtSubscribe),
            Just(RetainHandling::SendIfNew),
            Just(RetainHandling::DoNotSend)
        ],
    )
        .prop_map(
            move |(qos, no_local, retain_as_published, retain_handling)| {
                if protocol.is_v5() {
                    SubscriptionOptions {
                        qos,
                        no_local,
                        retain_as_published,
                        retain_handling,
                    }
                } else {
                    SubscriptionOptions {
                        qos,
                        ..Default::default()
                    }
                }
            },
        )
}

pub fn subscribe(protocol: Protocol, max_filters: usize) -> BoxedStrategy<Subscribe> {
    (
        nonzero_u16(),
        vec(
            (string(), options(protocol))
                .prop_map(|(filter, options)| Subscription { filter, options }),
            1..=max_filters,
        ),
        properties(protocol, PropertyContext::Subscribe),
    )
        .prop_map(|(pkid, filters, properties)| Subscribe {
            pkid,
            filters,
            properties,
        })
        .boxed()
}

fn suback(protocol: Protocol) -> BoxedStrategy<Packet> {
    (
        nonzero_u16(),
        vec(reason(protocol, PacketType::SubAck), 1..5),
        properties(protocol, PropertyContext::SubAck),
    )
        .prop_map(|(pkid, reasons, properties)| {
            Packet::SubAck(SubAck {
                pkid,
                reasons,
                properties,
            })
        })
        .boxed()
}

fn unsubscribe(protocol: Protocol) -> BoxedStrategy<Packet> {
    (
        nonzero_u16(),
        vec(string(), 1..5),
        properties(protocol, PropertyContext::Unsubscribe),
    )
        .prop_map(|(pkid, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                pkid,
                filters,
                properties,
            })
        })
        .boxed()
}

fn unsuback(protocol: Protocol) -> BoxedStrategy<Packet> {
    let n = if protocol.is_v5() { 1..5 } else { 0..1 };
    (
        nonzero_u16(),
        vec(reason(protocol, PacketType::UnsubAck), n),
        properties(protocol, PropertyContext::UnsubAck),
    )
        .prop_map(|(pkid, reasons, properties)| {
            Packet::UnsubAck(UnsubAck {
                pkid,
                reasons,
                properties,
            })
        })
        .boxed()
}

fn disconnect(protocol: Protocol) -> BoxedStrategy<Packet> {
    (
        reason(protocol, PacketType::Disconnect),
        properties(protocol, PropertyContext::Disconnect),
    )
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
        .boxed()
}

fn auth() -> BoxedStrategy<Packet> {
    (
        reason(Protocol::V5, PacketType::Auth),
        properties(Protocol::V5, PropertyContext::Auth),
    )
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
        .boxed()
}

/// Any valid packet for `protocol`, every type equally likely.
pub fn packet(protocol: Protocol) -> BoxedStrategy<Packet> {
    let mut all = vec![
        connect(protocol),
        connack(protocol),
        publish(protocol, 64).prop_map(Packet::Publish).boxed(),
        pubresp(protocol, PacketType::PubAck)
            .prop_map(Packet::PubAck)
            .boxed(),
        pubresp(protocol, PacketType::PubRec)
            .prop_map(Packet::PubRec)
            .boxed(),
        pubresp(protocol, PacketType::PubRel)
            .prop_map(Packet::PubRel)
            .boxed(),
        pubresp(protocol, PacketType::PubComp)
            .prop_map(Packet::PubComp)
            .boxed(),
        subscribe(protocol, 4).prop_map(Packet::Subscribe).boxed(),
        suback(protocol),
        unsubscribe(protocol),
        unsuback(protocol),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(protocol),
    ];
    if protocol.is_v5() {
        all.push(auth());
    }
    proptest::strategy::Union::new(all).boxed()
}

/// A protocol and a packet valid for it.
pub fn any_packet() -> impl Strategy<Value = (Protocol, Packet)> {
    protocol().prop_flat_map(|p| packet(p).prop_map(move |pk| (p, pk)))
}
