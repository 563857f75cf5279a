//! Connect, publish/subscribe at every QoS, retained, with the raw client.

mod common;

use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{Packet, Protocol, PubResp, QoS, ReasonCode};

#[tokio::test]
async fn qos0_1_2_both_directions() {
    let b = start(BrokerConfig::default()).await;
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let (mut sub, _) = Raw::connect(b.addr, protocol, "sub", true).await;
        let ack = sub.subscribe(1, "a/+", QoS::ExactlyOnce).await;
        assert_eq!(ack.reasons, vec![ReasonCode::GrantedQoS2]);
        let (mut publ, _) = Raw::connect(b.addr, protocol, "pub", true).await;

        publ.publish("a/0", b"zero", QoS::AtMostOnce, false, 0)
            .await;
        let p = sub.recv_publish().await;
        assert_eq!(
            (&p.topic[..], &p.payload[..], p.qos),
            ("a/0", &b"zero"[..], QoS::AtMostOnce)
        );

        publ.publish("a/1", b"one", QoS::AtLeastOnce, false, 7)
            .await;
        assert!(matches!(
            publ.recv().await,
            Some(Packet::PubAck(PubResp { pkid: 7, .. }))
        ));
        let p = sub.recv_publish().await;
        assert_eq!((p.qos, &p.payload[..]), (QoS::AtLeastOnce, &b"one"[..]));
        sub.puback(p.pkid).await;

        publ.publish("a/2", b"two", QoS::ExactlyOnce, false, 8)
            .await;
        assert!(matches!(
            publ.recv().await,
            Some(Packet::PubRec(PubResp { pkid: 8, .. }))
        ));
        publ.send(&Packet::PubRel(PubResp::new(8))).await;
        assert!(matches!(
            publ.recv().await,
            Some(Packet::PubComp(PubResp { pkid: 8, .. }))
        ));
        let p = sub.recv_publish().await;
        assert_eq!(p.qos, QoS::ExactlyOnce);
        sub.send(&Packet::PubRec(PubResp::new(p.pkid))).await;
        assert!(matches!(sub.recv().await, Some(Packet::PubRel(r)) if r.pkid == p.pkid));
        sub.send(&Packet::PubComp(PubResp::new(p.pkid))).await;
        sub.disconnect(ReasonCode::Success).await;
        publ.disconnect(ReasonCode::Success).await;
        assert!(sub.expect_close().await.is_empty());
        assert!(publ.expect_close().await.is_empty());
    }
}
