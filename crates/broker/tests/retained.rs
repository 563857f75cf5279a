//! Retained messages: set, replace, delete, delivery to current
//! subscribers, retain handling, retain as published, expiry.

mod common;

use std::time::Duration;

use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{
    Packet, Properties, Protocol, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
};

/// Subscribes to `filter` at QoS 0 with these retain options.
async fn subscribe_retain_opts(
    s: &mut Raw,
    pkid: u16,
    filter: &str,
    retain_handling: RetainHandling,
    retain_as_published: bool,
) {
    let opts = SubscriptionOptions {
        qos: QoS::AtMostOnce,
        no_local: false,
        retain_as_published,
        retain_handling,
    };
    s.subscribe_opts(pkid, &[(filter, opts)], Properties::default())
        .await;
}

#[tokio::test]
async fn set_replace_delete() {
    // $SYS off: its retained topics would be counted too.
    let b = start(BrokerConfig {
        sys_interval: Duration::ZERO,
        ..BrokerConfig::default()
    })
    .await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V3_1_1, "rp", true).await;
    p.publish("r/a", b"1", QoS::AtLeastOnce, true, 1).await;
    p.publish("r/a", b"2", QoS::AtLeastOnce, true, 2).await;
    p.publish("r/b", b"b", QoS::AtMostOnce, true, 0).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    let mut s = Raw::subscriber(b.addr, Protocol::V3_1_1, "rs", "r/+", QoS::AtLeastOnce).await;
    let mut got = [s.recv_publish().await, s.recv_publish().await];
    got.sort_by(|x, y| x.topic.cmp(&y.topic));
    assert_eq!(
        (&got[0].payload[..], got[0].retain, got[0].qos),
        (&b"2"[..], true, QoS::AtLeastOnce)
    );
    assert_eq!(
        (&got[1].payload[..], got[1].retain, got[1].qos),
        (&b"b"[..], true, QoS::AtMostOnce)
    );
    s.puback(got[0].pkid).await;
    // Live delivery of a retained publish: retain flag cleared (no RAP).
    p.publish("r/a", b"3", QoS::AtMostOnce, true, 0).await;
    let live = s.recv_publish().await;
    assert!(!live.retain);
    // Delete: still delivered to current subscribers.
    p.publish("r/a", b"", QoS::AtMostOnce, true, 0).await;
    let del = s.recv_publish().await;
    assert!(del.payload.is_empty());
    let mut s2 = Raw::subscriber(b.addr, Protocol::V3_1_1, "rs2", "r/#", QoS::AtMostOnce).await;
    let only = s2.recv_publish().await;
    assert_eq!(&only.topic[..], "r/b");
    s2.expect_nothing(Duration::from_millis(200)).await;
    assert_eq!(b.broker.stats().retained, 1);
}

#[tokio::test]
async fn retain_handling_and_rap() {
    let b = start(BrokerConfig::default()).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "rhp", true).await;
    p.publish("rh/t", b"x", QoS::AtMostOnce, true, 0).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "rhs", true).await;
    // 2: never.
    subscribe_retain_opts(&mut s, 1, "rh/t", RetainHandling::DoNotSend, false).await;
    s.expect_nothing(Duration::from_millis(200)).await;
    // 1: only if new; it exists, so nothing.
    subscribe_retain_opts(&mut s, 2, "rh/t", RetainHandling::SendIfNew, false).await;
    s.expect_nothing(Duration::from_millis(200)).await;
    // 1 on a new filter: sent.
    subscribe_retain_opts(&mut s, 3, "rh/+", RetainHandling::SendIfNew, true).await;
    assert!(s.recv_publish().await.retain);
    // 0: always, even when it exists.
    subscribe_retain_opts(&mut s, 4, "rh/+", RetainHandling::SendAtSubscribe, true).await;
    assert!(s.recv_publish().await.retain);
    // RAP on rh/+ (and not on rh/t): overlapping, combined: retain kept.
    p.publish("rh/t", b"y", QoS::AtMostOnce, true, 0).await;
    let live = s.recv_publish().await;
    assert!(live.retain, "retain as published");
    s.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn retained_message_expiry() {
    let b = start(BrokerConfig::default()).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "rep", true).await;
    let mut m = publish("re/t", b"x", QoS::AtMostOnce, true, 0);
    m.properties.message_expiry_interval = Some(1);
    p.send(&Packet::Publish(m)).await;
    let mut m = publish("re/u", b"y", QoS::AtMostOnce, true, 0);
    m.properties.message_expiry_interval = Some(100);
    p.send(&Packet::Publish(m)).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "res", "re/u", QoS::AtMostOnce).await;
    let got = s.recv_publish().await;
    let left = got
        .properties
        .message_expiry_interval
        .expect("remaining interval");
    assert!((99..=100).contains(&left), "{left}");
    tokio::time::sleep(Duration::from_millis(1100)).await; // the expiry itself is the subject
    s.subscribe(2, "re/t", QoS::AtMostOnce).await;
    s.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn retain_not_available() {
    let cfg = BrokerConfig {
        retain_available: false,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let (mut p, a) = Raw::connect(b.addr, Protocol::V5, "rna", true).await;
    assert_eq!(a.properties.retain_available, Some(0));
    p.publish("x", b"x", QoS::AtMostOnce, true, 0).await;
    p.expect_disconnect(ReasonCode::RetainNotSupported).await;
}
