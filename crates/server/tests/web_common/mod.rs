//! Helpers for the web doors' tests: a midge with an MQTT and an HTTP
//! listener on loopback port 0, an HTTP client, an SSE reader, and a raw
//! MQTT publisher/subscriber (from `common`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use midge_proto::{Packet, Protocol, PubResp, Publish, QoS};
use midge_server::web::config::ApiKey;
use midge_server::web::HttpConfig;
use midge_server::{Config, ListenerConfig, ListenerKind, Server};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::common::{self, Raw};

pub const WAIT: Duration = Duration::from_secs(10);
pub const ADMIN_KEY: &str = "admin-key-0123456789";
pub const USER_KEY: &str = "user-key-0123456789ab";
pub const JWT_SECRET: &str = "jwt-secret-0123456789";

pub struct Midge {
    pub server: Server,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Midge {
    pub fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub async fn stop(self) {
        self.server.shutdown(Duration::from_secs(5)).await;
    }

    /// A connected raw MQTT 5.0 client.
    pub async fn mqtt_client(&self, id: &str, login: Option<(&str, &str)>) -> Raw<TcpStream> {
        let stream = TcpStream::connect(self.mqtt).await.expect("connect");
        let mut raw = Raw::new(stream, Protocol::V5);
        let connect = match login {
            Some((u, p)) => common::connect_with_login(id, Protocol::V5, u, p),
            None => common::connect_packet(id, Protocol::V5),
        };
        let reason = raw.handshake(&connect).await;
        assert!(!reason.is_error(), "CONNACK {reason:?}");
        raw
    }

    /// `GET /metrics`, again every 50 ms (100 tries at most) until `done`
    /// holds for its text: the broker adds some counts in batches, after
    /// the traffic that caused them. The last text read, whether or not
    /// `done` came to hold.
    pub async fn metrics_until(
        &self,
        http: &reqwest::Client,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = text_of(http.get(self.url("/metrics"))).await;
            if done(&text) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        text
    }
}

/// The web settings the tests use: an admin key, a user key, a JWT secret.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        admins: vec!["root".into()],
        api_keys: vec![
            ApiKey {
                key: ADMIN_KEY.into(),
                username: "admin".into(),
                admin: true,
            },
            ApiKey {
                key: USER_KEY.into(),
                username: "user".into(),
                admin: false,
            },
        ],
        jwt_secret: Some(JWT_SECRET.into()),
        ..HttpConfig::default()
    }
}

pub async fn start_with(edit: impl FnOnce(&mut Config, &std::path::Path)) -> Midge {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::config(
        vec![
            ListenerConfig::mqtt(common::loopback()),
            ListenerConfig::new(ListenerKind::Ws, common::loopback()),
        ],
        &dir.path().join("data"),
    );
    config.http = http_config();
    edit(&mut config, dir.path());
    let server = common::start(&config).await;
    let mqtt = common::addr_of(&server, ListenerKind::Mqtt);
    let http = common::addr_of(&server, ListenerKind::Ws);
    Midge {
        server,
        mqtt,
        http,
        dir,
    }
}

pub async fn start() -> Midge {
    start_with(|_, _| {}).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Sends `req` and returns the status of the answer.
pub async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("request").status().as_u16()
}

/// Sends `req` and returns the answer's body as JSON, whatever its status.
pub async fn json_of(req: reqwest::RequestBuilder) -> Value {
    let r = req.send().await.expect("request");
    r.json().await.expect("JSON body")
}

/// Sends `req` and returns the answer's body as text.
pub async fn text_of(req: reqwest::RequestBuilder) -> String {
    let r = req.send().await.expect("request");
    r.text().await.expect("text body")
}

/// The topics of a poll or retained listing's `messages`, in order.
pub fn topics_of(v: &Value) -> Vec<&str> {
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["topic"].as_str())
        .collect()
}

/// Subscribes over MQTT and waits for the SUBACK.
pub async fn subscribe_acked(raw: &mut Raw<TcpStream>, filter: &str, qos: QoS) {
    raw.send(&common::subscribe_packet(1, filter, qos)).await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
}

/// Publishes one retained QoS 1 message over MQTT and waits for its PUBACK.
pub async fn publish_retained_qos1(
    raw: &mut Raw<TcpStream>,
    topic: &str,
    payload: &[u8],
    pkid: u16,
) {
    let Packet::Publish(p) = common::publish_packet(topic, payload, QoS::AtLeastOnce, pkid) else {
        unreachable!()
    };
    raw.send(&Packet::Publish(Publish { retain: true, ..p }))
        .await;
    assert!(matches!(raw.recv().await, Some(Packet::PubAck(_))));
}

/// Acknowledges a delivered PUBLISH as its QoS asks: PUBACK for 1; PUBREC,
/// the broker's PUBREL, then PUBCOMP for 2.
pub async fn ack_delivery(raw: &mut Raw<TcpStream>, p: &Publish) {
    match p.qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => raw.send(&Packet::PubAck(PubResp::new(p.pkid))).await,
        QoS::ExactlyOnce => {
            raw.send(&Packet::PubRec(PubResp::new(p.pkid))).await;
            assert!(matches!(raw.recv().await, Some(Packet::PubRel(_))));
            raw.send(&Packet::PubComp(PubResp::new(p.pkid))).await;
        }
    }
}

/// Publishes QoS 1 over MQTT and waits for each PUBACK.
pub async fn publish_qos1(
    raw: &mut Raw<TcpStream>,
    topic: &str,
    payloads: impl Iterator<Item = String>,
) {
    let mut pkid: u16 = 0;
    for p in payloads {
        pkid = pkid.wrapping_add(1).max(1);
        raw.send(&common::publish_packet(
            topic,
            p.as_bytes(),
            QoS::AtLeastOnce,
            pkid,
        ))
        .await;
        match raw.recv().await {
            Some(Packet::PubAck(a)) => assert_eq!(a.pkid, pkid),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// Reads events from a streaming response.
pub struct SseReader {
    response: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> SseReader {
        assert_eq!(response.status(), 200, "SSE status");
        let ct = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(ct.starts_with("text/event-stream"), "content type {ct}");
        SseReader {
            response,
            buf: String::new(),
        }
    }

    /// The next event (comments skipped), within `WAIT`.
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(WAIT, self.next_inner())
            .await
            .expect("an SSE event within the wait")
    }

    async fn next_inner(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = SseEvent {
                    event: "message".into(),
                    ..SseEvent::default()
                };
                let mut data = Vec::new();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') || line.is_empty() {
                        continue;
                    }
                    any = true;
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    match k {
                        "event" => e.event = v.to_owned(),
                        "id" => e.id = Some(v.to_owned()),
                        "data" => data.push(v.to_owned()),
                        _ => {}
                    }
                }
                if any {
                    e.data = data.join("\n");
                    return e;
                }
                continue;
            }
            match self.response.chunk().await.expect("SSE body") {
                Some(c) => self.buf.push_str(&String::from_utf8_lossy(&c)),
                None => panic!("SSE stream ended"),
            }
        }
    }
}

/// Opens an SSE stream.
pub async fn sse(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> SseReader {
    let mut req = http.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    SseReader::new(req.send().await.expect("SSE request"))
}
