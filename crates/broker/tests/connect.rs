//! CONNECT / CONNACK: codes of both versions, client id rules, hooks,
//! limits, protocol errors around CONNECT.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use midge_broker::{AuthDecision, AuthRequest, BrokerConfig, Hooks};
use midge_proto::{Packet, Properties, Protocol, QoS, ReasonCode};

#[tokio::test]
async fn unsupported_protocol_level_gets_0x01() {
    let b = start(BrokerConfig::default()).await;
    let mut r = Raw::open(b.addr, Protocol::V3_1_1).await;
    // CONNECT "MQTT" level 6.
    r.send_bytes(&[
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 6, 0x02, 0, 60, 0, 0,
    ])
    .await;
    let got = r.expect_close().await;
    match &got[..] {
        [Packet::ConnAck(a)] => assert_eq!(a.reason, ReasonCode::UnsupportedProtocolVersion),
        other => panic!("expected CONNACK 0x01, got {other:?}"),
    }
}

#[tokio::test]
async fn empty_client_id_rules() {
    let b = start(BrokerConfig::default()).await;
    // 3.1.1, clean session: accepted.
    let (_r, a) = Raw::connect(b.addr, Protocol::V3_1_1, "", true).await;
    assert!(!a.session_present);
    // 3.1.1, persistent: identifier rejected (0x02).
    let (mut r, a) = Raw::connect_with(b.addr, connect_packet(Protocol::V3_1_1, "", false)).await;
    assert_eq!(a.reason, ReasonCode::ClientIdentifierNotValid);
    assert!(r.expect_close().await.is_empty());
    // 5.0, even with clean start 0: assigned and returned.
    let (_r, a) = Raw::connect(b.addr, Protocol::V5, "", false).await;
    let id = a
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!id.is_empty());
    assert!(!a.session_present);
    let (_r2, a2) = Raw::connect(b.addr, Protocol::V5, "", true).await;
    assert_ne!(
        a2.properties.assigned_client_identifier,
        Some(id),
        "ids are unique"
    );
}

#[tokio::test]
async fn zero_length_id_can_be_disallowed() {
    let cfg = BrokerConfig {
        allow_zero_length_client_id: false,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let (_r, a) = Raw::connect_with(b.addr, connect_packet(Protocol::V5, "", true)).await;
    assert_eq!(a.reason, ReasonCode::ClientIdentifierNotValid);
}

#[tokio::test]
async fn v5_connack_properties() {
    let cfg = BrokerConfig {
        max_keepalive: 30,
        max_session_expiry: 100,
        maximum_qos: QoS::AtLeastOnce,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let mut c = connect_packet(Protocol::V5, "props", true);
    c.keep_alive = 120;
    c.properties.session_expiry_interval = Some(1000);
    let (_r, a) = Raw::connect_with(b.addr, c).await;
    assert_eq!(a.reason, ReasonCode::Success);
    let p = &a.properties;
    assert_eq!(p.receive_maximum, Some(100));
    assert_eq!(p.maximum_packet_size, Some(1_048_576));
    assert_eq!(p.topic_alias_maximum, Some(65_535));
    assert_eq!(p.retain_available, Some(1));
    assert_eq!(p.maximum_qos, Some(1));
    assert_eq!(p.wildcard_subscription_available, Some(1));
    assert_eq!(p.subscription_identifier_available, Some(1));
    assert_eq!(p.shared_subscription_available, Some(1));
    assert_eq!(p.server_keep_alive, Some(30));
    assert_eq!(p.session_expiry_interval, Some(100));
    assert_eq!(p.assigned_client_identifier, None);
}

struct Auth;
impl Hooks for Auth {
    fn authenticate(&self, req: &AuthRequest<'_>) -> AuthDecision {
        if req.username == Some("good") && req.password == Some(&b"pw"[..]) {
            AuthDecision::Allow {
                username: Some("good".into()),
            }
        } else {
            AuthDecision::Deny(ReasonCode::BadUserNameOrPassword)
        }
    }
}

#[tokio::test]
async fn authentication_hook_codes() {
    let b = start_with(BrokerConfig::default(), Some(Arc::new(Auth))).await;
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let mut c = connect_packet(protocol, "x", true);
        c.username = Some("good".into());
        c.password = Some(bytes::Bytes::from_static(b"bad"));
        let (mut r, a) = Raw::connect_with(b.addr, c.clone()).await;
        assert_eq!(a.reason, ReasonCode::BadUserNameOrPassword, "{protocol:?}");
        assert!(!a.session_present);
        assert!(r.expect_close().await.is_empty());
        c.password = Some(bytes::Bytes::from_static(b"pw"));
        let (_r, a) = Raw::connect_with(b.addr, c).await;
        assert_eq!(a.reason, ReasonCode::Success);
    }
}

#[tokio::test]
async fn authentication_method_is_refused() {
    let b = start(BrokerConfig::default()).await;
    let mut c = connect_packet(Protocol::V5, "am", true);
    c.properties.authentication_method = Some("SCRAM-SHA-1".into());
    let (mut r, a) = Raw::connect_with(b.addr, c).await;
    assert_eq!(a.reason, ReasonCode::BadAuthenticationMethod);
    assert!(r.expect_close().await.is_empty());
}

#[tokio::test]
async fn auth_packet_after_connect_is_protocol_error() {
    let b = start(BrokerConfig::default()).await;
    let (mut r, _) = Raw::connect(b.addr, Protocol::V5, "auth", true).await;
    r.send(&Packet::Auth(midge_proto::Auth {
        reason: ReasonCode::ReAuthenticate,
        properties: Properties {
            authentication_method: Some("x".into()),
            ..Properties::default()
        },
    }))
    .await;
    r.expect_disconnect(ReasonCode::ProtocolError).await;
}

#[tokio::test]
async fn max_connections_busy() {
    let cfg = BrokerConfig {
        max_connections: 1,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let (_first, _) = Raw::connect(b.addr, Protocol::V5, "one", true).await;
    let (_r, a) = Raw::connect_with(b.addr, connect_packet(Protocol::V5, "two", true)).await;
    assert_eq!(a.reason, ReasonCode::ServerBusy);
    let (_r, a) = Raw::connect_with(b.addr, connect_packet(Protocol::V3_1_1, "three", true)).await;
    assert_eq!(a.reason.to_v3_connack(), 3, "3.1.1 server unavailable");
}

#[tokio::test]
async fn second_connect_is_protocol_error() {
    let b = start(BrokerConfig::default()).await;
    let (mut r, _) = Raw::connect(b.addr, Protocol::V5, "twice", true).await;
    r.send_connect(connect_packet(Protocol::V5, "twice", true))
        .await;
    r.expect_disconnect(ReasonCode::ProtocolError).await;
    let (mut r, _) = Raw::connect(b.addr, Protocol::V3_1_1, "twice3", true).await;
    r.send_connect(connect_packet(Protocol::V3_1_1, "twice3", true))
        .await;
    assert!(r.expect_close().await.is_empty());
}

#[tokio::test]
async fn first_packet_must_be_connect() {
    let b = start(BrokerConfig::default()).await;
    let mut r = Raw::open(b.addr, Protocol::V3_1_1).await;
    r.send(&Packet::PingReq).await;
    assert!(r.expect_close().await.is_empty());
}

#[tokio::test]
async fn connect_timeout_closes() {
    let cfg = BrokerConfig {
        connect_timeout: Duration::from_millis(300),
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let mut r = Raw::open(b.addr, Protocol::V3_1_1).await;
    let t = std::time::Instant::now();
    assert!(r.expect_close().await.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn malformed_v5_connect_gets_connack_reason() {
    let b = start(BrokerConfig::default()).await;
    let mut r = Raw::open(b.addr, Protocol::V5).await;
    // Level 5 CONNECT with the reserved flag bit set: malformed.
    r.send_bytes(&[
        0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x03, 0, 60, 0, 0, 0,
    ])
    .await;
    let got = r.expect_close().await;
    assert!(
        matches!(&got[..], [Packet::ConnAck(a)] if a.reason == ReasonCode::MalformedPacket),
        "{got:?}"
    );
}

#[tokio::test]
async fn will_topic_checked_at_connect() {
    let b = start(BrokerConfig::default()).await;
    let mut c = connect_packet(Protocol::V5, "w", true);
    c.will = Some(will("a/#", b"x", QoS::AtMostOnce, false));
    let (_r, a) = Raw::connect_with(b.addr, c).await;
    assert_eq!(a.reason, ReasonCode::TopicNameInvalid);
}
