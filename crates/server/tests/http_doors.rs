//! The web doors end to end on a real midge: MQTT in, SSE and long polling
//! out (1,000 messages, no loss, resume), HTTP publish to MQTT with
//! properties and errors, retained listing, management API, `/metrics`
//! after known traffic, webhooks with retries.

mod common;
mod web_common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use midge_proto::{Packet, QoS};
use serde_json::{json, Value};
use web_common::*;

const N: usize = 1000;

fn payloads(range: std::ops::Range<usize>) -> impl Iterator<Item = String> {
    range.map(|i| format!("m{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_delivers_a_thousand_messages_and_resumes_with_last_event_id() {
    let m = start().await;
    let http = client();
    let mut s = sse(
        &http,
        &m.url("/api/v1/stream?filter=sse/%2B&filter=other/%23"),
        &[],
    )
    .await;
    let open = s.next().await;
    assert_eq!(open.event, "open");
    let stream_id = open.json()["stream"]
        .as_str()
        .expect("stream id")
        .to_owned();
    assert_eq!(open.id.as_deref(), Some(&*format!("{stream_id}-0")));

    let mut mqtt = m.mqtt_client("pub-sse", None).await;
    publish_qos1(&mut mqtt, "sse/a", payloads(0..N)).await;
    let mut last_id = String::new();
    for i in 0..400 {
        let e = s.next().await;
        assert_eq!(e.event, "message");
        let v = e.json();
        assert_eq!(v["topic"], "sse/a");
        assert_eq!(v["payload"], format!("m{i}"), "in order, none lost");
        assert_eq!(v["qos"], 1);
        last_id = e.id.expect("message events have ids");
        assert_eq!(last_id, format!("{stream_id}-{}", i + 1));
    }
    // The client goes away with 600 messages unread, and more arrive.
    drop(s);
    publish_qos1(&mut mqtt, "sse/a", payloads(N..N + 200)).await;
    let mut s = sse(
        &http,
        &m.url("/api/v1/stream"),
        &[("Last-Event-ID", &last_id)],
    )
    .await;
    let open = s.next().await;
    assert_eq!(open.event, "open");
    assert_eq!(open.json()["resumed"], true);
    for i in 400..N + 200 {
        let e = s.next().await;
        assert_eq!(e.event, "message", "no drop event: the buffer held them");
        assert_eq!(
            e.json()["payload"],
            format!("m{i}"),
            "resumed without loss or duplicate"
        );
    }
    // An unknown stream id: a new stream, which says the old one expired.
    let mut s2 = sse(
        &http,
        &m.url("/api/v1/stream?filter=x"),
        &[("Last-Event-ID", "0000-5")],
    )
    .await;
    let open = s2.next().await;
    assert_eq!(open.json()["resumed"], false);
    assert_eq!(open.json()["expired"], "0000-5");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_reports_dropped_messages_when_the_buffer_overflows() {
    let m = start_with(|c, _| c.http.stream_buffer = 10).await;
    let http = client();
    let mut s = sse(&http, &m.url("/api/v1/stream?filter=d"), &[]).await;
    let open = s.next().await;
    let id = open.id.expect("id");
    drop(s);
    let mut mqtt = m.mqtt_client("pub-drop", None).await;
    publish_qos1(&mut mqtt, "d", payloads(0..25)).await;
    // Wait (bounded) until the feed's pump, which runs on its own, has
    // taken all 25: the ring then counts 15 evicted.
    let stream_id = id.rsplit_once('-').expect("id form").0.to_owned();
    let evicted = |t: &str| metric(t, "midge_http_stream_evicted_total");
    let t = m.metrics_until(&http, |t| evicted(t) >= 15.0).await;
    assert_eq!(evicted(&t), 15.0);
    let mut s = sse(&http, &m.url("/api/v1/stream"), &[("Last-Event-ID", &id)]).await;
    assert_eq!(s.next().await.event, "open");
    let mut seen = Vec::new();
    let mut dropped = 0;
    while seen.len() < 10 {
        let e = s.next().await;
        match e.event.as_str() {
            "dropped" => dropped += e.json()["count"].as_u64().expect("count"),
            "message" => seen.push(e.json()["payload"].as_str().expect("text").to_owned()),
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(dropped, 15, "25 sent, 10 kept");
    assert_eq!(seen.first().map(String::as_str), Some("m15"));
    assert_eq!(seen.last().map(String::as_str), Some("m24"));
    assert!(!stream_id.is_empty());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_misses_nothing_across_polls() {
    let m = start().await;
    let http = client();
    let first = json_of(http.get(m.url("/api/v1/poll?filter=poll/%23&timeout=0"))).await;
    assert_eq!(first["messages"].as_array().map(Vec::len), Some(0));
    let mut cursor = first["cursor"].as_str().expect("cursor").to_owned();

    // A poll with nothing waiting holds until a message comes.
    let held = {
        let http = http.clone();
        let url = m.url(&format!("/api/v1/poll?cursor={cursor}&timeout=20"));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let v = json_of(http.get(url)).await;
            (v, started.elapsed())
        })
    };
    let mut mqtt = m.mqtt_client("pub-poll", None).await;
    publish_qos1(&mut mqtt, "poll/x", payloads(0..1)).await;
    let (v, took) = tokio::time::timeout(WAIT, held)
        .await
        .expect("answered")
        .expect("joined");
    assert_eq!(v["messages"][0]["payload"], "m0");
    assert!(
        took < Duration::from_secs(15),
        "returned when the message came"
    );
    cursor = v["cursor"].as_str().expect("cursor").to_owned();

    // 999 more, while nobody polls; then poll in pages of up to 100.
    publish_qos1(&mut mqtt, "poll/x", payloads(1..N)).await;
    let mut got = vec!["m0".to_owned()];
    for _ in 0..100 {
        if got.len() == N {
            break;
        }
        let url = m.url(&format!("/api/v1/poll?cursor={cursor}&timeout=5&max=100"));
        let v = json_of(http.get(url)).await;
        assert_eq!(v["dropped"], 0);
        for msg in v["messages"].as_array().expect("messages") {
            got.push(msg["payload"].as_str().expect("text").to_owned());
        }
        cursor = v["cursor"].as_str().expect("cursor").to_owned();
    }
    let want: Vec<String> = payloads(0..N).collect();
    assert_eq!(got, want, "every message once, in order");

    // Polling again with an old cursor repeats nothing already confirmed
    // past it... and a cursor of a subscription that is gone is 410.
    let gone = m.url("/api/v1/poll?cursor=ffff-1&timeout=0");
    assert_eq!(status_of(http.get(gone)).await, 410);
    let this = m.url(&format!("/api/v1/poll?cursor={cursor}"));
    assert_eq!(status_of(http.delete(this)).await, 200);
    let closed = m.url(&format!("/api/v1/poll?cursor={cursor}&timeout=0"));
    assert_eq!(
        status_of(http.get(closed)).await,
        410,
        "closed subscription"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_and_sse_deliver_retained_first_when_asked() {
    let m = start().await;
    let http = client();
    let mut mqtt = m.mqtt_client("pub-ret", None).await;
    for (t, p) in [("ret/a", "A"), ("ret/b", "B")] {
        publish_retained_qos1(&mut mqtt, t, p.as_bytes(), 1).await;
    }
    let mut got = HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        if got.len() == 2 {
            break;
        }
        let url = match &cursor {
            None => m.url("/api/v1/poll?filter=ret/%2B&retained=true&timeout=5"),
            Some(c) => m.url(&format!("/api/v1/poll?cursor={c}&timeout=5")),
        };
        let v = json_of(http.get(url)).await;
        for msg in v["messages"].as_array().expect("messages") {
            assert_eq!(msg["retain"], true);
            got.insert(msg["payload"].as_str().expect("text").to_owned());
        }
        cursor = Some(v["cursor"].as_str().expect("cursor").to_owned());
    }
    assert_eq!(got, HashSet::from(["A".to_owned(), "B".to_owned()]));
    let mut s = sse(
        &http,
        &m.url("/api/v1/stream?filter=ret/a&retained=true"),
        &[],
    )
    .await;
    assert_eq!(s.next().await.event, "open");
    let e = s.next().await;
    assert_eq!(e.json()["payload"], "A");
    assert_eq!(e.json()["retain"], true);
    // Without retained=true, nothing old arrives; a new message does.
    let mut s = sse(&http, &m.url("/api/v1/stream?filter=ret/a"), &[]).await;
    assert_eq!(s.next().await.event, "open");
    publish_qos1(&mut mqtt, "ret/a", ["new".to_owned()].into_iter()).await;
    assert_eq!(s.next().await.json()["payload"], "new");

    // The retained listing.
    let v = json_of(http.get(m.url("/api/v1/retained?filter=ret/%23"))).await;
    assert_eq!(v["count"], 2);
    assert_eq!(v["messages"][0]["topic"], "ret/a");
    assert_eq!(v["messages"][0]["payload"], "A");
    assert_eq!(v["messages"][0]["qos"], 1, "the stored QoS");
    assert_eq!(v["messages"][1]["payload"], "B");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_listing_is_complete_beyond_the_inflight_window() {
    // More retained messages than max_inflight (100) and than one drain
    // batch: the listing must still be complete.
    let m = start().await;
    let mut mqtt = m.mqtt_client("pub-many", None).await;
    for i in 0..600u16 {
        publish_retained_qos1(&mut mqtt, &format!("many/{i}"), &[b'x'; 200], i + 1).await;
    }
    let list = |query: &str| json_of(client().get(m.url(&format!("/api/v1/retained?{query}"))));
    let v = list("filter=many/%2B&limit=10000").await;
    assert_eq!(v["count"], 600);
    assert_eq!(v["truncated"], false);
    let v = list("filter=many/%2B&limit=50").await;
    assert_eq!(v["count"], 50);
    assert_eq!(v["truncated"], true);
    // Overlapping filters list each message once.
    let v = list("filter=many/%2B&filter=many/%23&filter=%23&limit=10000").await;
    assert_eq!(v["count"], 600);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publish_reaches_mqtt_with_properties() {
    let m = start().await;
    let mut sub = m.mqtt_client("sub-http", None).await;
    subscribe_acked(&mut sub, "http/#", QoS::ExactlyOnce).await;
    let http = client();
    for (qos, body) in [
        (0, json!({"topic": "http/0", "payload": "zero"})),
        (
            1,
            json!({"topic": "http/1", "payload_json": {"a": [1, 2]}, "qos": 1}),
        ),
        (
            2,
            json!({"topic": "http/2", "payload_base64": "AAEC", "qos": 2,
                   "content_type": "application/octet-stream", "response_topic": "reply/here",
                   "correlation_data": "Y29ycg==", "message_expiry_interval": 120,
                   "user_properties": [["k", "v"], ["k", "w"]]}),
        ),
    ] {
        let r = http
            .post(m.url("/api/v1/publish"))
            .json(&body)
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        let p = match sub.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        };
        assert_eq!(p.qos as u8, qos);
        match qos {
            0 => assert_eq!(&p.payload[..], b"zero"),
            1 => assert_eq!(&p.payload[..], br#"{"a":[1,2]}"#),
            _ => {
                assert_eq!(&p.payload[..], &[0, 1, 2]);
                let pr = &p.properties;
                assert_eq!(pr.content_type.as_deref(), Some("application/octet-stream"));
                assert_eq!(pr.response_topic.as_deref(), Some("reply/here"));
                assert_eq!(pr.correlation_data.as_deref(), Some(&b"corr"[..]));
                assert!(pr
                    .message_expiry_interval
                    .is_some_and(|e| e <= 120 && e > 100));
                assert_eq!(pr.user_properties.len(), 2);
            }
        }
        ack_delivery(&mut sub, &p).await;
    }
    // Errors say what is wrong.
    let cases = [
        (json!({"topic": "a/+/b", "payload": "x"}), 400, "bad_topic"),
        (json!({"topic": "a", "qos": 7}), 400, "bad_request"),
        (json!({"payload": "no topic"}), 400, "bad_request"),
        (
            json!({"topic": "a", "payload": "x", "payload_base64": "eA=="}),
            400,
            "bad_request",
        ),
        (
            json!({"topic": "a", "payload_base64": "!!"}),
            400,
            "bad_request",
        ),
    ];
    for (body, status, code) in cases {
        let r = http
            .post(m.url("/api/v1/publish"))
            .json(&body)
            .send()
            .await
            .expect("req");
        assert_eq!(r.status(), status, "{body}");
        let v: Value = r.json().await.expect("JSON error");
        assert_eq!(v["code"], code, "{body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let r = http
        .post(m.url("/api/v1/publish"))
        .body("{not json")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    let big = "x".repeat(1_048_577);
    let r = http
        .post(m.url("/api/v1/publish"))
        .json(&json!({"topic": "big", "payload": big}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], "too_large");
    let r = http
        .post(m.url("/api/v1/publish"))
        .header("authorization", "Bearer wrong-token")
        .json(&json!({"topic": "a"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_api_needs_admin_and_lists_clients() {
    let m = start().await;
    let http = client();
    let _sub = {
        let mut c = m.mqtt_client("listed-client", None).await;
        subscribe_acked(&mut c, "mgmt/#", QoS::AtLeastOnce).await;
        c
    };
    let clients = || http.get(m.url("/api/v1/clients"));
    assert_eq!(status_of(clients()).await, 401, "anonymous");
    let as_user = clients().bearer_auth(USER_KEY);
    assert_eq!(status_of(as_user).await, 403, "not an admin");
    // Read from the broker's sessions: there as soon as SUBACK was sent.
    let v = json_of(clients().bearer_auth(ADMIN_KEY)).await;
    let found = v["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["id"] == "listed-client" && c["subscriptions"]["mgmt/#"] == 1)
        .cloned();
    let c = found.expect("client listed with its subscription");
    assert_eq!(c["protocol"], "5.0");
    assert_eq!(c["internal"], false);
    assert_eq!(c["online"], true);
    assert_eq!(c["transport"], "tcp");
    assert_eq!(
        (c["queued"].as_u64(), c["inflight"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(c["address"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    let jwt = midge_server::web::auth::sign_jwt(&json!({"sub": "root"}), JWT_SECRET.as_bytes());
    let subs = json_of(http.get(m.url("/api/v1/subscriptions")).bearer_auth(&jwt)).await;
    let sub = subs["subscriptions"]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["client_id"] == "listed-client" && s["filter"] == "mgmt/#")
        .cloned()
        .expect("subscription listed");
    assert_eq!(sub["qos"], 1);
    assert_eq!(sub["no_local"], false);
    assert_eq!(sub["shared_group"], Value::Null);
    let one = http
        .get(m.url("/api/v1/clients/listed-client"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("req");
    assert_eq!(one.status(), 200);
    let one: Value = one.json().await.expect("json");
    assert_eq!(one["subscriptions"]["mgmt/#"], 1);
    let missing = http.get(m.url("/api/v1/clients/nobody"));
    assert_eq!(status_of(missing.bearer_auth(ADMIN_KEY)).await, 404);
    let stats = json_of(http.get(m.url("/api/v1/stats")).bearer_auth(ADMIN_KEY)).await;
    assert!(stats["clients_connected"].as_u64().is_some_and(|n| n >= 1));
    assert!(stats["published_by_qos"]["1"].as_u64().is_some());
    assert!(stats["dropped_by_reason"]["queue_full"].as_u64().is_some());
    m.stop().await;
}

/// The value of an unlabelled series in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic() {
    let m = start().await;
    let http = client();
    let before = http.get(m.url("/metrics")).send().await.expect("metrics");
    assert!(before
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/plain")));
    let before = before.text().await.expect("text");
    let mut sub = m.mqtt_client("metrics-sub", None).await;
    subscribe_acked(&mut sub, "met/#", QoS::AtMostOnce).await;
    let mut publisher = m.mqtt_client("metrics-pub", None).await;
    publish_qos1(&mut publisher, "met/x", payloads(0..10)).await;
    for _ in 0..10 {
        assert!(matches!(sub.recv().await, Some(Packet::Publish(_))));
    }
    for i in 0..3 {
        let r = http
            .post(m.url("/api/v1/publish"))
            .json(&json!({"topic": "met/h", "payload": format!("{i}")}))
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), 200);
        assert!(matches!(sub.recv().await, Some(Packet::Publish(_))));
    }
    let after = text_of(http.get(m.url("/metrics"))).await;
    let d = |n: &str| metric(&after, n) - metric(&before, n);
    assert_eq!(d("midge_publish_received_total"), 13.0, "10 MQTT + 3 HTTP");
    assert!(d("midge_publish_sent_total") >= 13.0);
    assert_eq!(d("midge_http_publish_total"), 3.0);
    assert!(metric(&after, "midge_clients_connected") >= 2.0);
    assert!(d("midge_bytes_received_total") > 0.0);
    assert!(after.contains("# TYPE midge_messages_published_total counter"));
    // Per-QoS counts come from the broker's counters, which a connection
    // adds its own tallies to in batches: wait (bounded) for them.
    let qos1 = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("midge_messages_published_total{qos=\"1\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let t = m.metrics_until(&http, |t| qos1(t) >= 10.0).await;
    assert_eq!(qos1(&t), 10.0, "QoS 1 messages counted exactly");
    assert!(after.contains("midge_listener_clients_connected{listener="));
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_post_events_and_retry_failures() {
    use axum::routing::post;
    // A receiver that fails its first request, then records bodies.
    let hits = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = {
        let hits = hits.clone();
        axum::Router::new().route(
            "/hook",
            post(move |axum::Json(v): axum::Json<Value>| {
                let (hits, tx) = (hits.clone(), tx.clone());
                async move {
                    if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let _ = tx.send(v);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    let m = start_with(|c, _| {
        c.http.webhooks = vec![midge_server::web::config::WebhookConfig {
            url: format!("http://{addr}/hook"),
            events: vec!["message.published".into()],
            filters: vec!["hook/#".into()],
            queue: 100,
            max_attempts: 5,
            timeout_ms: 2000,
        }];
    })
    .await;
    let mut mqtt = m.mqtt_client("hook-pub", None).await;
    publish_qos1(&mut mqtt, "nohook", payloads(0..1)).await;
    publish_qos1(&mut mqtt, "hook/a", payloads(0..2)).await;
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("body");
    assert_eq!(first["event"], "message.published");
    assert_eq!(first["topic"], "hook/a");
    assert_eq!(first["payload"], "m0", "the failed first try was retried");
    let second = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("body");
    assert_eq!(second["payload"], "m1");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "one failure, one retry, one more"
    );
    // The worker counts after it reads the answer, which follows the body
    // the receiver already passed on: wait (bounded) for the count.
    let sent = format!("midge_webhook_sent_total{{url=\"http://{addr}/hook\"}} 2");
    let text = m.metrics_until(&client(), |t| t.contains(&sent)).await;
    assert!(text.contains(&sent), "{text}");
    assert!(text.contains(&format!(
        "midge_webhook_retries_total{{url=\"http://{addr}/hook\"}} 1"
    )));
    m.stop().await;
    receiver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_healthz_are_served() {
    let m = start().await;
    let v = json_of(client().get(m.url("/api/v1/openapi.json"))).await;
    assert!(v["openapi"].as_str().is_some_and(|s| s.starts_with("3.")));
    let health = text_of(client().get(m.url("/healthz"))).await;
    assert_eq!(health, "ok\n");
    m.stop().await;
}
