//! Interoperability with a third-party client: rumqttc, MQTT 3.1.1 and 5.0.

mod common;

use std::time::Duration;

use common::*;
use midge_broker::BrokerConfig;

/// Polls a 3.1.1 event loop until an incoming packet that `pick` turns
/// into a value arrives; fails after [`WAIT`], naming `what`.
async fn v4_incoming<T>(
    el: &mut rumqttc::EventLoop,
    what: &str,
    mut pick: impl FnMut(rumqttc::Packet) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let Ok(polled) = tokio::time::timeout_at(deadline, el.poll()).await else {
            panic!("no {what} within the timeout");
        };
        let ev = polled.expect("event loop error");
        if let rumqttc::Event::Incoming(p) = ev {
            if let Some(t) = pick(p) {
                return t;
            }
        }
    }
}

async fn next_v4_publish(el: &mut rumqttc::EventLoop) -> rumqttc::Publish {
    v4_incoming(el, "publish", |p| match p {
        rumqttc::Packet::Publish(p) => Some(p),
        _ => None,
    })
    .await
}

async fn wait_v4_suback(el: &mut rumqttc::EventLoop) {
    v4_incoming(el, "SUBACK", |p| {
        matches!(p, rumqttc::Packet::SubAck(_)).then_some(())
    })
    .await
}

/// Polls a 5.0 event loop until an incoming packet that `pick` turns into
/// a value arrives, by `deadline`.
async fn v5_incoming<T>(
    el: &mut rumqttc::v5::EventLoop,
    deadline: tokio::time::Instant,
    mut pick: impl FnMut(rumqttc::v5::mqttbytes::v5::Packet) -> Option<T>,
) -> T {
    loop {
        let ev = tokio::time::timeout_at(deadline, el.poll())
            .await
            .expect("timeout")
            .expect("poll");
        if let rumqttc::v5::Event::Incoming(p) = ev {
            if let Some(t) = pick(p) {
                return t;
            }
        }
    }
}

#[tokio::test]
async fn rumqttc_v4_pub_sub_all_qos() {
    let b = start(BrokerConfig::default()).await;
    let mut so = rumqttc::MqttOptions::new("rv4-sub", "127.0.0.1", b.addr.port());
    so.set_keep_alive(Duration::from_secs(5));
    let (sub, mut sel) = rumqttc::AsyncClient::new(so, 16);
    sub.subscribe("r4/#", rumqttc::QoS::ExactlyOnce)
        .await
        .expect("subscribe");
    wait_v4_suback(&mut sel).await;
    let po = rumqttc::MqttOptions::new("rv4-pub", "127.0.0.1", b.addr.port());
    let (publ, mut pel) = rumqttc::AsyncClient::new(po, 16);
    tokio::spawn(async move {
        // Drives the publisher; ends when the client is dropped.
        while pel.poll().await.is_ok() {}
    });
    for (i, qos) in [
        rumqttc::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce,
    ]
    .into_iter()
    .enumerate()
    {
        publ.publish(format!("r4/{i}"), qos, false, vec![i as u8; 3])
            .await
            .expect("publish");
        let p = next_v4_publish(&mut sel).await;
        assert_eq!(p.topic, format!("r4/{i}"));
        assert_eq!(p.qos, qos);
        assert_eq!(&p.payload[..], &[i as u8; 3]);
    }
}

#[tokio::test]
async fn rumqttc_v5_pub_sub_with_properties() {
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, MqttOptions};
    let b = start(BrokerConfig::default()).await;
    let so = MqttOptions::new("rv5-sub", "127.0.0.1", b.addr.port());
    let (sub, mut sel) = AsyncClient::new(so, 16);
    sub.subscribe("r5/+", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let deadline = tokio::time::Instant::now() + WAIT;
    v5_incoming(&mut sel, deadline, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await;
    let po = MqttOptions::new("rv5-pub", "127.0.0.1", b.addr.port());
    let (publ, mut pel) = AsyncClient::new(po, 16);
    tokio::spawn(async move { while pel.poll().await.is_ok() {} });
    let props = PublishProperties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    publ.publish_with_properties("r5/x", QoS::ExactlyOnce, false, "hello", props)
        .await
        .expect("publish");
    let p = v5_incoming(&mut sel, deadline, |p| match p {
        Packet::Publish(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(&p.topic[..], b"r5/x");
    assert_eq!(&p.payload[..], b"hello");
    assert_eq!(p.qos, QoS::AtLeastOnce, "min(published 2, granted 1)");
    let props = p.properties.expect("properties");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        props.user_properties,
        vec![("k".to_string(), "v".to_string())]
    );
}
