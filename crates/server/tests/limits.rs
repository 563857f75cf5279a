//! Admission limits at the listener: a per-listener connection cap refuses
//! a flood of 1,000 extra connections without harming the established
//! ones, and a per-source connection rate throttles reconnect storms.

mod common;

use common::*;
use midge_proto::{Packet, Protocol, ReasonCode};
use midge_server::{ListenerConfig, ListenerKind};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn mqtt_client(addr: std::net::SocketAddr, id: &str) -> Raw<TcpStream> {
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    let mut raw = Raw::new(stream, Protocol::V3_1_1);
    assert_eq!(
        raw.handshake(&connect_packet(id, Protocol::V3_1_1)).await,
        ReasonCode::Success
    );
    raw
}

/// True when the server closes the socket without sending anything.
async fn closed_without_reply(mut stream: TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn listener_cap_refuses_a_flood_and_keeps_established_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = ListenerConfig {
        max_connections: 5,
        ..ListenerConfig::new(ListenerKind::Mqtt, loopback())
    };
    let server = start(&config(vec![listener], dir.path())).await;
    let addr = addr_of(&server, ListenerKind::Mqtt);

    let mut established = Vec::new();
    for i in 0..5 {
        established.push(mqtt_client(addr, &format!("kept-{i}")).await);
    }
    // 1,000 more, in waves of 100 so the test stays within file limits.
    let mut refused = 0;
    for _wave in 0..10 {
        let mut wave = Vec::new();
        for _ in 0..100 {
            wave.push(
                TcpStream::connect(addr)
                    .await
                    .expect("kernel accepts the TCP handshake"),
            );
        }
        for s in wave {
            if closed_without_reply(s).await {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1000, "every connection beyond the cap is closed");
    for raw in &mut established {
        raw.send(&Packet::PingReq).await;
        assert_eq!(
            raw.recv().await,
            Some(Packet::PingResp),
            "an established client was harmed"
        );
    }
    // Closing one frees a slot.
    drop(established.pop());
    let reopened = tokio::time::timeout(WAIT, async {
        loop {
            let stream = TcpStream::connect(addr).await.expect("tcp");
            let mut raw = Raw::new(stream, Protocol::V3_1_1);
            raw.send(&connect_packet("late", Protocol::V3_1_1)).await;
            if let Some(Packet::ConnAck(a)) = raw.recv().await {
                return a.reason;
            }
            // The freed slot is released when the server notices the close.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a slot frees up");
    assert_eq!(reopened, ReasonCode::Success);
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn connection_rate_per_source_is_limited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(
        vec![ListenerConfig::new(ListenerKind::Mqtt, loopback())],
        dir.path(),
    );
    cfg.limits.max_connection_rate = 1;
    cfg.limits.connection_rate_burst = 3;
    let server = start(&cfg).await;
    let addr = addr_of(&server, ListenerKind::Mqtt);
    let mut ok = Vec::new();
    for i in 0..3 {
        ok.push(mqtt_client(addr, &format!("burst-{i}")).await);
    }
    let fourth = TcpStream::connect(addr).await.expect("tcp");
    assert!(
        closed_without_reply(fourth).await,
        "the 4th connection within the burst window is refused"
    );
    server.shutdown(WAIT).await;
}
