//! Durability across restarts: a real `Server` on a temporary data
//! directory, stopped with `shutdown` and started again on the same
//! directory. Retained messages, subscriptions and queues come back;
//! sessions and messages whose expiry passed while midge was down do not;
//! a will waiting for its delay is published after what remains of it; a
//! QoS 1 message in flight is sent again with DUP; an inbound QoS 2 id is
//! remembered (exactly once across a restart). Also: the store's cap
//! (0x97), a second server on the same directory, a damaged store.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{addr_of, Raw, WAIT};
use midge_proto::{
    decode, ConnAck, Connect, Packet, Properties, Protocol, PubResp, Publish, QoS, ReasonCode,
    SubAck, Will,
};
use midge_server::{Config, ListenerConfig, ListenerKind, Server};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

type Client = Raw<TcpStream>;

fn config(dir: &Path) -> Config {
    common::config(vec![ListenerConfig::mqtt(common::loopback())], dir)
}

async fn boot(cfg: &Config) -> (Server, SocketAddr) {
    let server = common::start(cfg).await;
    let addr = addr_of(&server, ListenerKind::Mqtt);
    (server, addr)
}

async fn stop(server: Server) {
    tokio::time::timeout(
        Duration::from_secs(10),
        server.shutdown(Duration::from_secs(3)),
    )
    .await
    .expect("shutdown in time");
}

fn connect_packet(client_id: &str, v5: bool, clean: bool, expiry: u32) -> Connect {
    let mut properties = Properties::default();
    if v5 && expiry > 0 {
        properties.session_expiry_interval = Some(expiry);
    }
    let protocol = if v5 { Protocol::V5 } else { Protocol::V3_1_1 };
    Connect {
        clean_start: clean,
        keep_alive: 60,
        properties,
        ..common::connect(client_id, protocol)
    }
}

async fn connect_with(addr: SocketAddr, c: Connect) -> (Client, ConnAck) {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut raw = Raw::new(stream, c.protocol);
    raw.send(&Packet::Connect(Box::new(c))).await;
    match raw.recv().await {
        Some(Packet::ConnAck(ack)) => {
            assert_eq!(ack.reason, ReasonCode::Success);
            (raw, ack)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// A v5 session that outlives its connection by `expiry` seconds.
async fn persistent(addr: SocketAddr, client_id: &str, expiry: u32) -> (Client, bool) {
    let (raw, ack) = connect_with(addr, connect_packet(client_id, true, false, expiry)).await;
    (raw, ack.session_present)
}

async fn clean(addr: SocketAddr, client_id: &str) -> Client {
    connect_with(addr, connect_packet(client_id, true, true, 0))
        .await
        .0
}

/// The next packet within `wait`, or `None` if nothing came.
async fn recv_within(raw: &mut Client, wait: Duration) -> Option<Packet> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        match decode(&mut raw.buf, raw.protocol, 1 << 24) {
            Ok(p) => return Some(p),
            Err(midge_proto::Error::Incomplete(_)) => {}
            Err(e) => panic!("bad packet from server: {e}"),
        }
        match tokio::time::timeout_at(until, raw.stream.read_buf(&mut raw.buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => panic!("server closed the connection"),
            Ok(Ok(_)) => {}
        }
    }
}

async fn subscribe(raw: &mut Client, pkid: u16, filter: &str, qos: QoS) -> SubAck {
    raw.send(&common::subscribe_packet(pkid, filter, qos)).await;
    match raw.recv().await {
        Some(Packet::SubAck(a)) => a,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

fn publish(topic: &str, payload: &[u8], qos: QoS, retain: bool, pkid: u16) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        pkid,
        payload: bytes::Bytes::copy_from_slice(payload),
        properties: Properties::default(),
    }
}

/// Sends a QoS 1 PUBLISH and returns its PUBACK.
async fn publish_qos1(raw: &mut Client, p: Publish) -> PubResp {
    let pkid = p.pkid;
    raw.send(&Packet::Publish(p)).await;
    match raw.recv().await {
        Some(Packet::PubAck(a)) if a.pkid == pkid => a,
        other => panic!("expected PUBACK {pkid}, got {other:?}"),
    }
}

async fn recv_publish(raw: &mut Client) -> Publish {
    match raw.recv().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

async fn puback(raw: &mut Client, pkid: u16) {
    raw.send(&Packet::PubAck(PubResp::new(pkid))).await;
}

/// A PINGREQ round trip: everything sent before is handled (a server
/// shutdown does not read what is still in the socket).
async fn settle(raw: &mut Client) {
    raw.send(&Packet::PingReq).await;
    match raw.recv().await {
        Some(Packet::PingResp) => {}
        other => panic!("expected PINGRESP, got {other:?}"),
    }
}

/// A QoS 1 message after everything else: once it arrives, anything sent
/// before it has arrived too.
async fn barrier(addr: SocketAddr, sub: &mut Client, topic: &str) -> Vec<Publish> {
    let mut p = clean(addr, "barrier-publisher").await;
    publish_qos1(
        &mut p,
        publish(topic, b"barrier", QoS::AtLeastOnce, false, 1),
    )
    .await;
    let mut before = Vec::new();
    loop {
        let m = recv_publish(sub).await;
        if m.qos != QoS::AtMostOnce {
            puback(sub, m.pkid).await;
        }
        if &m.payload[..] == b"barrier" {
            settle(sub).await;
            return before;
        }
        before.push(m);
    }
}

#[tokio::test]
async fn retained_messages_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let mut p = clean(addr, "retainer").await;
    publish_qos1(&mut p, publish("ret/a", b"kept", QoS::AtLeastOnce, true, 1)).await;
    p.send(&Packet::Publish(publish(
        "ret/b",
        b"zero",
        QoS::AtMostOnce,
        true,
        0,
    )))
    .await;
    publish_qos1(&mut p, publish("ret/gone", b"x", QoS::AtLeastOnce, true, 2)).await;
    // An empty retained message clears the topic, durably too.
    publish_qos1(&mut p, publish("ret/gone", b"", QoS::AtLeastOnce, true, 3)).await;
    drop(p);
    stop(server).await;

    let (server, addr) = boot(&cfg).await;
    let mut s = clean(addr, "reader").await;
    subscribe(&mut s, 1, "ret/#", QoS::AtLeastOnce).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = recv_publish(&mut s).await;
        assert!(m.retain, "{m:?}");
        if m.qos != QoS::AtMostOnce {
            puback(&mut s, m.pkid).await;
        }
        got.push((m.topic.to_string(), m.payload.to_vec()));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("ret/a".to_owned(), b"kept".to_vec()),
            ("ret/b".to_owned(), b"zero".to_vec())
        ]
    );
    assert!(recv_within(&mut s, Duration::from_millis(300))
        .await
        .is_none());
    assert_eq!(server.broker().retained("ret/#").len(), 2);
    stop(server).await;
}

#[tokio::test]
async fn subscriptions_and_queues_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let (mut s, present) = persistent(addr, "durable-sub", 300).await;
    assert!(!present);
    subscribe(&mut s, 1, "q/+", QoS::ExactlyOnce).await;
    drop(s);
    // The disconnect is seen before the publishes (else they would go to
    // the connection); a clean restart takes care of that anyway.
    let mut p = clean(addr, "pub").await;
    for i in 0..10u16 {
        let payload = format!("m{i}");
        publish_qos1(
            &mut p,
            publish("q/t", payload.as_bytes(), QoS::AtLeastOnce, false, i + 1),
        )
        .await;
    }
    drop(p);
    stop(server).await;

    let (server, addr) = boot(&cfg).await;
    assert_eq!(server.broker().stats().subscriptions, 1);
    let (mut s, present) = persistent(addr, "durable-sub", 300).await;
    assert!(present, "the session came back");
    let mut payloads = Vec::new();
    for _ in 0..10 {
        let m = recv_publish(&mut s).await;
        assert_eq!(m.qos, QoS::AtLeastOnce);
        puback(&mut s, m.pkid).await;
        payloads.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(payloads, want, "all of them, in order");
    // The subscription itself is back: a new message arrives, nothing else.
    assert!(barrier(addr, &mut s, "q/x").await.is_empty());
    stop(server).await;

    // Acknowledged means gone: a third start has nothing queued.
    let (server, addr) = boot(&cfg).await;
    let (mut s, present) = persistent(addr, "durable-sub", 300).await;
    assert!(present);
    assert!(barrier(addr, &mut s, "q/y").await.is_empty());
    stop(server).await;
}

#[tokio::test]
async fn sessions_that_expire_while_down_are_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let (mut short, _) = persistent(addr, "short", 1).await;
    subscribe(&mut short, 1, "exp/t", QoS::AtLeastOnce).await;
    let (mut long, _) = persistent(addr, "long", 300).await;
    subscribe(&mut long, 1, "exp/t", QoS::AtLeastOnce).await;
    drop((short, long));
    stop(server).await;
    // The store keeps wall-clock time: the second of "short" passes while
    // midge is down.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (server, addr) = boot(&cfg).await;
    let ids: Vec<String> = server
        .broker()
        .clients()
        .iter()
        .map(|c| c.client_id.to_string())
        .collect();
    assert_eq!(ids, vec!["long".to_owned()]);
    assert_eq!(server.broker().stats().subscriptions, 1);
    let (_, present) = persistent(addr, "short", 300).await;
    assert!(!present, "expired while down");
    let (_, present) = persistent(addr, "long", 300).await;
    assert!(present);
    stop(server).await;
}

#[tokio::test]
async fn message_expiry_counts_the_downtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let (mut s, _) = persistent(addr, "expiring", 300).await;
    subscribe(&mut s, 1, "mx/t", QoS::AtLeastOnce).await;
    drop(s);
    let mut p = clean(addr, "pub").await;
    let mut short = publish("mx/t", b"short", QoS::AtLeastOnce, false, 1);
    short.properties.message_expiry_interval = Some(1);
    publish_qos1(&mut p, short).await;
    let mut long = publish("mx/t", b"long", QoS::AtLeastOnce, false, 2);
    long.properties.message_expiry_interval = Some(100);
    publish_qos1(&mut p, long).await;
    let mut retained = publish("mx/r", b"retained", QoS::AtLeastOnce, true, 3);
    retained.properties.message_expiry_interval = Some(1);
    publish_qos1(&mut p, retained).await;
    drop(p);
    stop(server).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (server, addr) = boot(&cfg).await;
    assert_eq!(server.broker().stats().retained, 0, "expired while down");
    let (mut s, present) = persistent(addr, "expiring", 300).await;
    assert!(present);
    let m = recv_publish(&mut s).await;
    assert_eq!(&m.payload[..], b"long");
    let left = m.properties.message_expiry_interval.expect("expiry sent");
    assert!(left <= 98, "2 s of downtime counted: {left} s left");
    puback(&mut s, m.pkid).await;
    assert!(barrier(addr, &mut s, "mx/t").await.is_empty());
    stop(server).await;
}

#[tokio::test]
async fn a_delayed_will_waits_out_its_delay_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let mut c = connect_packet("mortal", true, false, 300);
    let mut w = Will {
        topic: "will/mortal".into(),
        payload: bytes::Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    };
    w.properties.will_delay_interval = Some(3);
    c.will = Some(w);
    let (mortal, _) = connect_with(addr, c).await;
    // The shutdown ends the connection (not a DISCONNECT from the client):
    // the will is due 3 s later.
    let stopped = Instant::now();
    stop(server).await;
    drop(mortal);

    let (server, addr) = boot(&cfg).await;
    let mut watcher = clean(addr, "watcher").await;
    subscribe(&mut watcher, 1, "will/#", QoS::AtLeastOnce).await;
    let m = match recv_within(&mut watcher, Duration::from_secs(8)).await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected the will, got {other:?}"),
    };
    let after = stopped.elapsed();
    assert_eq!(&m.payload[..], b"gone");
    assert!(
        after >= Duration::from_millis(2500),
        "published after its delay, not at start: {after:?}"
    );
    puback(&mut watcher, m.pkid).await;
    stop(server).await;

    // Published once: not again after another restart.
    let (server, addr) = boot(&cfg).await;
    let mut watcher = clean(addr, "watcher").await;
    subscribe(&mut watcher, 1, "will/#", QoS::AtLeastOnce).await;
    assert!(recv_within(&mut watcher, Duration::from_millis(500))
        .await
        .is_none());
    stop(server).await;
}

#[tokio::test]
async fn qos1_in_flight_is_sent_again_with_dup_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let (mut s, _) = persistent(addr, "slow-acker", 300).await;
    subscribe(&mut s, 1, "inf/t", QoS::AtLeastOnce).await;
    let mut p = clean(addr, "pub").await;
    publish_qos1(
        &mut p,
        publish("inf/t", b"once", QoS::AtLeastOnce, false, 1),
    )
    .await;
    let first = recv_publish(&mut s).await;
    assert!(!first.dup);
    // Not acknowledged. The store gets the move to in-flight detached:
    // the shutdown makes it durable.
    drop((s, p));
    stop(server).await;

    let (server, addr) = boot(&cfg).await;
    let (mut s, present) = persistent(addr, "slow-acker", 300).await;
    assert!(present);
    let again = recv_publish(&mut s).await;
    assert!(again.dup, "resent with DUP");
    assert_eq!(again.pkid, first.pkid, "same packet id");
    assert_eq!(&again.payload[..], b"once");
    puback(&mut s, again.pkid).await;
    assert!(barrier(addr, &mut s, "inf/t").await.is_empty());
    stop(server).await;

    let (server, addr) = boot(&cfg).await;
    let (mut s, _) = persistent(addr, "slow-acker", 300).await;
    assert!(
        barrier(addr, &mut s, "inf/t").await.is_empty(),
        "acknowledged: gone"
    );
    stop(server).await;
}

#[tokio::test]
async fn inbound_qos2_is_delivered_once_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let (mut s, _) = persistent(addr, "q2-sub", 300).await;
    subscribe(&mut s, 1, "q2/t", QoS::ExactlyOnce).await;
    drop(s);
    let (mut p, _) = persistent(addr, "q2-pub", 300).await;
    p.send(&Packet::Publish(publish(
        "q2/t",
        b"exactly",
        QoS::ExactlyOnce,
        false,
        7,
    )))
    .await;
    match p.recv().await {
        Some(Packet::PubRec(r)) => assert_eq!((r.pkid, r.reason), (7, ReasonCode::Success)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    drop(p);
    stop(server).await;

    let (server, addr) = boot(&cfg).await;
    // The publisher missed the PUBREC, as far as it knows: it sends again.
    let (mut p, present) = persistent(addr, "q2-pub", 300).await;
    assert!(present);
    let mut again = publish("q2/t", b"exactly", QoS::ExactlyOnce, false, 7);
    again.dup = true;
    p.send(&Packet::Publish(again)).await;
    match p.recv().await {
        Some(Packet::PubRec(r)) => assert_eq!(r.pkid, 7),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    p.send(&Packet::PubRel(PubResp::new(7))).await;
    match p.recv().await {
        Some(Packet::PubComp(c)) => assert_eq!((c.pkid, c.reason), (7, ReasonCode::Success)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    let (mut s, present) = persistent(addr, "q2-sub", 300).await;
    assert!(present);
    let m = recv_publish(&mut s).await;
    assert_eq!((&m.payload[..], m.qos), (&b"exactly"[..], QoS::ExactlyOnce));
    s.send(&Packet::PubRec(PubResp::new(m.pkid))).await;
    match s.recv().await {
        Some(Packet::PubRel(r)) => assert_eq!(r.pkid, m.pkid),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    s.send(&Packet::PubComp(PubResp::new(m.pkid))).await;
    assert!(barrier(addr, &mut s, "q2/t").await.is_empty(), "only once");
    stop(server).await;
}

#[tokio::test]
async fn a_full_store_refuses_qos1_publishes_and_midge_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.store.max_store_bytes = 64 * 1024;
    let (server, addr) = boot(&cfg).await;
    let (mut s, _) = persistent(addr, "hoarder", 300).await;
    subscribe(&mut s, 1, "full/t", QoS::AtLeastOnce).await;
    drop(s);
    let mut p = clean(addr, "pub").await;
    let payload = vec![b'x'; 1000];
    let mut refused = None;
    for i in 1..=200u16 {
        let ack = publish_qos1(
            &mut p,
            publish("full/t", &payload, QoS::AtLeastOnce, false, i),
        )
        .await;
        if ack.reason != ReasonCode::Success {
            refused = Some((i, ack.reason));
            break;
        }
    }
    let (n, reason) = refused.expect("the 64 KiB cap is reached within 200 KB");
    assert_eq!(reason, ReasonCode::QuotaExceeded);
    assert!(n > 10, "refused only once full: at {n}");
    let d = server.broker().durability().expect("a store");
    assert!(d.refused_full >= 1, "{d:?}");
    // 3.1.1 cannot be told: closed without an acknowledgement.
    let (mut old, _) = connect_with(addr, connect_packet("old-pub", false, true, 0)).await;
    old.send(&Packet::Publish(publish(
        "full/t",
        &payload,
        QoS::AtLeastOnce,
        false,
        1,
    )))
    .await;
    // Closed: no PUBACK first.
    match tokio::time::timeout(WAIT, old.stream.read_buf(&mut old.buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => {
            let got = decode(&mut old.buf, Protocol::V3_1_1, 1 << 20);
            panic!("expected the connection to close, got {got:?}");
        }
        Err(_) => panic!("3.1.1 publisher neither acknowledged nor closed"),
    }
    // Midge goes on: the hoarder drains, and QoS 0 flows meanwhile.
    let (mut s, present) = persistent(addr, "hoarder", 300).await;
    assert!(present);
    let before = barrier(addr, &mut s, "full/t").await;
    assert_eq!(before.len(), n as usize - 1, "every acknowledged message");
    stop(server).await;
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, _) = boot(&cfg).await;
    let err = Server::start(&cfg).await.expect_err("directory in use");
    let text = err.to_string();
    assert!(text.contains("in use by another midge process"), "{text}");
    stop(server).await;
    // Released at shutdown.
    let (server, _) = boot(&cfg).await;
    stop(server).await;
}

#[tokio::test]
async fn a_damaged_store_is_refused_with_the_repair_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (server, addr) = boot(&cfg).await;
    let mut p = clean(addr, "pub").await;
    for i in 1..=20u16 {
        let topic = format!("dmg/{i}");
        publish_qos1(
            &mut p,
            publish(&topic, &[7u8; 2000], QoS::AtLeastOnce, true, i),
        )
        .await;
    }
    drop(p);
    stop(server).await;
    let db = midge_store::db_file(dir.path());
    let mut bytes = std::fs::read(&db).expect("read store");
    let half = bytes.len() / 2;
    bytes.truncate(half);
    std::fs::write(&db, &bytes).expect("cut the store");
    let err = Server::start(&cfg).await.expect_err("damaged store");
    let text = err.to_string();
    assert!(text.contains("midge store check"), "{text}");
    assert!(text.contains("midge store repair"), "{text}");
}
