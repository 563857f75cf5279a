//! The management API's JSON shapes, made from the broker's snapshots
//! (`Broker::clients()`, `Broker::subscriptions()`), and the names that
//! protocol versions, transports, QoS levels and drop reasons have in JSON,
//! webhooks and metric labels.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use midge_broker::{ClientInfo, DropReason, SubscriptionInfo, Transport};
use midge_proto::{Protocol, QoS, RetainHandling};
use serde::Serialize;

/// One session (connected, or offline and kept) as `GET /api/v1/clients`
/// shows it. The field names of the first version (`id`, `address`,
/// `drops`, `subscriptions` as a map) are kept for the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientJson {
    pub id: String,
    pub username: Option<String>,
    /// Of the latest connection (also while offline).
    pub address: Option<String>,
    pub listener: Option<String>,
    pub transport: Option<&'static str>,
    pub protocol: &'static str,
    /// Whether a connection holds the session now.
    pub online: bool,
    /// Unix seconds; `None` while offline.
    pub connected_since: Option<u64>,
    pub clean_start: bool,
    pub keep_alive: u16,
    /// Seconds (4294967295: never expires).
    pub session_expiry_interval: u32,
    /// filter -> granted QoS
    pub subscriptions: BTreeMap<String, u8>,
    /// Messages waiting to be sent.
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// Messages not delivered to this session (queue full, expired, too
    /// large, not authorized, QoS 0 discarded on going offline).
    pub drops: u64,
    /// A session of the web layer itself (SSE, polling, Socket.IO, HTTP
    /// publish).
    pub internal: bool,
}

impl ClientJson {
    /// `subs` are this client's subscriptions.
    pub fn new<'a>(c: &ClientInfo, subs: impl IntoIterator<Item = &'a SubscriptionInfo>) -> Self {
        ClientJson {
            id: c.client_id.to_string(),
            username: c.username.as_deref().map(str::to_owned),
            address: c.remote_addr.map(|a| a.to_string()),
            listener: c.listener.as_deref().map(str::to_owned),
            transport: c.transport.map(transport_name),
            protocol: protocol_name(c.protocol),
            online: c.connected_since.is_some(),
            connected_since: c.connected_since.map(unix_secs),
            clean_start: c.clean_start,
            keep_alive: c.keep_alive,
            session_expiry_interval: c.session_expiry_interval,
            subscriptions: subs
                .into_iter()
                .map(|s| (s.filter.to_string(), s.qos as u8))
                .collect(),
            queued: c.queued,
            inflight: c.inflight,
            drops: c.dropped,
            internal: c.client_id.starts_with(super::INTERNAL_PREFIX),
        }
    }

    /// Every client with its subscriptions, in the broker's order (by id).
    pub fn all(clients: &[ClientInfo], subs: &[SubscriptionInfo]) -> Vec<ClientJson> {
        let mut by_client: HashMap<&str, Vec<&SubscriptionInfo>> = HashMap::new();
        for s in subs {
            by_client.entry(&s.client_id).or_default().push(s);
        }
        clients
            .iter()
            .map(|c| {
                let mine = by_client.remove(&*c.client_id).unwrap_or_default();
                ClientJson::new(c, mine)
            })
            .collect()
    }
}

/// One subscription as `GET /api/v1/subscriptions` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubscriptionJson {
    pub client_id: String,
    /// As subscribed (`$share/{group}/...` included).
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained messages at subscribe, 1: only for a new
    /// subscription, 2: never.
    pub retain_handling: u8,
    pub subscription_id: Option<u32>,
    pub shared_group: Option<String>,
}

impl From<&SubscriptionInfo> for SubscriptionJson {
    fn from(s: &SubscriptionInfo) -> Self {
        SubscriptionJson {
            client_id: s.client_id.to_string(),
            filter: s.filter.to_string(),
            qos: s.qos as u8,
            no_local: s.no_local,
            retain_as_published: s.retain_as_published,
            retain_handling: match s.retain_handling {
                RetainHandling::SendAtSubscribe => 0,
                RetainHandling::SendIfNew => 1,
                RetainHandling::DoNotSend => 2,
            },
            subscription_id: s.subscription_id,
            shared_group: s.shared_group.as_deref().map(str::to_owned),
        }
    }
}

/// Seconds since the Unix epoch (0 for a clock set before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V3_1 => "3.1",
        Protocol::V3_1_1 => "3.1.1",
        Protocol::V5 => "5.0",
    }
}

pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::WebSocket => "ws",
        Transport::WebSocketTls => "wss",
        Transport::Internal => "internal",
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

/// Every drop reason, in label order.
pub const DROP_REASONS: [DropReason; 5] = [
    DropReason::QueueFull,
    DropReason::Offline,
    DropReason::TooLarge,
    DropReason::Expired,
    DropReason::NotAuthorized,
];

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
    use std::sync::Arc;

    fn info(id: &str, online: bool) -> ClientInfo {
        ClientInfo {
            client_id: Arc::from(id),
            username: Some(Arc::from("u")),
            remote_addr: Some("127.0.0.1:5".parse().expect("addr")),
            listener: Some(Arc::from("mqtt:x")),
            transport: Some(Transport::Tcp),
            protocol: Protocol::V5,
            keep_alive: 30,
            connected_since: online
                .then(|| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7)),
            clean_start: false,
            session_expiry_interval: 60,
            subscriptions: 1,
            queued: 3,
            inflight: 2,
            dropped: 4,
        }
    }

    fn sub(id: &str, filter: &str) -> SubscriptionInfo {
        SubscriptionInfo {
            client_id: Arc::from(id),
            filter: filter.into(),
            qos: QoS::AtLeastOnce,
            no_local: false,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
            subscription_id: Some(9),
            shared_group: None,
        }
    }

    #[test]
    fn clients_get_their_own_subscriptions() {
        let clients = [
            info("a", true),
            info("b", false),
            info("midge-web-sse-1", true),
        ];
        let subs = [sub("a", "x/#"), sub("b", "y"), sub("b", "z")];
        let all = ClientJson::all(&clients, &subs);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].subscriptions.keys().collect::<Vec<_>>(), ["x/#"]);
        assert_eq!(all[0].connected_since, Some(7));
        assert!(all[0].online && !all[1].online);
        assert_eq!(all[1].connected_since, None);
        assert_eq!(all[1].subscriptions.get("z"), Some(&1));
        assert!(all[2].subscriptions.is_empty() && all[2].internal && !all[0].internal);
        assert_eq!((all[0].queued, all[0].inflight, all[0].drops), (3, 2, 4));
        assert_eq!(all[0].transport, Some("tcp"));
        let j = SubscriptionJson::from(&subs[0]);
        assert_eq!((j.retain_handling, j.subscription_id), (2, Some(9)));
    }
}
