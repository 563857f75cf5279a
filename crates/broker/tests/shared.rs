//! Shared subscriptions: one member per message, round robin, no retained
//! messages, redelivery of unacknowledged messages when a member leaves.

mod common;

use std::time::Duration;

use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{Packet, Protocol, QoS};

#[tokio::test]
async fn round_robin_among_members() {
    let b = start(BrokerConfig::default()).await;
    let (mut m1, _) = Raw::connect(b.addr, Protocol::V5, "m1", true).await;
    let (mut m2, _) = Raw::connect(b.addr, Protocol::V3_1_1, "m2", true).await;
    m1.subscribe(1, "$share/g/job/+", QoS::AtMostOnce).await;
    m2.subscribe(1, "$share/g/job/+", QoS::AtMostOnce).await;
    let mut plain = Raw::subscriber(b.addr, Protocol::V5, "plain", "job/#", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "jp", true).await;
    for _ in 0..10 {
        p.publish("job/x", b"j", QoS::AtMostOnce, false, 0).await;
    }
    let mut n1 = 0;
    let mut n2 = 0;
    for _ in 0..10 {
        plain.recv_publish().await;
    }
    // Everything has been routed once the plain subscriber has all ten.
    while let Ok(Some(Packet::Publish(_))) = m1.recv_within(Duration::from_millis(200)).await {
        n1 += 1;
    }
    while let Ok(Some(Packet::Publish(_))) = m2.recv_within(Duration::from_millis(200)).await {
        n2 += 1;
    }
    assert_eq!(n1 + n2, 10, "each message to exactly one member");
    assert_eq!((n1, n2), (5, 5), "round robin");
}

#[tokio::test]
async fn no_retained_for_shared() {
    let b = start(BrokerConfig::default()).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "srp", true).await;
    p.publish("sr/t", b"kept", QoS::AtMostOnce, true, 0).await;
    let mut m = Raw::subscriber(
        b.addr,
        Protocol::V5,
        "srm",
        "$share/g/sr/t",
        QoS::AtMostOnce,
    )
    .await;
    m.expect_nothing(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn unacked_message_redelivered_to_other_member() {
    let b = start(BrokerConfig::default()).await;
    let mut m1 =
        Raw::subscriber(b.addr, Protocol::V5, "rd1", "$share/g/rd", QoS::AtLeastOnce).await;
    let mut m2 =
        Raw::subscriber(b.addr, Protocol::V5, "rd2", "$share/g/rd", QoS::AtLeastOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "rdp", true).await;
    p.publish("rd", b"a", QoS::AtLeastOnce, false, 1).await;
    p.publish("rd", b"b", QoS::AtLeastOnce, false, 2).await;
    // One each; m1 never acknowledges and goes away (clean session).
    let first = m1.recv_publish().await;
    let second = m2.recv_publish().await;
    m2.puback(second.pkid).await;
    drop(m1);
    let again = m2.recv_publish().await;
    assert_eq!(
        again.payload, first.payload,
        "m1's unacknowledged message moved to m2"
    );
}

#[tokio::test]
async fn offline_members_skipped_while_one_is_online() {
    let b = start(BrokerConfig::default()).await;
    let c = persistent_connect("off1", 60);
    let (mut off, _) = Raw::connect_with(b.addr, c).await;
    off.subscribe(1, "$share/g/os", QoS::AtLeastOnce).await;
    off.leave().await;
    let mut on =
        Raw::subscriber(b.addr, Protocol::V5, "on1", "$share/g/os", QoS::AtLeastOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "osp", true).await;
    for i in 1..=4 {
        p.publish("os", b"x", QoS::AtLeastOnce, false, i).await;
    }
    for _ in 0..4 {
        let m = on.recv_publish().await;
        on.puback(m.pkid).await;
    }
}
