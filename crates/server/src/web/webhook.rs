//! Webhooks: broker events POSTed as JSON to configured URLs. Each webhook
//! has a bounded queue (full: the event is dropped and counted) and one
//! worker that sends in order, retrying failures (connection errors, 5xx,
//! 429) with a doubling back-off capped at 10 s, up to `max_attempts`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use midge_broker::Event;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::WebhookConfig;
use super::views::{drop_reason_name, protocol_name};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Counters of one webhook.
#[derive(Debug, Default)]
pub struct HookStats {
    pub url: String,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
}

/// A running webhook: its filter and the sending end of its queue.
#[derive(Debug)]
pub struct Webhook {
    config: WebhookConfig,
    tx: mpsc::Sender<Value>,
    pub stats: Arc<HookStats>,
}

/// The event's name as webhooks know it.
pub fn event_name(e: &Event) -> &'static str {
    match e {
        Event::ClientConnected { .. } => "client.connected",
        Event::ClientDisconnected { .. } => "client.disconnected",
        Event::Subscribed { .. } => "client.subscribed",
        Event::Unsubscribed { .. } => "client.unsubscribed",
        Event::MessagePublished { .. } => "message.published",
        Event::MessageDropped { .. } => "message.dropped",
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The JSON body for an event.
pub fn event_json(e: &Event) -> Value {
    let mut v = match e {
        Event::ClientConnected {
            client_id,
            username,
            remote_addr,
            listener,
            protocol,
            clean_start,
            keep_alive,
            session_present,
        } => json!({
            "client_id": &**client_id,
            "username": username.as_deref(),
            "address": remote_addr.map(|a| a.to_string()),
            "listener": &**listener,
            "protocol": protocol_name(*protocol),
            "clean_start": clean_start,
            "keep_alive": keep_alive,
            "session_present": session_present,
        }),
        Event::ClientDisconnected {
            client_id,
            reason,
            abnormal,
        } => json!({
            "client_id": &**client_id,
            "reason_code": *reason as u8,
            "abnormal": abnormal,
        }),
        Event::Subscribed {
            client_id,
            filter,
            qos,
        } => json!({"client_id": &**client_id, "filter": &**filter, "qos": *qos as u8}),
        Event::Unsubscribed { client_id, filter } => {
            json!({"client_id": &**client_id, "filter": &**filter})
        }
        Event::MessagePublished {
            topic,
            qos,
            retain,
            payload,
            client_id,
            ..
        } => {
            let mut m = json!({
                "topic": &**topic,
                "qos": *qos as u8,
                "retain": retain,
                "client_id": client_id.as_deref(),
            });
            match std::str::from_utf8(payload) {
                Ok(t) => m["payload"] = json!(t),
                Err(_) => m["payload_base64"] = json!(STANDARD.encode(payload)),
            }
            m
        }
        Event::MessageDropped { client_id, reason } => {
            json!({"client_id": &**client_id, "reason": drop_reason_name(*reason)})
        }
    };
    v["event"] = json!(event_name(e));
    v["timestamp_ms"] = json!(now_ms());
    v
}

impl Webhook {
    /// Starts the worker; it ends with `shutdown`.
    pub fn start(
        config: WebhookConfig,
        client: reqwest::Client,
        shutdown: CancellationToken,
    ) -> Webhook {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(HookStats {
            url: config.url.clone(),
            ..HookStats::default()
        });
        tokio::spawn(worker(config.clone(), client, rx, stats.clone(), shutdown));
        Webhook { config, tx, stats }
    }

    /// Whether this webhook forwards per-message events (`message.published`,
    /// `message.dropped`), which the broker sends only when asked.
    pub fn wants_message_events(&self) -> bool {
        let e = &self.config.events;
        e.is_empty()
            || e.iter()
                .any(|n| n == "message.published" || n == "message.dropped")
    }

    /// Whether this webhook wants `e`.
    pub fn wants(&self, e: &Event) -> bool {
        let name = event_name(e);
        if !self.config.events.is_empty() && !self.config.events.iter().any(|n| n == name) {
            return false;
        }
        match e {
            Event::MessagePublished { topic, .. } if !self.config.filters.is_empty() => self
                .config
                .filters
                .iter()
                .any(|f| midge_proto::topic::matches(f, topic)),
            _ => true,
        }
    }

    /// Queues `e` if wanted; a full queue drops it (counted).
    pub fn offer(&self, e: &Event) {
        if !self.wants(e) {
            return;
        }
        if self.tx.try_send(event_json(e)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn worker(
    config: WebhookConfig,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Value>,
    stats: Arc<HookStats>,
    shutdown: CancellationToken,
) {
    let timeout = Duration::from_millis(config.timeout_ms.max(1));
    loop {
        let body = tokio::select! {
            _ = shutdown.cancelled() => return,
            b = rx.recv() => match b { Some(b) => b, None => return },
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = client
                .post(&config.url)
                .timeout(timeout)
                .json(&body)
                .send()
                .await;
            let retry = match result {
                Ok(r) if r.status().is_success() => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // 4xx other than 429: the receiver refuses this event;
                // sending it again would not help.
                Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
                Err(_) => true,
            };
            if !retry || attempt >= config.max_attempts {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %config.url, attempts = attempt, "webhook delivery failed; event dropped");
                break;
            }
            stats.retried.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(topic: &str) -> Event {
        Event::MessagePublished {
            topic: topic.into(),
            qos: midge_proto::QoS::AtLeastOnce,
            retain: false,
            payload_len: 2,
            payload: bytes::Bytes::from_static(b"hi"),
            client_id: Some(Arc::from("c")),
        }
    }

    #[tokio::test]
    async fn filters_events_and_topics() {
        let cfg = WebhookConfig {
            url: "http://127.0.0.1:9/".into(),
            events: vec!["message.published".into()],
            filters: vec!["a/#".into()],
            queue: 1,
            max_attempts: 1,
            timeout_ms: 100,
        };
        let shutdown = CancellationToken::new();
        let h = Webhook::start(cfg, reqwest::Client::new(), shutdown.clone());
        assert!(h.wants_message_events());
        assert!(h.wants(&published("a/b")));
        assert!(!h.wants(&published("b")));
        assert!(!h.wants(&Event::Unsubscribed {
            client_id: Arc::from("c"),
            filter: "a".into()
        }));
        let j = event_json(&published("a/b"));
        assert_eq!(j["event"], "message.published");
        assert_eq!(j["payload"], "hi");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn only_message_webhooks_ask_for_message_events() {
        let shutdown = CancellationToken::new();
        let hook = |events: &[&str]| {
            let cfg = WebhookConfig {
                url: "http://127.0.0.1:9/".into(),
                events: events.iter().map(|e| e.to_string()).collect(),
                filters: Vec::new(),
                queue: 1,
                max_attempts: 1,
                timeout_ms: 100,
            };
            Webhook::start(cfg, reqwest::Client::new(), shutdown.clone())
        };
        assert!(!hook(&["client.connected", "client.subscribed"]).wants_message_events());
        assert!(hook(&["client.connected", "message.dropped"]).wants_message_events());
        assert!(hook(&[]).wants_message_events(), "empty: every event");
        shutdown.cancel();
    }
}
