//! Interoperability with a third-party client: rumqttc, MQTT 3.1.1 and 5.0.

mod common;

use std::time::Duration;

use common::*;
use midge_broker::BrokerConfig;

/// Polls an event loop until a publish arrives (or the timeout passes).
async fn next_v4_publish(el: &mut rumqttc::EventLoop) -> rumqttc::Publish {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, el.poll())
            .await
            .expect("no publish within the timeout")
            .expect("event loop error");
        if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = ev {
            return p;
        }
    }
}

async fn wait_v4_suback(el: &mut rumqttc::EventLoop) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, el.poll())
            .await
            .expect("no SUBACK within the timeout")
            .expect("event loop error");
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = ev {
            return;
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
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let b = start(BrokerConfig::default()).await;
    let so = MqttOptions::new("rv5-sub", "127.0.0.1", b.addr.port());
    let (sub, mut sel) = AsyncClient::new(so, 16);
    sub.subscribe("r5/+", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, sel.poll())
            .await
            .expect("timeout")
            .expect("poll");
        if let Event::Incoming(Packet::SubAck(_)) = ev {
            break;
        }
    }
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
    loop {
        let ev = tokio::time::timeout_at(deadline, sel.poll())
            .await
            .expect("timeout")
            .expect("poll");
        if let Event::Incoming(Packet::Publish(p)) = ev {
            assert_eq!(&p.topic[..], b"r5/x");
            assert_eq!(&p.payload[..], b"hello");
            assert_eq!(p.qos, QoS::AtLeastOnce, "min(published 2, granted 1)");
            let props = p.properties.expect("properties");
            assert_eq!(props.content_type.as_deref(), Some("text/plain"));
            assert_eq!(
                props.user_properties,
                vec![("k".to_string(), "v".to_string())]
            );
            break;
        }
    }
}
