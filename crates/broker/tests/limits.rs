//! Per-client limits over real sockets: publish rate with the Throttle
//! action (backpressure, nothing dropped) and the Disconnect action (0x96
//! in 5.0, a plain close in 3.x, will published), and the subscriptions
//! quota (0x97 / 0x80 per extra filter). The token bucket itself is tested
//! sans-IO in `src/ratelimit.rs`.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use midge_broker::{BrokerConfig, PublishRateAction};
use midge_proto::{encode, Packet, Properties, Protocol, QoS, ReasonCode, SubscriptionOptions};
use tokio::time::Instant;

#[tokio::test]
async fn throttle_delays_publishes_without_dropping() {
    let b = start(BrokerConfig {
        max_publish_rate: 5,
        publish_rate_action: PublishRateAction::Throttle,
        ..BrokerConfig::default()
    })
    .await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "thr-sub", "thr", QoS::AtLeastOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "thr-pub", true).await;
    // Ten PUBLISH packets in one write: a burst of 5 passes at once, then
    // one every 200 ms.
    let mut burst = BytesMut::new();
    for i in 1..=10u16 {
        let pk = Packet::Publish(publish("thr", b"m", QoS::AtLeastOnce, false, i));
        encode(&pk, Protocol::V5, &mut burst).expect("encode");
    }
    let t0 = Instant::now();
    p.send_bytes(&burst).await;
    let mut acked = Vec::new();
    while acked.len() < 10 {
        match p.recv().await {
            Some(Packet::PubAck(a)) => {
                assert_eq!(a.reason, ReasonCode::Success);
                acked.push((a.pkid, t0.elapsed()));
            }
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let ids: Vec<u16> = acked.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    // Lower bounds only: the bucket cannot let them through earlier.
    assert!(
        acked[5].1 >= Duration::from_millis(150),
        "6th after a refill: {acked:?}"
    );
    assert!(
        acked[9].1 >= Duration::from_millis(900),
        "10th after ~1 s: {acked:?}"
    );
    for _ in 0..10 {
        let m = s.recv_publish().await;
        s.puback(m.pkid).await;
    }
    assert_eq!(b.broker.stats().publish_dropped, 0);
    // The publisher is still connected.
    p.send(&Packet::PingReq).await;
    assert!(matches!(p.recv().await, Some(Packet::PingResp)));
}

#[tokio::test]
async fn disconnect_action_closes_with_0x96_and_publishes_will() {
    let b = start(BrokerConfig {
        max_publish_bytes_rate: 100,
        publish_rate_action: PublishRateAction::Disconnect,
        ..BrokerConfig::default()
    })
    .await;
    let mut w = Raw::subscriber(
        b.addr,
        Protocol::V5,
        "rate-watch",
        "will/#",
        QoS::AtMostOnce,
    )
    .await;

    let mut c = connect_packet(Protocol::V5, "rate5", true);
    c.will = Some(will("will/rate5", b"gone", QoS::AtMostOnce, false));
    let (mut p5, _) = Raw::connect_with(b.addr, c).await;
    p5.publish("d", &[b'x'; 60], QoS::AtLeastOnce, false, 1)
        .await;
    assert!(matches!(p5.recv().await, Some(Packet::PubAck(a)) if a.reason == ReasonCode::Success));
    p5.publish("d", &[b'x'; 60], QoS::AtLeastOnce, false, 2)
        .await;
    p5.expect_disconnect(ReasonCode::MessageRateTooHigh).await;
    assert_eq!(&w.recv_publish().await.payload[..], b"gone");

    let mut c = connect_packet(Protocol::V3_1_1, "rate3", true);
    c.will = Some(will("will/rate3", b"gone3", QoS::AtMostOnce, false));
    let (mut p3, _) = Raw::connect_with(b.addr, c).await;
    p3.publish("d", &[b'x'; 101], QoS::AtMostOnce, false, 0)
        .await;
    p3.publish("d", &[b'x'; 1], QoS::AtMostOnce, false, 0).await;
    assert!(p3.expect_close().await.is_empty(), "3.x: closed, no packet");
    assert_eq!(&w.recv_publish().await.payload[..], b"gone3");
}

#[tokio::test]
async fn subscription_quota_per_client() {
    let b = start(BrokerConfig {
        max_subscriptions_per_client: 2,
        ..BrokerConfig::default()
    })
    .await;
    let q1 = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..Default::default()
    };
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "quota5", true).await;
    let a = s
        .subscribe_opts(
            1,
            &[("a", q1), ("b", q1), ("c", q1), ("d", q1)],
            Properties::default(),
        )
        .await;
    assert_eq!(
        a.reasons,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS1,
            ReasonCode::QuotaExceeded,
            ReasonCode::QuotaExceeded
        ]
    );
    // Replacing one held is not a new subscription.
    let a = s.subscribe(2, "a", QoS::AtMostOnce).await;
    assert_eq!(a.reasons, [ReasonCode::Success]);
    // After an unsubscribe there is room again.
    s.send(&Packet::Unsubscribe(midge_proto::Unsubscribe {
        pkid: 3,
        filters: vec!["b".into()],
        properties: Properties::default(),
    }))
    .await;
    assert!(matches!(s.recv().await, Some(Packet::UnsubAck(_))));
    let a = s.subscribe(4, "c", QoS::AtMostOnce).await;
    assert_eq!(a.reasons, [ReasonCode::Success]);
    assert_eq!(b.broker.stats().subscriptions, 2);

    let (mut s3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "quota3", true).await;
    let a = s3
        .subscribe_opts(1, &[("a", q1), ("b", q1), ("c", q1)], Properties::default())
        .await;
    assert_eq!(
        a.reasons,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS1,
            ReasonCode::UnspecifiedError
        ]
    );
}

#[tokio::test]
async fn keep_alive_does_not_expire_while_throttled() {
    let b = start(BrokerConfig {
        max_publish_bytes_rate: 100,
        ..BrokerConfig::default()
    })
    .await;
    let mut c = connect_packet(Protocol::V5, "thr-ka", true);
    c.keep_alive = 1;
    let (mut p, _) = Raw::connect_with(b.addr, c).await;
    // 300 bytes put the bucket 200 in debt: the next byte waits ~2 s, longer
    // than the 1.5 s keep-alive grace, while its PUBLISH sits unread.
    let t0 = Instant::now();
    p.publish("ka", &[b'x'; 300], QoS::AtLeastOnce, false, 1)
        .await;
    p.publish("ka", b"y", QoS::AtLeastOnce, false, 2).await;
    for id in 1..=2u16 {
        match p.recv().await {
            Some(Packet::PubAck(a)) => assert_eq!(a.pkid, id),
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    assert!(t0.elapsed() >= Duration::from_millis(1900));
}
