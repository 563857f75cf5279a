//! Wills: abnormal close, keep-alive expiry, takeover, protocol error; not
//! after DISCONNECT, but after DISCONNECT 0x04; will delay.

mod common;

use std::time::Duration;

use common::*;
use midge_broker::BrokerConfig;
use midge_proto::{Connect, Protocol, QoS, ReasonCode};

fn with_will(protocol: Protocol, id: &str, topic: &str) -> Connect {
    let mut c = connect_packet(protocol, id, true);
    c.will = Some(will(topic, b"gone", QoS::AtLeastOnce, false));
    c
}

async fn watcher(b: &TestBroker, topic: &str) -> Raw {
    let id = format!("watch-{topic}");
    Raw::subscriber(b.addr, Protocol::V5, &id, topic, QoS::AtLeastOnce).await
}

#[tokio::test]
async fn will_on_abnormal_close() {
    let b = start(BrokerConfig::default()).await;
    let mut w = watcher(&b, "will/abn").await;
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let (c, _) = Raw::connect_with(b.addr, with_will(protocol, "abn", "will/abn")).await;
        drop(c);
        let p = w.recv_publish().await;
        assert_eq!((&p.topic[..], &p.payload[..]), ("will/abn", &b"gone"[..]));
        w.puback(p.pkid).await;
    }
}

#[tokio::test]
async fn no_will_after_disconnect_but_after_0x04() {
    let b = start(BrokerConfig::default()).await;
    let mut w = watcher(&b, "will/d").await;
    let (mut c, _) = Raw::connect_with(b.addr, with_will(Protocol::V5, "d", "will/d")).await;
    c.leave().await;
    w.expect_nothing(Duration::from_millis(300)).await;
    let (mut c, _) = Raw::connect_with(b.addr, with_will(Protocol::V5, "d", "will/d")).await;
    c.disconnect(ReasonCode::DisconnectWithWillMessage).await;
    let p = w.recv_publish().await;
    assert_eq!(&p.payload[..], b"gone");
}

#[tokio::test]
async fn will_on_keep_alive_timeout() {
    let b = start(BrokerConfig::default()).await;
    let mut w = watcher(&b, "will/ka").await;
    let mut c = with_will(Protocol::V5, "ka", "will/ka");
    c.keep_alive = 1;
    let (mut conn, _) = Raw::connect_with(b.addr, c).await;
    let t = std::time::Instant::now();
    conn.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(3000),
        "closed after {waited:?}"
    );
    let p = w.recv_publish().await;
    assert_eq!(&p.topic[..], "will/ka");
}

#[tokio::test]
async fn keep_alive_kept_by_pings() {
    let b = start(BrokerConfig::default()).await;
    let mut c = connect_packet(Protocol::V3_1_1, "ping", true);
    c.keep_alive = 1;
    let (mut conn, _) = Raw::connect_with(b.addr, c).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        conn.send(&midge_proto::Packet::PingReq).await;
        assert_eq!(conn.recv().await, Some(midge_proto::Packet::PingResp));
    }
}

#[tokio::test]
async fn will_on_takeover_and_protocol_error() {
    let b = start(BrokerConfig::default()).await;
    let mut w = watcher(&b, "will/t").await;
    let (_c, _) = Raw::connect_with(b.addr, with_will(Protocol::V3_1_1, "tk", "will/t")).await;
    let (mut c2, _) = Raw::connect_with(b.addr, with_will(Protocol::V3_1_1, "tk", "will/t")).await;
    let p = w.recv_publish().await;
    assert_eq!(&p.payload[..], b"gone");
    w.puback(p.pkid).await;
    // Protocol error (second CONNECT): the will goes too.
    c2.send_connect(connect_packet(Protocol::V3_1_1, "tk", true))
        .await;
    let p = w.recv_publish().await;
    assert_eq!(&p.payload[..], b"gone");
}

#[tokio::test]
async fn will_delay_cancelled_by_reconnect_and_fires_otherwise() {
    let b = start(BrokerConfig::default()).await;
    let mut w = watcher(&b, "will/delay").await;
    let mut c = with_will(Protocol::V5, "wd", "will/delay");
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(60);
    if let Some(will) = c.will.as_mut() {
        will.properties.will_delay_interval = Some(1);
    }
    let (conn, _) = Raw::connect_with(b.addr, c.clone()).await;
    drop(conn);
    // Reconnect within the delay: no will.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (conn, a) = Raw::connect_with(b.addr, c.clone()).await;
    assert!(a.session_present);
    w.expect_nothing(Duration::from_millis(1500)).await;
    // Now stay away: the will comes after about a second.
    let t = std::time::Instant::now();
    drop(conn);
    let p = w.recv_publish().await;
    assert_eq!(&p.topic[..], "will/delay");
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn will_delay_capped_by_session_end() {
    let b = start(BrokerConfig::default()).await;
    let mut w = watcher(&b, "will/end").await;
    let mut c = with_will(Protocol::V5, "we", "will/end");
    if let Some(will) = c.will.as_mut() {
        will.properties.will_delay_interval = Some(60);
    }
    // Session expiry 0: the session ends at disconnect, so the will goes now.
    let (conn, _) = Raw::connect_with(b.addr, c).await;
    drop(conn);
    let p = w.recv_publish().await;
    assert_eq!(&p.topic[..], "will/end");
}

#[tokio::test]
async fn will_retain_and_qos() {
    let b = start(BrokerConfig::default()).await;
    let mut c = connect_packet(Protocol::V3_1_1, "wr", true);
    c.will = Some(will("will/r", b"r", QoS::ExactlyOnce, true));
    let (conn, _) = Raw::connect_with(b.addr, c).await;
    drop(conn);
    // The will's own topic: `$SYS` topics are retained too, so a count
    // would be above 0 before the will is stored.
    until("retained will not stored", || {
        !b.broker.retained("will/r").is_empty()
    })
    .await;
    let mut s = Raw::subscriber(b.addr, Protocol::V3_1_1, "wrs", "will/r", QoS::ExactlyOnce).await;
    let p = s.recv_publish().await;
    assert!(p.retain);
    assert_eq!(p.qos, QoS::ExactlyOnce);
}
