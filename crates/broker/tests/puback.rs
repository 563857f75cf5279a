//! PUBACKs from subscribers: the common 4-byte form (handled by the
//! connection without the decoder) and the others (through the decoder)
//! both open the in-flight window; a packet id of 0 still closes the
//! connection (the decoder's Protocol Error).

mod common;

use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{Packet, Protocol, PubResp, QoS, ReasonCode};

/// A broker whose subscribers get one QoS 1 message in flight at a time.
async fn window_of_one() -> TestBroker {
    start(BrokerConfig {
        max_inflight: 1,
        ..BrokerConfig::default()
    })
    .await
}

async fn two_messages_one_window(protocol: Protocol, ack: impl Fn(u16) -> Vec<u8>) {
    let t = window_of_one().await;
    let (mut sub, _) = Raw::connect(t.addr, protocol, "sub", true).await;
    sub.subscribe(1, "t", QoS::AtLeastOnce).await;
    let (mut publ, _) = Raw::connect(t.addr, protocol, "pub", true).await;
    publ.publish("t", b"one", QoS::AtLeastOnce, false, 1).await;
    publ.publish("t", b"two", QoS::AtLeastOnce, false, 2).await;
    let first = sub.recv_publish().await;
    assert_eq!(&first.payload[..], b"one");
    // The window is full until the first is acknowledged.
    sub.expect_nothing(std::time::Duration::from_millis(200))
        .await;
    sub.send_bytes(&ack(first.pkid)).await;
    let second = sub.recv_publish().await;
    assert_eq!(&second.payload[..], b"two");
}

#[tokio::test]
async fn four_byte_puback_opens_the_window() {
    let short = |pkid: u16| {
        let [hi, lo] = pkid.to_be_bytes();
        vec![0x40, 0x02, hi, lo]
    };
    two_messages_one_window(Protocol::V3_1_1, short).await;
    two_messages_one_window(Protocol::V5, short).await;
}

#[tokio::test]
async fn puback_with_reason_code_opens_the_window() {
    // 5.0 PUBACK with a reason code (0x10 No matching subscribers, a
    // success code): remaining length 3, through the decoder.
    let with_reason = |pkid: u16| {
        let [hi, lo] = pkid.to_be_bytes();
        vec![0x40, 0x03, hi, lo, 0x10]
    };
    two_messages_one_window(Protocol::V5, with_reason).await;
}

#[tokio::test]
async fn puback_with_packet_id_zero_is_refused() {
    let t = start(BrokerConfig::default()).await;
    let (mut c, _) = Raw::connect(t.addr, Protocol::V5, "c", true).await;
    c.send_bytes(&[0x40, 0x02, 0x00, 0x00]).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;
    // And a well-formed one for an unknown id is ignored, not an error.
    let (mut c, _) = Raw::connect(t.addr, Protocol::V3_1_1, "d", true).await;
    c.send(&Packet::PubAck(PubResp::new(9))).await;
    c.send(&Packet::PingReq).await;
    assert!(matches!(c.recv().await, Some(Packet::PingResp)));
}
