//! Message and drop counts come from the broker's counters; per-message
//! events are sent only to those who ask for them (`Broker::events`).

mod common;

use std::time::Duration;

use common::*;
use midge_broker::{BrokerConfig, Event, Stats};
use midge_proto::{Protocol, QoS, ReasonCode};
use tokio::sync::broadcast::error::TryRecvError;

/// Waits (bounded) until `f` holds for the broker's stats: a publisher's
/// counts reach the shared counters when its connection loop comes round.
async fn stats_until(t: &TestBroker, f: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = t.broker.stats();
        if f(&s) || tokio::time::Instant::now() >= deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut got = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => got.push(e),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(_) => return got,
        }
    }
}

#[tokio::test]
async fn published_counted_by_qos_without_message_events() {
    let t = start(BrokerConfig::default()).await;
    let mut events = t.broker.lifecycle_events();
    let mut sub = Raw::subscriber(t.addr, Protocol::V3_1_1, "sub", "t/#", QoS::AtLeastOnce).await;
    let (mut publ, _) = Raw::connect(t.addr, Protocol::V3_1_1, "pub", true).await;
    for _ in 0..3 {
        publ.publish("t/a", b"abc", QoS::AtMostOnce, false, 0).await;
    }
    publ.publish("t/b", b"hello", QoS::AtLeastOnce, false, 1)
        .await;
    publ.publish("t/b", b"hello", QoS::AtLeastOnce, false, 2)
        .await;
    for _ in 0..5 {
        let p = sub.recv_publish().await;
        if p.qos == QoS::AtLeastOnce {
            sub.puback(p.pkid).await;
        }
    }
    let s = stats_until(&t, |s| s.published_by_qos == [3, 2, 0]).await;
    assert_eq!(s.published_by_qos, [3, 2, 0]);
    assert_eq!(s.published_bytes_by_qos, [9, 10, 0]);
    let got = drain(&mut events);
    assert!(
        got.iter()
            .any(|e| matches!(e, Event::ClientConnected { .. })),
        "lifecycle events arrive: {got:?}"
    );
    assert!(
        !got.iter().any(|e| matches!(
            e,
            Event::MessagePublished { .. } | Event::MessageDropped { .. }
        )),
        "no per-message events unless asked for: {got:?}"
    );
}

#[tokio::test]
async fn events_turn_per_message_events_on() {
    let t = start(BrokerConfig::default()).await;
    let mut events = t.broker.events();
    let mut sub = Raw::subscriber(t.addr, Protocol::V5, "sub", "t", QoS::AtMostOnce).await;
    let (mut publ, _) = Raw::connect(t.addr, Protocol::V5, "pub", true).await;
    publ.publish("t", b"x", QoS::AtMostOnce, false, 0).await;
    let _ = sub.recv_publish().await;
    let got = drain(&mut events);
    assert!(
        got.iter()
            .any(|e| matches!(e, Event::MessagePublished { topic, .. } if &**topic == "t")),
        "{got:?}"
    );
}

#[tokio::test]
async fn drops_counted_by_reason() {
    let config = BrokerConfig {
        max_queued_messages: 2,
        ..BrokerConfig::default()
    };
    let t = start(config).await;
    // A persistent session, offline: it keeps QoS 1 messages, two at most.
    let (mut sub, _) = Raw::connect(t.addr, Protocol::V3_1_1, "sub", false).await;
    sub.subscribe(1, "t", QoS::AtLeastOnce).await;
    sub.disconnect(ReasonCode::Success).await;
    let _ = sub.expect_close().await;
    let offline = stats_until(&t, |s| s.clients_connected == 0).await;
    assert_eq!(offline.clients_connected, 0);
    let (mut publ, _) = Raw::connect(t.addr, Protocol::V3_1_1, "pub", true).await;
    for pkid in 1..=5 {
        publ.publish("t", b"x", QoS::AtLeastOnce, false, pkid).await;
    }
    // The fifth PUBACK says all five were routed.
    for _ in 1..=5 {
        match publ.recv().await {
            Some(midge_proto::Packet::PubAck(_)) => {}
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let s = stats_until(&t, |s| s.publish_dropped == 3).await;
    assert_eq!(s.publish_dropped, 3);
    assert_eq!(s.dropped_by_reason.queue_full, 3);
    assert_eq!(s.dropped_by_reason.offline, 0);
    assert_eq!(s.messages_stored, 2);
}
