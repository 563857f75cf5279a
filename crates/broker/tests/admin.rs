//! The management API: clients (online and offline), subscriptions,
//! retained messages, administrative disconnect with and without discarding
//! the session; per-client and broker-wide drop counts (QoS 0 discarded
//! when a session goes offline) and the stored-messages gauge.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use midge_broker::{BrokerConfig, DropReason, Event, Transport};
use midge_proto::{
    Packet, Properties, Protocol, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
};
use tokio::sync::broadcast;

/// Waits for the broker's ClientDisconnected event of `id`.
async fn disconnected(ev: &mut broadcast::Receiver<Event>, id: &str) -> ReasonCode {
    next_event(ev, |e| match e {
        Event::ClientDisconnected {
            client_id, reason, ..
        } if &*client_id == id => Some(reason),
        _ => None,
    })
    .await
}

/// Sends PINGREQ and waits for PINGRESP: everything sent before is handled.
async fn sync(c: &mut Raw) {
    c.send(&Packet::PingReq).await;
    loop {
        match c.recv().await {
            Some(Packet::PingResp) => return,
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
}

#[tokio::test]
async fn clients_online_and_offline() {
    let b = start(BrokerConfig::default()).await;
    let mut ev = b.broker.events();
    let before = SystemTime::now();
    let mut c = connect_packet(Protocol::V5, "adm-a", true);
    c.username = Some("alice".into());
    c.keep_alive = 30;
    c.properties.session_expiry_interval = Some(60);
    let (mut a, _) = Raw::connect_with(b.addr, c).await;
    a.subscribe(1, "x/#", QoS::AtLeastOnce).await;
    a.subscribe(2, "y", QoS::AtMostOnce).await;
    let (mut c3, _) = Raw::connect(b.addr, Protocol::V3_1_1, "adm-b", true).await;
    let after = SystemTime::now();

    let all = b.broker.clients();
    let ids: Vec<&str> = all.iter().map(|c| &*c.client_id).collect();
    assert_eq!(ids, ["adm-a", "adm-b"]);
    let i = &all[0];
    assert_eq!(i.username.as_deref(), Some("alice"));
    assert_eq!(i.remote_addr, Some(a.stream.local_addr().expect("addr")));
    assert_eq!(i.listener.as_deref(), Some("test"));
    assert_eq!(i.transport, Some(Transport::Tcp));
    assert_eq!(i.protocol, Protocol::V5);
    assert_eq!(i.keep_alive, 30);
    assert!(i.clean_start);
    assert_eq!(i.session_expiry_interval, 60);
    assert_eq!(i.subscriptions, 2);
    assert_eq!((i.queued, i.inflight, i.dropped), (0, 0, 0));
    let since = i.connected_since.expect("online");
    assert!(before <= since && since <= after, "{since:?}");
    assert_eq!(all[1].protocol, Protocol::V3_1_1);
    assert_eq!(all[1].session_expiry_interval, 0);
    assert_eq!(b.broker.client("adm-b"), Some(all[1].clone()));
    assert_eq!(b.broker.client("nobody"), None);

    // Offline: still listed, with its last address, not connected.
    a.disconnect(ReasonCode::Success).await;
    assert_eq!(disconnected(&mut ev, "adm-a").await, ReasonCode::Success);
    let off = b.broker.client("adm-a").expect("persistent session kept");
    assert_eq!(off.connected_since, None);
    assert_eq!(off.remote_addr, i.remote_addr);
    assert_eq!(off.subscriptions, 2);
    // A clean 3.1.1 session is gone with its connection.
    c3.disconnect(ReasonCode::Success).await;
    disconnected(&mut ev, "adm-b").await;
    assert_eq!(b.broker.client("adm-b"), None);
}

#[tokio::test]
async fn queued_inflight_and_qos0_dropped_on_going_offline() {
    let b = start(BrokerConfig::default()).await;
    let mut ev = b.broker.events();
    let mut drops = b.broker.events();
    let mut c = connect_packet(Protocol::V5, "adm-q", true);
    c.properties.session_expiry_interval = Some(60);
    c.properties.receive_maximum = Some(1);
    let (mut s, _) = Raw::connect_with(b.addr, c).await;
    s.subscribe(1, "q", QoS::AtLeastOnce).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "adm-qp", true).await;
    // m1 goes in flight (window of 1); m2 and the QoS 0 m3 wait behind it.
    p.publish("q", b"m1", QoS::AtLeastOnce, false, 1).await;
    p.publish("q", b"m2", QoS::AtLeastOnce, false, 2).await;
    p.publish("q", b"m3", QoS::AtMostOnce, false, 0).await;
    sync(&mut p).await;
    assert_eq!(&s.recv_publish().await.payload[..], b"m1");
    let on = b.broker.client("adm-q").expect("client");
    assert_eq!((on.queued, on.inflight, on.dropped), (2, 1, 0));
    assert_eq!(b.broker.stats().messages_stored, 3);

    drop(s);
    disconnected(&mut ev, "adm-q").await;
    let off = b.broker.client("adm-q").expect("client");
    assert_eq!((off.queued, off.inflight, off.dropped), (1, 1, 1));
    let st = b.broker.stats();
    assert_eq!(st.publish_dropped, 1);
    assert_eq!(st.messages_stored, 2);
    let (client_id, reason) = next_event(&mut drops, |e| match e {
        Event::MessageDropped { client_id, reason } => Some((client_id, reason)),
        _ => None,
    })
    .await;
    assert_eq!((&*client_id, reason), ("adm-q", DropReason::Offline));
    // Discarding the session discards what it stored.
    assert!(b.broker.disconnect_client("adm-q", true));
    assert_eq!(b.broker.stats().messages_stored, 0);
}

#[tokio::test]
async fn disconnect_client_keeps_or_discards_the_session() {
    let b = start(BrokerConfig::default()).await;
    let mut ev = b.broker.events();
    let mut w = Raw::subscriber(b.addr, Protocol::V5, "adm-watch", "will/#", QoS::AtMostOnce).await;
    assert!(!b.broker.disconnect_client("nobody", true));

    let mut c = connect_packet(Protocol::V5, "adm-d5", true);
    c.properties.session_expiry_interval = Some(300);
    c.will = Some(will("will/d5", b"w5", QoS::AtMostOnce, false));
    let (mut d5, _) = Raw::connect_with(b.addr, c.clone()).await;
    d5.subscribe(1, "keep/#", QoS::AtLeastOnce).await;
    assert!(b.broker.disconnect_client("adm-d5", false));
    d5.expect_disconnect(ReasonCode::AdministrativeAction).await;
    assert_eq!(
        disconnected(&mut ev, "adm-d5").await,
        ReasonCode::AdministrativeAction
    );
    assert_eq!(&w.recv_publish().await.payload[..], b"w5");
    // The session stays: offline now, nothing more to disconnect.
    assert_eq!(b.broker.client("adm-d5").map(|c| c.subscriptions), Some(1));
    assert!(!b.broker.disconnect_client("adm-d5", false));
    // Discarded while offline: gone, and a reconnect finds nothing.
    assert!(b.broker.disconnect_client("adm-d5", true));
    assert_eq!(b.broker.client("adm-d5"), None);
    assert_eq!(b.broker.stats().subscriptions, 1, "only the watcher's");
    c.clean_start = false;
    c.will = None;
    let (_d5, ack) = Raw::connect_with(b.addr, c).await;
    assert!(!ack.session_present);

    // Online 3.1.1 with discard: closed without a packet, will published,
    // session and subscriptions gone at once.
    let mut c = connect_packet(Protocol::V3_1_1, "adm-d3", false);
    c.will = Some(will("will/d3", b"w3", QoS::AtMostOnce, false));
    let (mut d3, _) = Raw::connect_with(b.addr, c).await;
    d3.subscribe(1, "gone/#", QoS::AtLeastOnce).await;
    assert!(b.broker.disconnect_client("adm-d3", true));
    assert_eq!(b.broker.client("adm-d3"), None);
    assert!(d3.expect_close().await.is_empty());
    assert_eq!(&w.recv_publish().await.payload[..], b"w3");
    assert!(b
        .broker
        .subscriptions()
        .iter()
        .all(|s| &*s.client_id != "adm-d3"));
}

#[tokio::test]
async fn discarding_an_offline_session_publishes_its_delayed_will() {
    let b = start(BrokerConfig::default()).await;
    let mut ev = b.broker.events();
    let mut w = Raw::subscriber(
        b.addr,
        Protocol::V5,
        "adm-watch2",
        "will/#",
        QoS::AtMostOnce,
    )
    .await;
    let mut c = connect_packet(Protocol::V5, "adm-late", true);
    c.properties.session_expiry_interval = Some(300);
    let mut wl = will("will/late", b"late", QoS::AtMostOnce, false);
    wl.properties.will_delay_interval = Some(300);
    c.will = Some(wl);
    let (l, _) = Raw::connect_with(b.addr, c).await;
    drop(l);
    disconnected(&mut ev, "adm-late").await;
    w.expect_nothing(Duration::from_millis(100)).await;
    assert!(b.broker.disconnect_client("adm-late", true));
    assert_eq!(&w.recv_publish().await.payload[..], b"late");
}

#[tokio::test]
async fn subscriptions_list_options() {
    let b = start(BrokerConfig::default()).await;
    let (mut s, _) = Raw::connect(b.addr, Protocol::V5, "adm-s", true).await;
    let opts = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let props = Properties {
        subscription_identifiers: vec![7],
        ..Properties::default()
    };
    s.subscribe_opts(1, &[("s/+", opts)], props).await;
    s.subscribe(2, "$share/grp/s/x", QoS::AtLeastOnce).await;
    let _t = Raw::subscriber(b.addr, Protocol::V3_1_1, "adm-t", "t/#", QoS::AtMostOnce).await;

    let subs = b.broker.subscriptions();
    let keys: Vec<(&str, &str)> = subs.iter().map(|s| (&*s.client_id, &*s.filter)).collect();
    assert_eq!(
        keys,
        [
            ("adm-s", "$share/grp/s/x"),
            ("adm-s", "s/+"),
            ("adm-t", "t/#")
        ]
    );
    assert_eq!(subs[0].shared_group.as_deref(), Some("grp"));
    assert_eq!(subs[0].qos, QoS::AtLeastOnce);
    let p = &subs[1];
    assert_eq!(
        (
            p.qos,
            p.no_local,
            p.retain_as_published,
            p.retain_handling,
            p.subscription_id,
            p.shared_group.clone()
        ),
        (
            QoS::ExactlyOnce,
            true,
            true,
            RetainHandling::DoNotSend,
            Some(7),
            None
        )
    );
    assert_eq!(subs[2].subscription_id, None);
}

#[tokio::test]
async fn retained_by_filter() {
    let b = start(BrokerConfig::default()).await;
    let (mut p, _) = Raw::connect(b.addr, Protocol::V5, "adm-r", true).await;
    for (t, m) in [
        ("a/2", b"2"),
        ("a/1", b"1"),
        ("b/1", b"3"),
        ("a/1/deep", b"4"),
    ] {
        p.publish(t, m, QoS::AtMostOnce, true, 0).await;
    }
    sync(&mut p).await;
    let topics = |f: &str| -> Vec<String> {
        b.broker
            .retained(f)
            .iter()
            .map(|m| m.topic.to_string())
            .collect()
    };
    assert_eq!(topics("a/+"), ["a/1", "a/2"]);
    assert_eq!(topics("#"), ["a/1", "a/1/deep", "a/2", "b/1"]);
    assert_eq!(topics("b/1"), ["b/1"]);
    assert_eq!(topics("$share/g/a/1/#"), ["a/1", "a/1/deep"]);
    assert!(topics("a/#/x").is_empty(), "invalid filter");
    assert!(topics("c/#").is_empty());
    assert_eq!(&b.broker.retained("a/2")[0].payload[..], b"2");
}
