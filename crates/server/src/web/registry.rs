//! What the management API and `/metrics` know beyond `Broker::stats()`:
//! connected clients, their subscriptions and drops, per-listener
//! connections, messages by QoS and drops by reason. The broker core has no
//! per-client query API, so this registry is built here from its event
//! stream (`Event::ClientConnected`, `Subscribed`, ...). The stream is a
//! bounded broadcast: if this task ever lags, events are lost and the lag
//! is counted (`midge_web_events_lagged_total`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use midge_broker::{DropReason, Event};
use midge_proto::{Protocol, QoS};
use parking_lot::Mutex;
use serde::Serialize;

/// One connected client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    pub id: String,
    pub username: Option<String>,
    pub address: Option<String>,
    pub listener: String,
    pub protocol: &'static str,
    pub clean_start: bool,
    pub keep_alive: u16,
    /// Seconds since the Unix epoch.
    pub connected_since: u64,
    /// filter -> granted QoS
    pub subscriptions: BTreeMap<String, u8>,
    /// Messages not delivered to this client since it connected.
    pub drops: u64,
    /// Internal sessions of the web layer (SSE, polling, Socket.IO, HTTP
    /// publish) are listed too.
    pub internal: bool,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<Arc<str>, ClientInfo>,
    /// Connections per client id: a takeover's old connection may report
    /// its end after the new one connected.
    conns: HashMap<Arc<str>, usize>,
    by_listener: BTreeMap<String, u64>,
    published_by_qos: [u64; 3],
    published_bytes_by_qos: [u64; 3],
    dropped_by_reason: BTreeMap<&'static str, u64>,
    lagged: u64,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    // Held for one event or one copy; never across an await.
    state: Mutex<State>,
}

/// Counters derived from events, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct EventCounters {
    pub connected_by_listener: BTreeMap<String, u64>,
    pub published_by_qos: [u64; 3],
    pub published_bytes_by_qos: [u64; 3],
    pub dropped_by_reason: BTreeMap<&'static str, u64>,
    pub lagged: u64,
}

pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V3_1 => "3.1",
        Protocol::V3_1_1 => "3.1.1",
        Protocol::V5 => "5.0",
    }
}

pub fn drop_reason_name(r: DropReason) -> &'static str {
    match r {
        DropReason::QueueFull => "queue_full",
        DropReason::Offline => "offline",
        DropReason::TooLarge => "too_large",
        DropReason::Expired => "expired",
        DropReason::NotAuthorized => "not_authorized",
    }
}

fn addr(a: &Option<SocketAddr>) -> Option<String> {
    a.map(|a| a.to_string())
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Applies one broker event.
    pub fn apply(&self, e: &Event) {
        let mut s = self.state.lock();
        match e {
            Event::ClientConnected {
                client_id,
                username,
                remote_addr,
                listener,
                protocol,
                clean_start,
                keep_alive,
                session_present,
            } => {
                *s.conns.entry(client_id.clone()).or_default() += 1;
                *s.by_listener.entry(listener.to_string()).or_default() += 1;
                let kept = if *session_present {
                    s.clients
                        .get(client_id)
                        .map(|c| c.subscriptions.clone())
                        .unwrap_or_default()
                } else {
                    BTreeMap::new()
                };
                let since = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                s.clients.insert(
                    client_id.clone(),
                    ClientInfo {
                        id: client_id.to_string(),
                        username: username.as_deref().map(str::to_owned),
                        address: addr(remote_addr),
                        listener: listener.to_string(),
                        protocol: protocol_name(*protocol),
                        clean_start: *clean_start,
                        keep_alive: *keep_alive,
                        connected_since: since,
                        subscriptions: kept,
                        drops: 0,
                        internal: client_id.starts_with(super::INTERNAL_PREFIX),
                    },
                );
            }
            Event::ClientDisconnected { client_id, .. } => {
                let left = match s.conns.get_mut(client_id) {
                    Some(n) => {
                        *n = n.saturating_sub(1);
                        *n
                    }
                    None => 0,
                };
                if left == 0 {
                    s.conns.remove(client_id);
                    s.clients.remove(client_id);
                }
            }
            Event::Subscribed {
                client_id,
                filter,
                qos,
            } => {
                if let Some(c) = s.clients.get_mut(client_id) {
                    c.subscriptions.insert(filter.to_string(), *qos as u8);
                }
            }
            Event::Unsubscribed { client_id, filter } => {
                if let Some(c) = s.clients.get_mut(client_id) {
                    c.subscriptions.remove(&**filter);
                }
            }
            Event::MessagePublished {
                qos, payload_len, ..
            } => {
                let i = *qos as usize;
                s.published_by_qos[i] += 1;
                s.published_bytes_by_qos[i] += *payload_len as u64;
            }
            Event::MessageDropped { client_id, reason } => {
                *s.dropped_by_reason
                    .entry(drop_reason_name(*reason))
                    .or_default() += 1;
                if let Some(c) = s.clients.get_mut(client_id) {
                    c.drops += 1;
                }
            }
        }
    }

    pub fn lagged(&self, n: u64) {
        self.state.lock().lagged += n;
    }

    /// Connected clients, sorted by id.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut v: Vec<ClientInfo> = self.state.lock().clients.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn client(&self, id: &str) -> Option<ClientInfo> {
        self.state.lock().clients.get(id).cloned()
    }

    pub fn counters(&self) -> EventCounters {
        let s = self.state.lock();
        EventCounters {
            connected_by_listener: s.by_listener.clone(),
            published_by_qos: s.published_by_qos,
            published_bytes_by_qos: s.published_bytes_by_qos,
            dropped_by_reason: s.dropped_by_reason.clone(),
            lagged: s.lagged,
        }
    }

    /// Clients connected per listener now.
    pub fn connected_by_listener(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for c in self.state.lock().clients.values() {
            *m.entry(c.listener.clone()).or_default() += 1;
        }
        m
    }
}

/// QoS as a label value.
pub fn qos_label(i: usize) -> &'static str {
    match QoS::from_u8(i as u8) {
        Some(QoS::AtMostOnce) => "0",
        Some(QoS::AtLeastOnce) => "1",
        _ => "2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_proto::ReasonCode;

    fn connected(id: &str, present: bool) -> Event {
        Event::ClientConnected {
            client_id: Arc::from(id),
            username: Some(Arc::from("u")),
            remote_addr: Some("127.0.0.1:5".parse().expect("addr")),
            listener: Arc::from("mqtt:x"),
            protocol: Protocol::V5,
            clean_start: !present,
            keep_alive: 30,
            session_present: present,
        }
    }

    fn gone(id: &str) -> Event {
        Event::ClientDisconnected {
            client_id: Arc::from(id),
            reason: ReasonCode::Success,
            abnormal: false,
        }
    }

    #[test]
    fn tracks_clients_and_subscriptions() {
        let r = Registry::new();
        r.apply(&connected("a", false));
        r.apply(&Event::Subscribed {
            client_id: Arc::from("a"),
            filter: "x/#".into(),
            qos: QoS::AtLeastOnce,
        });
        r.apply(&Event::MessageDropped {
            client_id: Arc::from("a"),
            reason: DropReason::QueueFull,
        });
        let c = r.client("a").expect("listed");
        assert_eq!(c.subscriptions.get("x/#"), Some(&1));
        assert_eq!(c.drops, 1);
        assert_eq!(c.protocol, "5.0");
        // Takeover: the new connection arrives before the old one's end.
        r.apply(&connected("a", true));
        r.apply(&gone("a"));
        let c = r.client("a").expect("still listed after takeover");
        assert_eq!(
            c.subscriptions.len(),
            1,
            "session present keeps subscriptions"
        );
        r.apply(&gone("a"));
        assert!(r.client("a").is_none());
        assert_eq!(r.counters().dropped_by_reason.get("queue_full"), Some(&1));
        assert_eq!(r.counters().connected_by_listener.get("mqtt:x"), Some(&2));
    }
}
