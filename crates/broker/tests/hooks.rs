//! Authorization hooks and events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use midge_broker::{BrokerConfig, ClientRef, Event, Hooks};
use midge_proto::{Packet, Protocol, QoS, ReasonCode};

struct Acl;
impl Hooks for Acl {
    fn authorize_publish(&self, _c: &ClientRef<'_>, topic: &str) -> bool {
        !topic.starts_with("ro/")
    }
    fn authorize_subscribe(&self, _c: &ClientRef<'_>, filter: &str) -> bool {
        !filter.starts_with("secret")
    }
    fn authorize_deliver(&self, c: &ClientRef<'_>, topic: &str) -> bool {
        !(topic.starts_with("private/") && c.client_id != "owner")
    }
}

#[tokio::test]
async fn acl_hooks() {
    let b = start_with(BrokerConfig::default(), Some(Arc::new(Acl))).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "reader", true).await;
    let a = s.subscribe(1, "secret/x", QoS::AtMostOnce).await;
    assert_eq!(a.reasons, vec![ReasonCode::NotAuthorized]);
    let (mut s3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "reader3", true).await;
    let a = s3.subscribe(1, "secret/x", QoS::AtMostOnce).await;
    assert_eq!(a.reasons, vec![ReasonCode::UnspecifiedError]);
    s.subscribe(2, "#", QoS::AtMostOnce).await;
    let mut owner =
        Raw::subscriber(b.addr, Protocol::V5, "owner", "private/#", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "writer", true).await;
    // Denied publish: PUBACK 0x87 and not routed.
    p.publish("ro/x", b"no", QoS::AtLeastOnce, false, 1).await;
    assert!(
        matches!(p.recv().await, Some(Packet::PubAck(r)) if r.reason == ReasonCode::NotAuthorized)
    );
    // `#` does not leak private topics.
    p.publish("private/a", b"p", QoS::AtMostOnce, false, 0)
        .await;
    p.publish("public", b"ok", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&owner.recv_publish().await.payload[..], b"p");
    assert_eq!(&s.recv_publish().await.payload[..], b"ok");
    s.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn events_are_broadcast() {
    let b = start(BrokerConfig::default()).await;
    let mut ev = b.broker.events();
    let mut c = Raw::subscriber(b.addr, Protocol::V5, "ev", "ev/t", QoS::AtMostOnce).await;
    c.publish("ev/t", b"x", QoS::AtMostOnce, false, 0).await;
    c.disconnect(ReasonCode::Success).await;
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let e = tokio::time::timeout(WAIT, ev.recv())
            .await
            .expect("event timeout")
            .expect("event");
        kinds.push(match e {
            Event::ClientConnected { client_id, .. } => format!("connected {client_id}"),
            Event::Subscribed { filter, .. } => format!("subscribed {filter}"),
            Event::MessagePublished {
                topic, payload_len, ..
            } => format!("published {topic} {payload_len}"),
            Event::ClientDisconnected {
                client_id,
                abnormal,
                ..
            } => format!("disconnected {client_id} {abnormal}"),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "connected ev",
            "subscribed ev/t",
            "published ev/t 1",
            "disconnected ev false"
        ]
    );
}

#[tokio::test]
async fn internal_publish_and_stats() {
    let b = start(BrokerConfig::default()).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V3_1_1, "ip", "api/#", QoS::AtLeastOnce).await;
    b.broker.publish(midge_broker::Message::new(
        "api/x",
        bytes::Bytes::from_static(b"hi"),
        QoS::AtLeastOnce,
        false,
    ));
    let got = s.recv_publish().await;
    assert_eq!((&got.payload[..], got.qos), (&b"hi"[..], QoS::AtLeastOnce));
    // An invalid topic is refused rather than routed literally.
    b.broker.publish(midge_broker::Message::new(
        "api/+",
        bytes::Bytes::from_static(b"no"),
        QoS::AtMostOnce,
        false,
    ));
    s.expect_nothing(Duration::from_millis(200)).await;
    let st = b.broker.stats();
    assert_eq!(st.clients_connected, 1);
    assert_eq!(st.subscriptions, 1);
    assert!(st.bytes_received > 0);
}

#[tokio::test]
async fn shutdown_disconnects_everyone() {
    let b = start(BrokerConfig::default()).await;
    let (mut c5, _) = Raw::connect(b.addr, Protocol::V5, "sd5", true).await;
    let (mut c3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "sd3", true).await;
    tokio::time::timeout(WAIT, b.broker.shutdown(Duration::from_secs(3)))
        .await
        .expect("shutdown within its deadline");
    c5.expect_disconnect(ReasonCode::ServerShuttingDown).await;
    assert!(c3.expect_close().await.is_empty());
    assert_eq!(b.broker.stats().connections, 0);
    // New connections are refused.
    let mut r = Raw::open(b.addr, Protocol::V5).await;
    r.send_connect(connect_packet(Protocol::V5, "late", true))
        .await;
    assert!(r.expect_close().await.is_empty());
}

#[tokio::test]
async fn queue_limit_drops_and_counts() {
    let cfg = BrokerConfig {
        max_queued_messages: 3,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let c = persistent_connect("ql", 60);
    let (mut s, _) = Raw::connect_with(b.addr, c.clone()).await;
    s.subscribe(1, "ql", QoS::AtLeastOnce).await;
    s.leave().await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "qlp", true).await;
    for i in 1..=5u16 {
        p.publish("ql", b"x", QoS::AtLeastOnce, false, i).await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    assert_eq!(b.broker.stats().publish_dropped, 2);
    let (mut s, _) = Raw::connect_with(b.addr, c).await;
    for _ in 0..3 {
        let m = s.recv_publish().await;
        s.puback(m.pkid).await;
    }
    s.expect_nothing(Duration::from_millis(200)).await;
}
