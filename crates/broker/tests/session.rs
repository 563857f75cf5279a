//! Sessions: takeover, persistent sessions queueing offline, DUP resend of
//! unacknowledged messages, clean start, session expiry.

mod common;

use std::time::Duration;

use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{Packet, Protocol, PubResp, QoS, ReasonCode};

#[tokio::test]
async fn takeover_disconnects_old_connection() {
    let b = start(BrokerConfig::default()).await;
    let mut c = connect_packet(Protocol::V5, "dup", true);
    c.properties.session_expiry_interval = Some(60);
    let (mut old, _) = Raw::connect_with(b.addr, c.clone()).await;
    c.clean_start = false;
    let (_new, a) = Raw::connect_with(b.addr, c).await;
    assert!(a.session_present, "session inherited without clean start");
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;

    let (mut old3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "dup3", true).await;
    let (_new3, a) = Raw::connect(b.addr, Protocol::V3_1_1, "dup3", true).await;
    assert!(!a.session_present);
    assert!(old3.expect_close().await.is_empty());
}

#[tokio::test]
async fn persistent_session_queues_and_resends_with_dup() {
    let b = start(BrokerConfig::default()).await;
    let (mut s, a) = Raw::connect(b.addr, Protocol::V3_1_1, "persist", false).await;
    assert!(!a.session_present);
    s.subscribe(1, "q/#", QoS::ExactlyOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V3_1_1, "pub", true).await;
    // Delivered but not acknowledged: in flight when the client goes.
    p.publish("q/1", b"one", QoS::AtLeastOnce, false, 1).await;
    let first = s.recv_publish().await;
    assert!(!first.dup);
    p.publish("q/2", b"two", QoS::ExactlyOnce, false, 2).await;
    let second = s.recv_publish().await;
    // PUBREC for the QoS 2 one: PUBREL is what must come again.
    s.send(&Packet::PubRec(PubResp::new(second.pkid))).await;
    assert!(matches!(s.recv().await, Some(Packet::PubRel(r)) if r.pkid == second.pkid));
    drop(s);
    // Offline: QoS 1/2 queued, QoS 0 not.
    wait_offline(&b, "persist").await;
    p.publish("q/3", b"three", QoS::AtLeastOnce, false, 3).await;
    p.publish("q/4", b"four", QoS::AtMostOnce, false, 0).await;
    p.publish("q/5", b"five", QoS::ExactlyOnce, false, 5).await;
    p.send(&Packet::PubRel(PubResp::new(5))).await;

    let (mut s, a) = Raw::connect(b.addr, Protocol::V3_1_1, "persist", false).await;
    assert!(a.session_present);
    let p1 = s.recv_publish().await;
    assert_eq!(
        (p1.dup, p1.pkid, &p1.payload[..]),
        (true, first.pkid, &b"one"[..])
    );
    assert!(matches!(s.recv().await, Some(Packet::PubRel(r)) if r.pkid == second.pkid));
    let p3 = s.recv_publish().await;
    assert_eq!((&p3.payload[..], p3.dup), (&b"three"[..], false));
    let p5 = s.recv_publish().await;
    assert_eq!(&p5.payload[..], b"five");
    assert_ne!(p3.pkid, first.pkid, "in-flight id not reused");
    s.expect_nothing(Duration::from_millis(200)).await;
}

/// Waits until the broker has seen the session go offline.
async fn wait_offline(b: &TestBroker, _client: &str) {
    until("session still online", || {
        b.broker.stats().clients_connected <= 1
    })
    .await;
}

#[tokio::test]
async fn clean_start_discards_session() {
    let b = start(BrokerConfig::default()).await;
    let mut c = persistent_connect("cs", 300);
    let (mut s, _) = Raw::connect_with(b.addr, c.clone()).await;
    s.subscribe(1, "cs/t", QoS::AtLeastOnce).await;
    s.leave().await;
    let (_s, a) = Raw::connect_with(b.addr, c.clone()).await;
    assert!(a.session_present);
    c.clean_start = true;
    let (mut s, a) = Raw::connect_with(b.addr, c).await;
    assert!(!a.session_present);
    // The subscription is gone with the old session.
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "csp", true).await;
    p.publish("cs/t", b"x", QoS::AtMostOnce, false, 0).await;
    s.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn session_expiry_ends_session() {
    let b = start(BrokerConfig::default()).await;
    let c = persistent_connect("exp", 1);
    let (mut s, _) = Raw::connect_with(b.addr, c.clone()).await;
    s.subscribe(1, "exp/t", QoS::AtLeastOnce).await;
    s.leave().await;
    assert_eq!(b.broker.stats().subscriptions, 1);
    until("session did not expire", || {
        b.broker.stats().subscriptions == 0
    })
    .await;
    let (_s, a) = Raw::connect_with(b.addr, c).await;
    assert!(!a.session_present);
}

#[tokio::test]
async fn disconnect_may_not_raise_expiry_from_zero() {
    let b = start(BrokerConfig::default()).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "ze", true).await;
    let mut d = midge_proto::Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(60);
    s.send(&Packet::Disconnect(d)).await;
    s.expect_disconnect(ReasonCode::ProtocolError).await;
}

#[tokio::test]
async fn disconnect_can_set_expiry_to_zero() {
    let b = start(BrokerConfig::default()).await;
    let c = persistent_connect("dz", 300);
    let (mut s, _) = Raw::connect_with(b.addr, c.clone()).await;
    let mut d = midge_proto::Disconnect::new(ReasonCode::Success);
    d.properties.session_expiry_interval = Some(0);
    s.send(&Packet::Disconnect(d)).await;
    assert!(s.expect_close().await.is_empty());
    let (_s, a) = Raw::connect_with(b.addr, c).await;
    assert!(!a.session_present);
}

#[tokio::test]
async fn takeover_of_clean_session_starts_fresh() {
    let b = start(BrokerConfig::default()).await;
    let mut old = Raw::subscriber(
        b.addr,
        Protocol::V3_1_1,
        "fresh",
        "fresh/t",
        QoS::AtLeastOnce,
    )
    .await;
    // The old connection has clean session: its session ends with it, even
    // though the new one asks to resume.
    let (_new, a) = Raw::connect(b.addr, Protocol::V3_1_1, "fresh", false).await;
    assert!(!a.session_present);
    assert!(old.expect_close().await.is_empty());
    assert_eq!(b.broker.stats().subscriptions, 0);
}
