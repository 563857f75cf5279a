//! `$SYS/broker/...` topics.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{Packet, Protocol, QoS};

#[tokio::test]
async fn sys_topics_published() {
    let cfg = BrokerConfig {
        sys_interval: Duration::from_millis(200),
        ..BrokerConfig::default()
    };
    let b = start(cfg).await;
    let mut s = Raw::subscriber(
        b.addr,
        Protocol::V3_1_1,
        "sys",
        "$SYS/broker/#",
        QoS::AtMostOnce,
    )
    .await;
    let mut seen: HashMap<String, String> = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    // Values move between ticks: keep reading until clients/connected says 1.
    while seen
        .get("$SYS/broker/clients/connected")
        .map(String::as_str)
        != Some("1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing $SYS topics: {seen:?}"
        );
        if let Ok(Some(Packet::Publish(p))) = s.recv_within(Duration::from_millis(500)).await {
            seen.insert(
                p.topic.to_string(),
                String::from_utf8_lossy(&p.payload).into_owned(),
            );
        }
    }
    for t in [
        "version",
        "uptime",
        "clients/total",
        "clients/maximum",
        "clients/disconnected",
        "messages/received",
        "messages/sent",
        "retained messages/count",
        "bytes/received",
        "bytes/sent",
        "publish/messages/dropped",
        "publish/messages/received",
        "publish/messages/sent",
        "subscriptions/count",
        "load/messages/received/1min",
        "load/bytes/sent/15min",
    ] {
        assert!(
            seen.contains_key(&format!("$SYS/broker/{t}")),
            "{t} missing: {:?}",
            seen.keys()
        );
    }
    assert!(seen["$SYS/broker/version"].starts_with("midge "));
    assert!(seen["$SYS/broker/uptime"].ends_with(" seconds"));
    assert_eq!(seen["$SYS/broker/clients/connected"], "1");
    // `#` alone does not see $SYS.
    let mut all = Raw::subscriber(b.addr, Protocol::V3_1_1, "all", "#", QoS::AtMostOnce).await;
    all.expect_nothing(Duration::from_millis(500)).await;
}
