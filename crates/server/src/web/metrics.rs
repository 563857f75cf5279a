//! `GET /metrics`: Prometheus text format (version 0.0.4). Broker counters
//! (per QoS and per drop reason included) come from `Broker::stats()`, the
//! same numbers `$SYS` publishes; clients per listener from a
//! `Broker::clients()` snapshot; the durable store's counters from
//! `Broker::durability()`; the web doors add their own. Nothing here
//! listens to broker events, so the message path pays nothing for it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use midge_broker::DurabilityStats;

use super::admin::require_admin;
use super::error::ApiError;
use super::views::{drop_reason_name, qos_label, DROP_REASONS};
use super::Web;
use crate::http::HttpState;

/// `GET /metrics`
pub async fn metrics(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !state.web.config.metrics_public {
        require_admin(&state, &headers, remote).await?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state.web),
    ))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.family(name, kind, help);
        let _ = writeln!(self.0, "{name} {v}");
    }

    fn labelled(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
    }
}

/// The whole exposition.
pub fn render(web: &Web) -> String {
    let s = web.broker.stats();
    let mut o = Out(String::with_capacity(8 * 1024));
    o.one(
        "midge_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        s.uptime.as_secs(),
    );
    o.one(
        "midge_clients_connected",
        "gauge",
        "Clients with an accepted connection.",
        s.clients_connected,
    );
    o.one(
        "midge_clients_disconnected",
        "gauge",
        "Offline persistent sessions.",
        s.clients_disconnected,
    );
    o.one(
        "midge_clients_maximum",
        "gauge",
        "Most clients connected at once.",
        s.clients_maximum,
    );
    o.one(
        "midge_connections",
        "gauge",
        "Open network connections, CONNECT received or not.",
        s.connections,
    );
    o.one(
        "midge_connections_total",
        "counter",
        "Connections accepted.",
        s.connections_total,
    );
    o.one(
        "midge_packets_received_total",
        "counter",
        "MQTT control packets received.",
        s.messages_received,
    );
    o.one(
        "midge_packets_sent_total",
        "counter",
        "MQTT control packets sent.",
        s.messages_sent,
    );
    o.one(
        "midge_bytes_received_total",
        "counter",
        "Bytes received from clients.",
        s.bytes_received,
    );
    o.one(
        "midge_bytes_sent_total",
        "counter",
        "Bytes sent to clients.",
        s.bytes_sent,
    );
    o.one(
        "midge_publish_received_total",
        "counter",
        "PUBLISH packets received.",
        s.publish_received,
    );
    o.one(
        "midge_publish_sent_total",
        "counter",
        "PUBLISH packets sent.",
        s.publish_sent,
    );
    o.one(
        "midge_publish_dropped_total",
        "counter",
        "Messages not delivered to a subscriber.",
        s.publish_dropped,
    );
    o.one(
        "midge_subscriptions",
        "gauge",
        "Subscriptions in the index.",
        s.subscriptions,
    );
    o.one(
        "midge_retained_messages",
        "gauge",
        "Retained messages stored.",
        s.retained,
    );
    o.one(
        "midge_queued_messages",
        "gauge",
        "Messages waiting in session queues plus in flight.",
        s.messages_stored,
    );

    o.family(
        "midge_messages_published_total",
        "counter",
        "Messages accepted for routing, by QoS.",
    );
    for (i, n) in s.published_by_qos.iter().enumerate() {
        o.labelled(
            "midge_messages_published_total",
            &[("qos", qos_label(i))],
            n,
        );
    }
    o.family(
        "midge_payload_bytes_published_total",
        "counter",
        "Payload bytes accepted for routing, by QoS.",
    );
    for (i, n) in s.published_bytes_by_qos.iter().enumerate() {
        o.labelled(
            "midge_payload_bytes_published_total",
            &[("qos", qos_label(i))],
            n,
        );
    }
    o.family(
        "midge_dropped_messages_total",
        "counter",
        "Messages not delivered, by reason.",
    );
    for r in DROP_REASONS {
        o.labelled(
            "midge_dropped_messages_total",
            &[("reason", drop_reason_name(r))],
            s.dropped_by_reason.get(r),
        );
    }
    if let Some(d) = web.broker.durability() {
        store(&mut o, &d);
    }
    o.family(
        "midge_listener_clients_connected",
        "gauge",
        "Clients connected per listener now.",
    );
    for (l, n) in connected_by_listener(web) {
        o.labelled("midge_listener_clients_connected", &[("listener", &l)], n);
    }
    o.one(
        "midge_web_events_lagged_total",
        "counter",
        "Broker events the webhooks missed by lagging.",
        web.counters.events_lagged.load(Ordering::Relaxed),
    );

    let c = &web.counters;
    o.one(
        "midge_http_publish_total",
        "counter",
        "Messages published through POST /api/v1/publish.",
        c.http_publish.load(Ordering::Relaxed),
    );
    o.one(
        "midge_http_publish_denied_total",
        "counter",
        "HTTP publishes refused by the ACL.",
        c.http_publish_denied.load(Ordering::Relaxed),
    );
    o.one(
        "midge_http_streams",
        "gauge",
        "Open SSE streams and poll subscriptions.",
        web.feeds.len(),
    );
    o.one(
        "midge_http_stream_evicted_total",
        "counter",
        "Messages dropped by full stream buffers (live streams).",
        web.feeds.evicted(),
    );
    o.one(
        "midge_sse_connections",
        "gauge",
        "Open SSE connections.",
        c.sse_connections.load(Ordering::Relaxed),
    );
    o.one(
        "midge_sse_connections_total",
        "counter",
        "SSE connections opened.",
        c.sse_connections_total.load(Ordering::Relaxed),
    );
    o.one(
        "midge_poll_requests_total",
        "counter",
        "Long-poll requests.",
        c.poll_requests.load(Ordering::Relaxed),
    );
    o.one(
        "midge_socketio_connections",
        "gauge",
        "Connected Socket.IO clients.",
        c.socketio_connections.load(Ordering::Relaxed),
    );
    o.one(
        "midge_socketio_connections_total",
        "counter",
        "Socket.IO clients accepted.",
        c.socketio_connections_total.load(Ordering::Relaxed),
    );
    o.one(
        "midge_socketio_emit_dropped_total",
        "counter",
        "Messages not emitted to a Socket.IO client (its buffer was full).",
        c.socketio_emit_dropped.load(Ordering::Relaxed),
    );

    o.family(
        "midge_webhook_sent_total",
        "counter",
        "Events delivered to a webhook.",
    );
    for h in &web.webhooks {
        o.labelled(
            "midge_webhook_sent_total",
            &[("url", &h.stats.url)],
            h.stats.sent.load(Ordering::Relaxed),
        );
    }
    o.family(
        "midge_webhook_failed_total",
        "counter",
        "Events given up after every attempt.",
    );
    for h in &web.webhooks {
        o.labelled(
            "midge_webhook_failed_total",
            &[("url", &h.stats.url)],
            h.stats.failed.load(Ordering::Relaxed),
        );
    }
    o.family(
        "midge_webhook_retries_total",
        "counter",
        "Webhook attempts repeated after a failure.",
    );
    for h in &web.webhooks {
        o.labelled(
            "midge_webhook_retries_total",
            &[("url", &h.stats.url)],
            h.stats.retried.load(Ordering::Relaxed),
        );
    }
    o.family(
        "midge_webhook_dropped_total",
        "counter",
        "Events dropped because a webhook's queue was full.",
    );
    for h in &web.webhooks {
        o.labelled(
            "midge_webhook_dropped_total",
            &[("url", &h.stats.url)],
            h.stats.dropped.load(Ordering::Relaxed),
        );
    }
    o.0
}

/// The durable store's figures (`Broker::durability()`, the numbers the
/// `$SYS/broker/store/...` topics publish, and a few more). Every server
/// has a store, `engine = "memory"` included; a broker built without one
/// exports none of these.
fn store(o: &mut Out, d: &DurabilityStats) {
    let s = &d.store;
    o.family(
        "midge_store_info",
        "gauge",
        "The durable store's engine (disk or memory); always 1.",
    );
    o.labelled("midge_store_info", &[("engine", d.engine)], 1);
    o.one(
        "midge_store_messages",
        "gauge",
        "Message bodies held by the store (one per message, however many sessions queue it).",
        s.messages,
    );
    o.one(
        "midge_store_bytes",
        "gauge",
        "Bytes of the store's records, keys and values (the file on disk is larger).",
        s.bytes,
    );
    o.one(
        "midge_store_backlog_batches",
        "gauge",
        "Write batches submitted to the store and not committed yet.",
        s.backlog,
    );
    o.one(
        "midge_store_commits_total",
        "counter",
        "Store transactions committed (group commit: one or more batches each).",
        s.commits,
    );
    o.one(
        "midge_store_batches_total",
        "counter",
        "Write batches committed to the store.",
        s.batches,
    );
    o.one(
        "midge_store_ops_total",
        "counter",
        "Write operations committed to the store.",
        s.ops,
    );
    o.one(
        "midge_store_commit_batches_max",
        "gauge",
        "Most batches one store transaction carried since start.",
        s.max_batches_per_commit,
    );
    o.one(
        "midge_store_syncs_total",
        "counter",
        "Durable store commits, each an fsync (group commits, or checkpoints under fsync = never).",
        s.syncs,
    );
    o.one(
        "midge_store_sync_seconds_total",
        "counter",
        "Time spent in durable store commits (fsync included).",
        s.sync_time_us as f64 / 1e6,
    );
    o.one(
        "midge_store_sync_seconds_max",
        "gauge",
        "Longest durable store commit since start.",
        s.sync_max_us as f64 / 1e6,
    );
    o.one(
        "midge_store_commit_errors_total",
        "counter",
        "Store transactions that failed (every batch they carried was refused).",
        s.write_errors,
    );
    o.one(
        "midge_store_purged_total",
        "counter",
        "Expired entries removed from the store.",
        s.purged,
    );
    o.one(
        "midge_store_dropped_queue_full_total",
        "counter",
        "Queue entries not stored because their session's stored queue was at its cap.",
        s.dropped_queue_full,
    );
    o.one(
        "midge_store_batches_refused_full_total",
        "counter",
        "Write batches the store refused at its size cap (max_store_bytes).",
        s.refused_full,
    );
    o.one(
        "midge_store_refused_full_total",
        "counter",
        "Client writes (QoS 1/2 publishes: 5.0 0x97, subscriptions) refused because the store was at its size cap.",
        d.refused_full,
    );
    o.one(
        "midge_store_write_failures_total",
        "counter",
        "Client writes (QoS 1/2 publishes: 0x80, subscriptions) refused because a store write failed.",
        d.write_failures,
    );
}

/// Connected clients per listener, from a snapshot of the sessions (one
/// short lock per session: a scrape costs the broker about as much as a
/// `GET /api/v1/clients`).
fn connected_by_listener(web: &Web) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for c in web.broker.clients() {
        if let (Some(_), Some(l)) = (c.connected_since, &c.listener) {
            *m.entry(l.to_string()).or_default() += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
