//! MQTT 5.0 features and routing rules: overlapping subscriptions,
//! subscription identifiers, no local, SUBACK/UNSUBACK codes, topic alias,
//! message expiry, properties passed through, Receive Maximum both ways,
//! Maximum Packet Size both ways.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{
    Packet, Properties, Protocol, PubResp, QoS, ReasonCode, SubscriptionOptions, UnsubAck,
    Unsubscribe,
};

fn q(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..Default::default()
    }
}

#[tokio::test]
async fn overlapping_subscriptions_once_at_highest_qos_with_all_ids() {
    let b = start(BrokerConfig::default()).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "ov", true).await;
    let ids = |id| Properties {
        subscription_identifiers: vec![id],
        ..Properties::default()
    };
    s.subscribe_opts(1, &[("o/#", q(QoS::AtMostOnce))], ids(11))
        .await;
    s.subscribe_opts(2, &[("o/+", q(QoS::ExactlyOnce))], ids(22))
        .await;
    s.subscribe_opts(3, &[("o/x", q(QoS::AtLeastOnce))], Properties::default())
        .await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "ovp", true).await;
    p.publish("o/x", b"m", QoS::ExactlyOnce, false, 1).await;
    let got = s.recv_publish().await;
    assert_eq!(got.qos, QoS::ExactlyOnce);
    let mut sid = got.properties.subscription_identifiers.clone();
    sid.sort_unstable();
    assert_eq!(sid, vec![11, 22]);
    s.send(&Packet::PubRec(PubResp::new(got.pkid))).await;
    assert!(matches!(s.recv().await, Some(Packet::PubRel(_))));
    s.send(&Packet::PubComp(PubResp::new(got.pkid))).await;
    s.expect_nothing(Duration::from_millis(200)).await;
    // Delivered QoS is min(published, granted).
    p.publish("o/y", b"m", QoS::AtLeastOnce, false, 2).await;
    assert_eq!(s.recv_publish().await.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn no_local() {
    let b = start(BrokerConfig::default()).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "nl", true).await;
    let nl = SubscriptionOptions {
        no_local: true,
        ..Default::default()
    };
    s.subscribe_opts(1, &[("nl/t", nl)], Properties::default())
        .await;
    s.publish("nl/t", b"own", QoS::AtMostOnce, false, 0).await;
    s.expect_nothing(Duration::from_millis(200)).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "nlp", true).await;
    p.publish("nl/t", b"other", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&s.recv_publish().await.payload[..], b"other");
}

#[tokio::test]
async fn suback_codes() {
    let b = start(BrokerConfig::default()).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "sa", true).await;
    let a = s
        .subscribe_opts(
            1,
            &[
                ("ok/#", q(QoS::AtLeastOnce)),
                ("bad/#/x", q(QoS::AtMostOnce)),
                ("$share/g/t", q(QoS::ExactlyOnce)),
            ],
            Properties::default(),
        )
        .await;
    assert_eq!(
        a.reasons,
        vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::GrantedQoS2
        ]
    );
    let (mut s3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "sa3", true).await;
    let a = s3
        .subscribe_opts(
            1,
            &[("a+", q(QoS::AtMostOnce)), ("a", q(QoS::AtMostOnce))],
            Properties::default(),
        )
        .await;
    assert_eq!(
        a.reasons,
        vec![ReasonCode::UnspecifiedError, ReasonCode::Success]
    );
    // Shared subscription with no local: protocol error in 5.0.
    let nl = SubscriptionOptions {
        no_local: true,
        ..Default::default()
    };
    s.send(&Packet::Subscribe(midge_proto::Subscribe {
        pkid: 2,
        filters: vec![midge_proto::Subscription {
            filter: "$share/g/x".into(),
            options: nl,
        }],
        properties: Properties::default(),
    }))
    .await;
    s.expect_disconnect(ReasonCode::ProtocolError).await;
}

#[tokio::test]
async fn maximum_qos_downgrades_grant() {
    let cfg = BrokerConfig {
        maximum_qos: QoS::AtLeastOnce,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "mq", true).await;
    let a = s.subscribe(1, "t", QoS::ExactlyOnce).await;
    assert_eq!(a.reasons, vec![ReasonCode::GrantedQoS1]);
    s.publish("t", b"x", QoS::ExactlyOnce, false, 1).await;
    s.expect_disconnect(ReasonCode::QoSNotSupported).await;
}

#[tokio::test]
async fn unsuback_codes() {
    let b = start(BrokerConfig::default()).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "ua", "u/a", QoS::AtMostOnce).await;
    s.send(&Packet::Unsubscribe(Unsubscribe {
        pkid: 2,
        filters: vec!["u/a".into(), "u/b".into()],
        properties: Properties::default(),
    }))
    .await;
    match s.recv().await {
        Some(Packet::UnsubAck(UnsubAck {
            pkid: 2, reasons, ..
        })) => {
            assert_eq!(
                reasons,
                vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
            )
        }
        other => panic!("{other:?}"),
    }
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "uap", true).await;
    p.publish("u/a", b"x", QoS::AtMostOnce, false, 0).await;
    s.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn topic_alias_inbound() {
    let b = start(BrokerConfig::default()).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "tas", "ta/#", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "tap", true).await;
    let mut m = publish("ta/long/topic", b"1", QoS::AtMostOnce, false, 0);
    m.properties.topic_alias = Some(3);
    p.send(&Packet::Publish(m)).await;
    let mut m = publish("", b"2", QoS::AtMostOnce, false, 0);
    m.properties.topic_alias = Some(3);
    p.send(&Packet::Publish(m)).await;
    let a = s.recv_publish().await;
    let c = s.recv_publish().await;
    assert_eq!(
        (&a.topic[..], &c.topic[..]),
        ("ta/long/topic", "ta/long/topic")
    );
    assert_eq!(&c.payload[..], b"2");
    assert_eq!(c.properties.topic_alias, None, "aliases are per hop");
    // Unknown alias with an empty topic: protocol error.
    let mut m = publish("", b"3", QoS::AtMostOnce, false, 0);
    m.properties.topic_alias = Some(4);
    p.send(&Packet::Publish(m)).await;
    p.expect_disconnect(ReasonCode::ProtocolError).await;
}

#[tokio::test]
async fn topic_alias_outbound() {
    let b = start(BrokerConfig::default()).await;
    let mut c = connect_packet(Protocol::V5, "tao", true);
    c.properties.topic_alias_maximum = Some(2);
    c.properties.maximum_packet_size = Some(64);
    let (mut s, _) = Raw::connect_with(b.addr, c).await;
    s.subscribe(1, "al/#", QoS::AtMostOnce).await;
    let mut s3 = Raw::subscriber(b.addr, Protocol::V3_1_1, "tao3", "al/#", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "taop", true).await;
    // Too large for "tao": dropped, so it binds no alias.
    p.publish("al/a", &[b'x'; 100], QoS::AtMostOnce, false, 0)
        .await;
    for (t, m) in [
        ("al/a", b"1"),
        ("al/a", b"2"),
        ("al/b", b"3"),
        ("al/c", b"4"),
        ("al/a", b"5"),
        ("al/b", b"6"),
    ] {
        p.publish(t, m, QoS::AtMostOnce, false, 0).await;
    }
    let mut got = Vec::new();
    for _ in 0..6 {
        let m = s.recv_publish().await;
        got.push((
            m.topic.to_string(),
            m.properties.topic_alias,
            m.payload[0] - b'0',
        ));
    }
    let e = |t: &str, a, n| (t.to_string(), a, n);
    assert_eq!(
        got,
        [
            e("al/a", Some(1), 1),
            e("", Some(1), 2),
            e("al/b", Some(2), 3),
            e("al/c", None, 4),
            e("", Some(1), 5),
            e("", Some(2), 6)
        ]
    );
    // A 3.1.1 subscriber gets every topic in full.
    assert_eq!(s3.recv_publish().await.payload.len(), 100);
    for _ in 0..6 {
        assert!(s3.recv_publish().await.topic.starts_with("al/"));
    }
}

#[tokio::test]
async fn topic_alias_over_maximum() {
    let cfg = BrokerConfig {
        max_topic_alias: 5,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "tam", true).await;
    let mut m = publish("t", b"1", QoS::AtMostOnce, false, 0);
    m.properties.topic_alias = Some(6);
    p.send(&Packet::Publish(m)).await;
    p.expect_disconnect(ReasonCode::TopicAliasInvalid).await;
}

#[tokio::test]
async fn properties_pass_through_in_order() {
    let b = start(BrokerConfig::default()).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "pps", "pp", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "ppp", true).await;
    let mut m = publish("pp", b"{}", QoS::AtMostOnce, false, 0);
    m.properties.payload_format_indicator = Some(1);
    m.properties.content_type = Some("application/json".into());
    m.properties.response_topic = Some("pp/reply".into());
    m.properties.correlation_data = Some(Bytes::from_static(b"corr"));
    m.properties.user_properties = vec![
        ("b".into(), "1".into()),
        ("a".into(), "2".into()),
        ("b".into(), "3".into()),
    ];
    p.send(&Packet::Publish(m.clone())).await;
    let got = s.recv_publish().await;
    assert_eq!(got.properties, m.properties);
}

#[tokio::test]
async fn message_expiry_drops_queued_and_counts_down() {
    let b = start(BrokerConfig::default()).await;
    let c = persistent_connect("mex", 60);
    let (mut s, _) = Raw::connect_with(b.addr, c.clone()).await;
    s.subscribe(1, "mx/#", QoS::AtLeastOnce).await;
    s.leave().await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "mexp", true).await;
    let mut m = publish("mx/short", b"s", QoS::AtLeastOnce, false, 1);
    m.properties.message_expiry_interval = Some(1);
    p.send(&Packet::Publish(m)).await;
    let mut m = publish("mx/long", b"l", QoS::AtLeastOnce, false, 2);
    m.properties.message_expiry_interval = Some(30);
    p.send(&Packet::Publish(m)).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    tokio::time::sleep(Duration::from_millis(2100)).await; // the expiry itself is the subject
    let dropped_before = b.broker.stats().publish_dropped;
    let (mut s, _) = Raw::connect_with(b.addr, c).await;
    let got = s.recv_publish().await;
    assert_eq!(&got.topic[..], "mx/long");
    let left = got.properties.message_expiry_interval.expect("remaining");
    assert!((27..=28).contains(&left), "{left}");
    s.expect_nothing(Duration::from_millis(200)).await;
    assert_eq!(b.broker.stats().publish_dropped, dropped_before + 1);
}

#[tokio::test]
async fn inbound_receive_maximum_exceeded() {
    let cfg = BrokerConfig {
        receive_maximum: 2,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let (mut p, a) = Raw::connect(b.addr, Protocol::V5, "rm", true).await;
    assert_eq!(a.properties.receive_maximum, Some(2));
    for id in 1..=3 {
        p.publish("rm", b"x", QoS::ExactlyOnce, false, id).await;
    }
    let got = p.expect_close().await;
    assert!(
        matches!(got.last(), Some(Packet::Disconnect(d)) if d.reason == ReasonCode::ReceiveMaximumExceeded),
        "{got:?}"
    );
}

#[tokio::test]
async fn qos2_duplicate_delivered_once_and_unknown_pubrel() {
    let b = start(BrokerConfig::default()).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "q2s", "q2", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "q2p", true).await;
    p.publish("q2", b"once", QoS::ExactlyOnce, false, 9).await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(r)) if r.pkid == 9));
    let mut again = publish("q2", b"once", QoS::ExactlyOnce, false, 9);
    again.dup = true;
    p.send(&Packet::Publish(again)).await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(r)) if r.pkid == 9));
    p.send(&Packet::PubRel(PubResp::new(9))).await;
    assert!(
        matches!(p.recv().await, Some(Packet::PubComp(r)) if r.pkid == 9 && r.reason == ReasonCode::Success)
    );
    p.send(&Packet::PubRel(PubResp::new(9))).await;
    assert!(matches!(
        p.recv().await,
        Some(Packet::PubComp(r)) if r.reason == ReasonCode::PacketIdentifierNotFound
    ));
    assert_eq!(&s.recv_publish().await.payload[..], b"once");
    s.expect_nothing(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn outbound_window_follows_client_receive_maximum() {
    let b = start(BrokerConfig::default()).await;
    let mut c = connect_packet(Protocol::V5, "win", true);
    c.properties.receive_maximum = Some(2);
    let (mut s, _) = Raw::connect_with(b.addr, c).await;
    s.subscribe(1, "w", QoS::AtLeastOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "winp", true).await;
    for i in 1..=4u16 {
        p.publish("w", b"x", QoS::AtLeastOnce, false, i).await;
    }
    let a = s.recv_publish().await;
    let b2 = s.recv_publish().await;
    s.expect_nothing(Duration::from_millis(200)).await;
    s.puback(a.pkid).await;
    let c3 = s.recv_publish().await;
    s.expect_nothing(Duration::from_millis(100)).await;
    s.puback(b2.pkid).await;
    s.puback(c3.pkid).await;
    let _ = s.recv_publish().await;
}

#[tokio::test]
async fn maximum_packet_size_both_ways() {
    let cfg = BrokerConfig {
        max_packet_size: 200,
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    // Outbound: the client's limit. Too large for it: not sent, counted.
    let mut c = connect_packet(Protocol::V5, "mps", true);
    c.properties.maximum_packet_size = Some(60);
    let (mut s, _) = Raw::connect_with(b.addr, c).await;
    s.subscribe(1, "m", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "mpp", true).await;
    let before = b.broker.stats().publish_dropped;
    p.publish("m", &[b'x'; 100], QoS::AtMostOnce, false, 0)
        .await;
    p.publish("m", b"small", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&s.recv_publish().await.payload[..], b"small");
    assert_eq!(b.broker.stats().publish_dropped, before + 1);
    // Inbound: over the broker's limit: DISCONNECT 0x95 (5.0), close (3.1.1).
    p.publish("m", &[b'x'; 300], QoS::AtMostOnce, false, 0)
        .await;
    p.expect_disconnect(ReasonCode::PacketTooLarge).await;
    let (mut p3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "mpp3", true).await;
    p3.publish("m", &[b'x'; 300], QoS::AtMostOnce, false, 0)
        .await;
    assert!(p3.expect_close().await.is_empty());
}

#[tokio::test]
async fn malformed_packet_closes_only_that_connection() {
    let b = start(BrokerConfig::default()).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "mfs", "mf", QoS::AtMostOnce).await;
    let (mut bad, _) = Raw::connect(b.addr, Protocol::V5, "mfb", true).await;
    // PUBLISH with QoS 3.
    bad.send_bytes(&[0x36, 0x05, 0, 1, b'a', 0, 1]).await;
    bad.expect_disconnect(ReasonCode::MalformedPacket).await;
    let (mut bad3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "mfb3", true).await;
    bad3.send_bytes(&[0x62, 0x01, 0]).await; // PUBREL with a 1-byte body
    assert!(bad3.expect_close().await.is_empty());
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "mfp", true).await;
    p.publish("mf", b"still here", QoS::AtMostOnce, false, 0)
        .await;
    assert_eq!(&s.recv_publish().await.payload[..], b"still here");
}

#[tokio::test]
async fn invalid_topic_name_in_publish() {
    let b = start(BrokerConfig::default()).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "itn", true).await;
    p.publish("a/+", b"x", QoS::AtMostOnce, false, 0).await;
    // The codec rejects a wildcard in a topic name as a protocol error.
    let got = p.expect_close().await;
    assert!(
        matches!(&got[..], [Packet::Disconnect(d)] if matches!(d.reason, ReasonCode::ProtocolError | ReasonCode::TopicNameInvalid)),
        "{got:?}"
    );
    // Too many levels is the broker's own check: 0x90.
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "itn2", true).await;
    let deep = "a/".repeat(200) + "b";
    p.send(&Packet::Publish(midge_proto::Publish {
        topic: deep.into(),
        ..publish("x", b"x", QoS::AtMostOnce, false, 0)
    }))
    .await;
    p.expect_disconnect(ReasonCode::TopicNameInvalid).await;
}

#[tokio::test]
async fn subscription_identifier_from_client_is_protocol_error() {
    let b = start(BrokerConfig::default()).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "sidp", true).await;
    let mut m = publish("t", b"x", QoS::AtMostOnce, false, 0);
    m.properties.subscription_identifiers = vec![3];
    p.send(&Packet::Publish(m)).await;
    p.expect_disconnect(ReasonCode::ProtocolError).await;
}

#[tokio::test]
async fn payload_format_indicator_checked() {
    let b = start(BrokerConfig::default()).await;
    let mut s = Raw::subscriber(b.addr, Protocol::V5, "pfis", "pfi", QoS::AtMostOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "pfip", true).await;
    let mut m = publish("pfi", b"\xff\xfe", QoS::AtLeastOnce, false, 1);
    m.properties.payload_format_indicator = Some(1);
    p.send(&Packet::Publish(m)).await;
    assert!(
        matches!(p.recv().await, Some(Packet::PubAck(r)) if r.reason == ReasonCode::PayloadFormatInvalid)
    );
    let mut m = publish(
        "pfi",
        "ünïcode".as_bytes().to_vec().leak(),
        QoS::AtLeastOnce,
        false,
        2,
    );
    m.properties.payload_format_indicator = Some(1);
    p.send(&Packet::Publish(m)).await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(r)) if r.reason == ReasonCode::Success));
    assert_eq!(&s.recv_publish().await.payload[..], "ünïcode".as_bytes());
}
