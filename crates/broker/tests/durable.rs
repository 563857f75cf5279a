//! The broker with a store: acknowledgements wait for durability, stored
//! sessions get a message only once it is durable, the hot path of QoS 0
//! and clean sessions never touches the store, one store batch per
//! publish, and store failures (write errors, a full store) answered
//! without stopping the broker.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{persistent_connect, serve, until, Raw, WAIT};
use midge_broker::{AllowAll, Broker, BrokerConfig};
use midge_proto::{Packet, Protocol, QoS, ReasonCode};
use midge_store::{
    Batch, Commit, Completer, DiskStore, FaultSwitch, MemoryStore, Recovered, Store, StoreConfig,
    StoreError, StoreStats,
};

static BIG: [u8; 1000] = [b'x'; 1000];

fn with_store(store: Arc<dyn Store>) -> Broker {
    let config = BrokerConfig {
        sys_interval: Duration::ZERO,
        ..BrokerConfig::default()
    };
    Broker::with_store(config, Arc::new(AllowAll), store).expect("store loads")
}

/// A v5 session kept for 300 s after its connection.
async fn persistent(addr: SocketAddr, id: &str) -> Raw {
    let (r, ack) = Raw::connect_with(addr, persistent_connect(id, 300)).await;
    assert_eq!(ack.reason, ReasonCode::Success);
    r
}

async fn offline_subscriber(addr: SocketAddr, id: &str, filter: &str) {
    let mut s = persistent(addr, id).await;
    s.subscribe(1, filter, QoS::AtLeastOnce).await;
    s.leave().await;
}

/// The next PUBACK/PUBREC's reason, within `wait` (`None`: nothing came).
async fn ack_within(r: &mut Raw, wait: Duration) -> Option<(u16, ReasonCode)> {
    match r.recv_within(wait).await {
        Err(()) => None,
        Ok(Some(Packet::PubAck(a))) | Ok(Some(Packet::PubRec(a))) => Some((a.pkid, a.reason)),
        Ok(other) => panic!("expected an acknowledgement, got {other:?}"),
    }
}

/// A store whose commits resolve only when the test says so (once
/// `close`d; before, at once).
#[derive(Debug, Default)]
struct GatedStore {
    inner: MemoryStore,
    closed: AtomicBool,
    held: Mutex<Vec<Completer>>,
}

impl GatedStore {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn held(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    fn release(&self) {
        let held: Vec<Completer> = self
            .held
            .lock()
            .map(|mut h| h.drain(..).collect())
            .unwrap_or_default();
        for c in held {
            c.complete(Ok(()));
        }
    }
}

impl Store for GatedStore {
    fn submit(&self, batch: Batch) -> Commit {
        let applied = self.inner.submit(batch).wait();
        assert_eq!(applied, Ok(()));
        if !self.closed.load(Ordering::SeqCst) {
            return Commit::ready(applied);
        }
        let (completer, commit) = Commit::pending();
        if let Ok(mut h) = self.held.lock() {
            h.push(completer);
        }
        commit
    }
    fn submit_detached(&self, batch: Batch) {
        self.inner.submit_detached(batch);
    }
    fn sync(&self) -> Commit {
        self.inner.sync()
    }
    fn load_at(&self, now_ms: u64) -> Result<Recovered, StoreError> {
        self.inner.load_at(now_ms)
    }
    fn next_message_id(&self) -> u64 {
        self.inner.next_message_id()
    }
    fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
    fn name(&self) -> &'static str {
        "gated"
    }
}

#[tokio::test]
async fn puback_and_stored_deliveries_wait_for_the_commit() {
    let store = Arc::new(GatedStore::default());
    let (addr, stop) = serve(with_store(store.clone())).await;
    // An online persistent subscriber and an online clean one.
    let mut stored_sub = persistent(addr, "stored-sub").await;
    stored_sub.subscribe(1, "g/t", QoS::AtLeastOnce).await;
    let mut clean_sub =
        Raw::subscriber(addr, Protocol::V5, "clean-sub", "g/t", QoS::AtLeastOnce).await;
    store.close();

    let (mut publisher, _) = Raw::connect(addr, Protocol::V5, "pub", true).await;
    publisher
        .publish("g/t", b"held", QoS::AtLeastOnce, false, 9)
        .await;
    // The clean session needs no store: it has the message at once.
    let m = clean_sub.recv_publish().await;
    assert_eq!(&m.payload[..], b"held");
    // No PUBACK, and nothing for the stored session, while the commit is
    // out.
    assert_eq!(
        ack_within(&mut publisher, Duration::from_millis(300)).await,
        None
    );
    stored_sub.expect_nothing(Duration::from_millis(100)).await;
    assert_eq!(store.held(), 1, "one batch for the publish");
    store.release();
    assert_eq!(
        ack_within(&mut publisher, WAIT).await,
        Some((9, ReasonCode::Success))
    );
    let m = stored_sub.recv_publish().await;
    assert_eq!(&m.payload[..], b"held");
    stop.cancel();
}

#[tokio::test]
async fn a_qos2_delivery_to_a_stored_session_waits_until_it_is_durably_in_flight() {
    let store = Arc::new(GatedStore::default());
    let (addr, stop) = serve(with_store(store.clone())).await;
    let mut sub = persistent(addr, "sub2").await;
    sub.subscribe(1, "x/2", QoS::ExactlyOnce).await;
    sub.subscribe(2, "x/1", QoS::AtLeastOnce).await;
    let (mut publisher, _) = Raw::connect(addr, Protocol::V5, "pub", true).await;
    store.close();

    // QoS 1: once the publish is durable the delivery goes at once; its
    // move to in flight is written behind it (a repeat after a crash is
    // within QoS 1).
    publisher
        .publish("x/1", b"one", QoS::AtLeastOnce, false, 1)
        .await;
    until("the publish's commit is held", || store.held() == 1).await;
    store.release();
    assert_eq!(
        ack_within(&mut publisher, WAIT).await,
        Some((1, ReasonCode::Success))
    );
    let m = sub.recv_publish().await;
    assert_eq!((&m.payload[..], m.qos), (&b"one"[..], QoS::AtLeastOnce));
    sub.puback(m.pkid).await;

    // QoS 2: the PUBLISH waits for its move to in flight, so that a crash
    // cannot send it again under another packet id. Messages queued
    // behind it wait too: order is kept.
    publisher
        .publish("x/2", b"two", QoS::ExactlyOnce, false, 2)
        .await;
    publisher
        .publish("x/1", b"three", QoS::AtLeastOnce, false, 3)
        .await;
    until("both publishes' commits are held", || store.held() == 2).await;
    store.release();
    assert_eq!(
        ack_within(&mut publisher, WAIT).await,
        Some((2, ReasonCode::Success))
    );
    assert_eq!(
        ack_within(&mut publisher, WAIT).await,
        Some((3, ReasonCode::Success))
    );
    until("the move to in flight is held", || store.held() >= 1).await;
    sub.expect_nothing(Duration::from_millis(300)).await;
    store.release();
    let m = sub.recv_publish().await;
    assert_eq!((&m.payload[..], m.qos), (&b"two"[..], QoS::ExactlyOnce));
    let m3 = sub.recv_publish().await;
    assert_eq!(&m3.payload[..], b"three");
    stop.cancel();
}

#[tokio::test]
async fn pubacks_keep_publish_order_when_only_some_wait() {
    let store = Arc::new(GatedStore::default());
    let (addr, stop) = serve(with_store(store.clone())).await;
    offline_subscriber(addr, "stored-sub", "o/stored").await;
    store.close();
    let (mut publisher, _) = Raw::connect(addr, Protocol::V5, "pub", true).await;
    // 1 needs the store, 2 does not: 2's PUBACK still goes after 1's.
    publisher
        .publish("o/stored", b"a", QoS::AtLeastOnce, false, 1)
        .await;
    publisher
        .publish("o/nobody", b"b", QoS::AtLeastOnce, false, 2)
        .await;
    assert_eq!(
        ack_within(&mut publisher, Duration::from_millis(300)).await,
        None
    );
    store.release();
    assert_eq!(ack_within(&mut publisher, WAIT).await.map(|a| a.0), Some(1));
    assert_eq!(ack_within(&mut publisher, WAIT).await.map(|a| a.0), Some(2));
    stop.cancel();
}

#[tokio::test]
async fn qos0_and_clean_sessions_never_touch_the_store() {
    let store = Arc::new(MemoryStore::new(&StoreConfig::default()));
    let (addr, stop) = serve(with_store(store.clone())).await;
    let mut sub = Raw::subscriber(addr, Protocol::V5, "clean-sub", "c/#", QoS::ExactlyOnce).await;
    let (mut publisher, _) = Raw::connect(addr, Protocol::V5, "clean-pub", true).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish("c/t", b"x", qos, false, i as u16 + 1)
            .await;
        let m = sub.recv_publish().await;
        assert_eq!(m.qos, qos);
    }
    // A persistent session that only gets QoS 0 stores its session, not
    // the messages.
    let mut p0 = persistent(addr, "qos0-sub").await;
    p0.subscribe(1, "z/t", QoS::AtMostOnce).await;
    let before = store.stats();
    publisher
        .publish("z/t", b"y", QoS::AtLeastOnce, false, 9)
        .await;
    assert_eq!(p0.recv_publish().await.qos, QoS::AtMostOnce);
    assert_eq!(store.stats().batches, before.batches);
    assert_eq!(store.stats().messages, 0, "no message body ever stored");
    stop.cancel();
}

#[tokio::test]
async fn one_store_batch_per_publish_for_all_stored_sessions() {
    let store = Arc::new(MemoryStore::new(&StoreConfig::default()));
    let (addr, stop) = serve(with_store(store.clone())).await;
    for id in ["s1", "s2", "s3"] {
        offline_subscriber(addr, id, "fan/#").await;
    }
    let (mut publisher, _) = Raw::connect(addr, Protocol::V5, "pub", true).await;
    let before = store.stats();
    publisher
        .publish("fan/t", b"to three", QoS::AtLeastOnce, false, 1)
        .await;
    assert_eq!(
        ack_within(&mut publisher, WAIT).await,
        Some((1, ReasonCode::Success))
    );
    let after = store.stats();
    assert_eq!(after.batches - before.batches, 1);
    assert_eq!(after.ops - before.ops, 3, "three queue entries");
    assert_eq!(after.messages, 1, "the body stored once");
    stop.cancel();
}

#[tokio::test]
async fn write_failures_are_refused_and_the_broker_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultSwitch::new();
    let store = DiskStore::open_with_faults(dir.path(), StoreConfig::default(), faults.clone())
        .expect("open");
    let broker = with_store(Arc::new(store));
    let (addr, stop) = serve(broker.clone()).await;
    offline_subscriber(addr, "sub", "f/t").await;
    let (mut v5, _) = Raw::connect(addr, Protocol::V5, "pub5", true).await;
    v5.publish("f/t", b"before", QoS::AtLeastOnce, false, 1)
        .await;
    assert_eq!(
        ack_within(&mut v5, WAIT).await,
        Some((1, ReasonCode::Success))
    );

    faults.set(true);
    v5.publish("f/t", b"failed", QoS::AtLeastOnce, false, 2)
        .await;
    assert_eq!(
        ack_within(&mut v5, WAIT).await,
        Some((2, ReasonCode::UnspecifiedError))
    );
    v5.publish("f/t", b"failed2", QoS::ExactlyOnce, false, 3)
        .await;
    assert_eq!(
        ack_within(&mut v5, WAIT).await,
        Some((3, ReasonCode::UnspecifiedError))
    );
    // 3.1.1 has no way to say no: closed without PUBACK.
    let (mut v3, _) = Raw::connect(addr, Protocol::V3_1_1, "pub3", true).await;
    v3.publish("f/t", b"failed3", QoS::AtLeastOnce, false, 1)
        .await;
    assert!(v3.expect_close().await.is_empty(), "no PUBACK");
    let d = broker.durability().expect("a store");
    assert!(d.write_failures >= 3, "{d:?}");

    faults.set(false);
    // The QoS 2 id was released: the client's retry is a new message.
    v5.publish("f/t", b"after", QoS::ExactlyOnce, false, 3)
        .await;
    assert_eq!(
        ack_within(&mut v5, WAIT).await,
        Some((3, ReasonCode::Success))
    );
    let mut s = persistent(addr, "sub").await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = s.recv_publish().await;
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
        if m.qos == QoS::AtLeastOnce {
            s.puback(m.pkid).await;
        } else {
            s.send(&Packet::PubRec(midge_proto::PubResp::new(m.pkid)))
                .await;
        }
    }
    assert_eq!(
        got,
        vec!["before", "after"],
        "refused messages reach no stored session"
    );
    stop.cancel();
}

#[tokio::test]
async fn a_refused_commit_answers_quota_exceeded() {
    // Room for a session and its subscription, not for a 1000-byte message.
    let store = Arc::new(MemoryStore::new(&StoreConfig {
        max_store_bytes: 600,
        ..StoreConfig::default()
    }));
    let broker = with_store(store);
    let (addr, stop) = serve(broker.clone()).await;
    offline_subscriber(addr, "sub", "q/t").await;
    let (mut v5, _) = Raw::connect(addr, Protocol::V5, "pub", true).await;
    v5.publish("q/t", &BIG, QoS::AtLeastOnce, false, 1).await;
    assert_eq!(
        ack_within(&mut v5, WAIT).await,
        Some((1, ReasonCode::QuotaExceeded))
    );
    assert_eq!(broker.durability().map(|d| d.refused_full), Some(1));
    // QoS 0 still flows.
    let mut c = Raw::subscriber(addr, Protocol::V5, "watch", "q/t", QoS::AtMostOnce).await;
    v5.publish("q/t", b"y", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&c.recv_publish().await.payload[..], b"y");
    stop.cancel();
}

#[tokio::test]
async fn sys_topics_report_the_store() {
    let store = Arc::new(MemoryStore::new(&StoreConfig::default()));
    let config = BrokerConfig {
        sys_interval: Duration::from_secs(1),
        ..BrokerConfig::default()
    };
    let broker = Broker::with_store(config, Arc::new(AllowAll), store).expect("loads");
    let (addr, stop) = serve(broker).await;
    let mut s = Raw::subscriber(
        addr,
        Protocol::V5,
        "sys",
        "$SYS/broker/store/engine",
        QoS::AtMostOnce,
    )
    .await;
    let m = s.recv_publish().await;
    assert_eq!(&m.payload[..], b"memory");
    stop.cancel();
}

fn unsubscribe(pkid: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(midge_proto::Unsubscribe {
        pkid,
        filters: filters.iter().map(|f| (*f).into()).collect(),
        properties: midge_proto::Properties::default(),
    })
}

/// A QoS 0 message from a clean session: it reaches stored sessions
/// without touching the store, so it shows who is subscribed while the
/// store is failing.
async fn probe(addr: SocketAddr, topic: &str, payload: &'static [u8]) {
    let (mut p, _) = Raw::connect(addr, Protocol::V5, "probe", true).await;
    p.publish(topic, payload, QoS::AtMostOnce, false, 0).await;
    p.leave().await;
}

#[tokio::test]
async fn subscription_changes_the_store_refuses_are_undone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultSwitch::new();
    let store = DiskStore::open_with_faults(dir.path(), StoreConfig::default(), faults.clone())
        .expect("open");
    let broker = with_store(Arc::new(store));
    let (addr, stop) = serve(broker.clone()).await;

    // 5.0: the UNSUBACK says which removals failed; the rest stand.
    let mut v5 = persistent(addr, "u5").await;
    v5.subscribe(1, "u/t", QoS::AtLeastOnce).await;
    faults.set(true);
    v5.send(&unsubscribe(2, &["u/t", "u/none"])).await;
    match v5.recv().await {
        Some(Packet::UnsubAck(a)) => assert_eq!(
            a.reasons,
            vec![
                ReasonCode::UnspecifiedError,
                ReasonCode::NoSubscriptionExisted
            ]
        ),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    probe(addr, "u/t", b"still subscribed").await;
    assert_eq!(&v5.recv_publish().await.payload[..], b"still subscribed");
    // A SUBSCRIBE that would replace it is refused too, and leaves the old
    // subscription (identifier 7) in place, not none at all.
    let with_id = |id: u32| {
        let mut p = midge_proto::Properties::default();
        p.subscription_identifiers.push(id);
        p
    };
    let opts = |qos| midge_proto::SubscriptionOptions {
        qos,
        ..Default::default()
    };
    faults.set(false);
    v5.subscribe_opts(4, &[("u/id", opts(QoS::AtLeastOnce))], with_id(7))
        .await;
    faults.set(true);
    let ack = v5
        .subscribe_opts(5, &[("u/id", opts(QoS::AtMostOnce))], with_id(9))
        .await;
    assert_eq!(ack.reasons, vec![ReasonCode::UnspecifiedError]);
    probe(addr, "u/id", b"old options").await;
    let m = v5.recv_publish().await;
    assert_eq!(&m.payload[..], b"old options");
    assert_eq!(m.properties.subscription_identifiers, vec![7]);

    // 3.1.1: no way to say no in an UNSUBACK, so the connection closes
    // without one, and the session keeps the subscription.
    faults.set(false);
    let (mut v3, _) = Raw::connect(addr, Protocol::V3_1_1, "u3", false).await;
    v3.subscribe(1, "u3/t", QoS::AtLeastOnce).await;
    faults.set(true);
    v3.send(&unsubscribe(2, &["u3/t"])).await;
    assert!(v3.expect_close().await.is_empty(), "no UNSUBACK");
    faults.set(false);
    let (mut v3, ack) = Raw::connect(addr, Protocol::V3_1_1, "u3", false).await;
    assert!(ack.session_present);
    probe(addr, "u3/t", b"kept").await;
    assert_eq!(&v3.recv_publish().await.payload[..], b"kept");

    // With the store back, the same removal goes through and lasts.
    v5.send(&unsubscribe(3, &["u/t"])).await;
    match v5.recv().await {
        Some(Packet::UnsubAck(a)) => assert_eq!(a.reasons, vec![ReasonCode::Success]),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    probe(addr, "u/t", b"gone").await;
    v5.expect_nothing(Duration::from_millis(300)).await;
    stop.cancel();
}
