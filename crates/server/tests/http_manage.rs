//! The management API over the broker's own calls: kicking a client (MQTT
//! 5.0 DISCONNECT 0x98, will published, list updated), discarding an
//! offline session, queue depth of an offline session, and no per-message
//! broker events unless a webhook forwards them.

mod common;
mod web_common;

use std::time::Duration;

use midge_broker::Event;
use midge_proto::{Bytes, Connect, Disconnect, Packet, Protocol, PubResp, QoS, ReasonCode, Will};
use midge_server::web::config::WebhookConfig;
use serde_json::Value;
use tokio::net::TcpStream;
use web_common::*;

/// A 5.0 client with a persistent session (`expiry` seconds, clean start
/// off) and optionally a will.
async fn persistent(
    m: &Midge,
    id: &str,
    expiry: u32,
    will: Option<&str>,
) -> (common::Raw<TcpStream>, bool) {
    let stream = TcpStream::connect(m.mqtt).await.expect("connect");
    let mut raw = common::Raw::new(stream, Protocol::V5);
    let mut c = Connect {
        clean_start: false,
        will: will.map(|topic| Will {
            topic: topic.into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        }),
        ..common::connect(id, Protocol::V5)
    };
    c.properties.session_expiry_interval = Some(expiry);
    raw.send(&Packet::Connect(Box::new(c))).await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.reason, ReasonCode::Success);
            (raw, a.session_present)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

async fn get(m: &Midge, path: &str) -> (u16, Value) {
    let r = client()
        .get(m.url(path))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(m: &Midge, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = client().delete(m.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits (bounded) until `GET path` answers `status`: a connection's task
/// ends (and releases its session) just after its socket is closed.
async fn until_status(m: &Midge, path: &str, status: u16) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, v) = get(m, path).await;
        if s == status {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path}: still {s} {v}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An admin kicks `id` and discards its session: asserts a 200, returns
/// the answer.
async fn kick_discarding_session(m: &Midge, id: &str) -> Value {
    let path = format!("/api/v1/clients/{id}?discard_session=true");
    let (status, v) = delete(m, &path, Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Reads until DISCONNECT, then until the broker closes the socket.
async fn expect_kicked(raw: &mut common::Raw<TcpStream>) {
    match raw.recv().await {
        Some(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::AdministrativeAction, "0x98");
        }
        other => panic!("expected DISCONNECT 0x98, got {other:?}"),
    }
    assert!(
        raw.recv().await.is_none(),
        "the broker closes the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicking_a_client_sends_0x98_publishes_its_will_and_updates_the_list() {
    let m = start().await;
    let mut watcher = m.mqtt_client("watcher", None).await;
    subscribe_acked(&mut watcher, "will/#", QoS::AtLeastOnce).await;
    let (mut victim, _) = persistent(&m, "victim", 0, Some("will/victim")).await;
    let (status, v) = get(&m, "/api/v1/clients/victim").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["online"], true);

    // Only admins, and a bad parameter is a 400.
    let (status, _) = delete(&m, "/api/v1/clients/victim", None).await;
    assert_eq!(status, 401);
    let (status, _) = delete(&m, "/api/v1/clients/victim", Some(USER_KEY)).await;
    assert_eq!(status, 403);
    let (status, v) = delete(
        &m,
        "/api/v1/clients/victim?discard_session=perhaps",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("bad_request")));
    let (status, v) = delete(&m, "/api/v1/clients/nobody", Some(ADMIN_KEY)).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));

    let (status, v) = delete(&m, "/api/v1/clients/victim", Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["was_connected"], true);
    assert_eq!(v["session_discarded"], false);
    expect_kicked(&mut victim).await;
    match watcher.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!(&*p.topic, "will/victim");
            assert_eq!(&p.payload[..], b"gone");
        }
        other => panic!("expected the will, got {other:?}"),
    }
    // Session expiry 0: the session ends with the connection.
    until_status(&m, "/api/v1/clients/victim", 404).await;
    let (_, list) = get(&m, "/api/v1/clients").await;
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"watcher") && !ids.contains(&"victim"),
        "{ids:?}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_persistent_session_stays_offline_until_discarded() {
    let m = start().await;
    let (mut sticky, _) = persistent(&m, "sticky", 300, None).await;
    subscribe_acked(&mut sticky, "st/#", QoS::AtLeastOnce).await;
    let (status, _) = delete(&m, "/api/v1/clients/sticky", Some(ADMIN_KEY)).await;
    assert_eq!(status, 200);
    expect_kicked(&mut sticky).await;
    // Kept: listed offline with its subscription.
    let c = until_offline(&m, "sticky").await;
    assert_eq!(c["connected_since"], Value::Null);
    assert_eq!(c["subscriptions"]["st/#"], 1);
    assert_eq!(c["session_expiry_interval"], 300);

    // Connected again, kicked with discard_session: gone at once.
    let (mut sticky, present) = persistent(&m, "sticky", 300, None).await;
    assert!(present, "the session was kept");
    let v = kick_discarding_session(&m, "sticky").await;
    assert_eq!(
        (
            v["was_connected"].as_bool(),
            v["session_discarded"].as_bool()
        ),
        (Some(true), Some(true))
    );
    expect_kicked(&mut sticky).await;
    let (status, _) = get(&m, "/api/v1/clients/sticky").await;
    assert_eq!(status, 404);
    let (_, present) = persistent(&m, "sticky", 300, None).await;
    assert!(!present, "the session was discarded");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_session_shows_its_queue_and_discard_session_removes_it() {
    let m = start().await;
    let (mut keeper, _) = persistent(&m, "keeper", 300, None).await;
    subscribe_acked(&mut keeper, "q/#", QoS::AtLeastOnce).await;
    keeper
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(keeper.recv().await.is_none());
    until_offline(&m, "keeper").await;
    let mut publisher = m.mqtt_client("feeder", None).await;
    publish_qos1(&mut publisher, "q/x", (0..5).map(|i| format!("m{i}"))).await;

    // PUBACK follows routing: the five are queued for the offline session.
    let (_, c) = get(&m, "/api/v1/clients/keeper").await;
    assert_eq!(c["queued"], 5, "{c}");
    assert_eq!(c["inflight"], 0);
    assert_eq!(c["drops"], 0);
    let (_, list) = get(&m, "/api/v1/clients").await;
    let listed = list["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["id"] == "keeper")
        .cloned()
        .expect("offline sessions are listed");
    assert_eq!(
        (listed["online"].as_bool(), listed["queued"].as_u64()),
        (Some(false), Some(5))
    );
    let (_, subs) = get(&m, "/api/v1/subscriptions").await;
    assert!(subs["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .any(|s| s["client_id"] == "keeper" && s["filter"] == "q/#"));

    // Offline and kept: disconnecting needs discard_session.
    let (status, v) = delete(&m, "/api/v1/clients/keeper", Some(ADMIN_KEY)).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("conflict")), "{v}");
    let v = kick_discarding_session(&m, "keeper").await;
    assert_eq!(
        (
            v["was_connected"].as_bool(),
            v["session_discarded"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let (status, _) = get(&m, "/api/v1/clients/keeper").await;
    assert_eq!(status, 404);
    let (_, subs) = get(&m, "/api/v1/subscriptions").await;
    assert!(!subs["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .any(|s| s["client_id"] == "keeper"));
    let (_, stats) = get(&m, "/api/v1/stats").await;
    assert_eq!(
        stats["messages_stored"], 0,
        "the queue went with the session"
    );
    let (mut keeper, present) = persistent(&m, "keeper", 300, None).await;
    assert!(!present);
    // Nothing of the old queue is delivered: the next packet is our PINGRESP.
    keeper.send(&Packet::PingReq).await;
    assert!(matches!(keeper.recv().await, Some(Packet::PingResp)));
    m.stop().await;
}

/// Publishes one routed message, then connects a client named `marker`,
/// and returns whether a `MessagePublished` event arrived on a lifecycle
/// receiver before the marker's `ClientConnected`. Per-message events, once
/// someone asked for them, go to every receiver.
async fn message_events_seen(m: &Midge, tag: &str) -> bool {
    let mut events = m.server.broker().lifecycle_events();
    let mut sub = m.mqtt_client(&format!("ev-sub-{tag}"), None).await;
    subscribe_acked(&mut sub, "ev/#", QoS::AtLeastOnce).await;
    let mut publisher = m.mqtt_client(&format!("ev-pub-{tag}"), None).await;
    publish_qos1(&mut publisher, "ev/a", std::iter::once("x".to_owned())).await;
    assert!(matches!(sub.recv().await, Some(Packet::Publish(_))));
    let marker = format!("marker-{tag}");
    let _marker = m.mqtt_client(&marker, None).await;
    let mut seen = false;
    common::wait_event(&mut events, "the marker's connect event", |e| match e {
        Event::MessagePublished { .. } => {
            seen = true;
            None
        }
        Event::ClientConnected { client_id, .. } if *client_id == *marker => Some(()),
        _ => None,
    })
    .await;
    seen
}

fn hook(events: &[&str]) -> WebhookConfig {
    WebhookConfig {
        // Nothing listens there: deliveries fail, which does not matter.
        url: "http://127.0.0.1:9/hook".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        filters: Vec::new(),
        queue: 10,
        max_attempts: 1,
        timeout_ms: 100,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_message_events_only_when_a_webhook_forwards_them() {
    let m = start().await;
    assert!(!message_events_seen(&m, "plain").await, "no webhook: none");
    m.stop().await;
    let m = start_with(|c, _| c.http.webhooks = vec![hook(&["client.connected"])]).await;
    assert!(
        !message_events_seen(&m, "lifecycle").await,
        "a lifecycle webhook: none"
    );
    m.stop().await;
    let m = start_with(|c, _| c.http.webhooks = vec![hook(&["message.published"])]).await;
    assert!(
        message_events_seen(&m, "messages").await,
        "a message webhook: sent"
    );
    m.stop().await;
}

/// Waits (bounded) until the management API lists `id` offline, and
/// returns that listing: a connection's task releases its session just
/// after the socket closes.
async fn until_offline(m: &Midge, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, c) = get(m, &format!("/api/v1/clients/{id}")).await;
        if c["online"] == false {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} still online: {c}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /metrics` text (public by default).
async fn metrics_text(m: &Midge) -> String {
    let r = client()
        .get(m.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    r.text().await.expect("metrics text")
}

/// The value of the series `series` (name and labels exactly as written)
/// in a Prometheus text exposition; `None` if it is not there.
fn series(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series}: value {v:?}: {e}"))
        })
}

fn value(text: &str, name: &str) -> f64 {
    series(text, name).unwrap_or_else(|| panic!("metric {name} missing:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_store_holding_an_offline_sessions_messages() {
    let m = start().await;
    let (mut keeper, _) = persistent(&m, "stored", 300, None).await;
    subscribe_acked(&mut keeper, "dur/#", QoS::AtLeastOnce).await;
    keeper
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
    assert!(keeper.recv().await.is_none());
    until_offline(&m, "stored").await;

    let before = metrics_text(&m).await;
    for (family, kind) in [
        ("midge_store_info", "gauge"),
        ("midge_store_messages", "gauge"),
        ("midge_store_bytes", "gauge"),
        ("midge_store_commits_total", "counter"),
        ("midge_store_syncs_total", "counter"),
        ("midge_store_sync_seconds_total", "counter"),
        ("midge_store_sync_seconds_max", "gauge"),
        ("midge_store_write_failures_total", "counter"),
    ] {
        assert!(
            before.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} {kind}:\n{before}"
        );
    }
    assert_eq!(
        series(&before, "midge_store_info{engine=\"disk\"}"),
        Some(1.0)
    );
    let mut publisher = m.mqtt_client("store-feeder", None).await;
    // A PUBACK for a message a persistent session queues goes once its
    // write is committed, and the store counts a commit before it answers
    // the waiters: no waiting needed for these figures.
    publish_qos1(&mut publisher, "dur/x", (0..5).map(|i| format!("m{i}"))).await;
    let after = metrics_text(&m).await;
    let d = |n: &str| value(&after, n) - value(&before, n);
    assert_eq!(d("midge_store_messages"), 5.0, "{after}");
    assert!(d("midge_store_bytes") > 0.0);
    assert!(d("midge_store_commits_total") >= 1.0);
    assert!(d("midge_store_batches_total") >= 5.0, "one batch a publish");
    assert!(d("midge_store_ops_total") >= 5.0);
    assert!(value(&after, "midge_store_commit_batches_max") >= 1.0);
    // The default policy (batch) makes every commit durable: one fsync each.
    assert_eq!(d("midge_store_syncs_total"), d("midge_store_commits_total"));
    assert!(d("midge_store_sync_seconds_total") > 0.0);
    assert!(value(&after, "midge_store_sync_seconds_max") > 0.0);
    for zero in [
        "midge_store_write_failures_total",
        "midge_store_refused_full_total",
        "midge_store_batches_refused_full_total",
        "midge_store_commit_errors_total",
        "midge_store_dropped_queue_full_total",
    ] {
        assert_eq!(value(&after, zero), 0.0, "{zero}");
    }

    // The session comes back and acknowledges the five: the store lets go
    // of them (acknowledgements are written without waiting: bounded poll).
    let (mut keeper, present) = persistent(&m, "stored", 300, None).await;
    assert!(present);
    for _ in 0..5 {
        match keeper.recv().await {
            Some(Packet::Publish(p)) => {
                let pkid = p.pkid;
                keeper.send(&Packet::PubAck(PubResp::new(pkid))).await;
            }
            other => panic!("expected a queued PUBLISH, got {other:?}"),
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = metrics_text(&m).await;
        if value(&now, "midge_store_messages") == value(&before, "midge_store_messages") {
            assert!(
                value(&now, "midge_store_commits_total")
                    > value(&after, "midge_store_commits_total")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store still holds the acknowledged messages:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_the_memory_store() {
    let m = start_with(|c, _| c.store.engine = midge_server::StoreEngine::Memory).await;
    let text = metrics_text(&m).await;
    assert_eq!(
        series(&text, "midge_store_info{engine=\"memory\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(series(&text, "midge_store_info{engine=\"disk\"}"), None);
    assert_eq!(value(&text, "midge_store_write_failures_total"), 0.0);
    m.stop().await;
}
