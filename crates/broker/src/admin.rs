//! The management API for the web layer: snapshots of clients (connected
//! and offline sessions), subscriptions and retained messages, and the
//! administrative disconnect. The registry lock is held only to copy the
//! session list; each session is then locked briefly, one at a time. Meant
//! for a dashboard or a REST call, not the message path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytestring::ByteString;
use midge_proto::{topic, Protocol, QoS, ReasonCode, RetainHandling};

use crate::broker::Broker;
use crate::hooks::Transport;
use crate::message::Message;
use crate::session::Session;

/// One session as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: Arc<str>,
    pub username: Option<Arc<str>>,
    /// Of the latest connection (also while offline).
    pub remote_addr: Option<SocketAddr>,
    /// Listener name of the latest connection.
    pub listener: Option<Arc<str>>,
    pub transport: Option<Transport>,
    pub protocol: Protocol,
    /// Keep alive in force, seconds (0 = none).
    pub keep_alive: u16,
    /// When the current connection was accepted; `None` while the session
    /// is offline (persistent, waiting for its client).
    pub connected_since: Option<SystemTime>,
    /// Clean Start (5.0) / Clean Session (3.x) of the latest CONNECT.
    pub clean_start: bool,
    /// Session Expiry Interval in seconds (0: ends with the connection,
    /// `u32::MAX`: never expires).
    pub session_expiry_interval: u32,
    pub subscriptions: usize,
    /// Messages waiting to be sent.
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// Messages not delivered to this session (queue full, expired, too
    /// large, QoS 0 discarded on going offline).
    pub dropped: u64,
}

/// One subscription as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub client_id: Arc<str>,
    /// The filter as subscribed (`$share/{group}/...` included).
    pub filter: ByteString,
    /// The granted QoS.
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
    /// 5.0 Subscription Identifier.
    pub subscription_id: Option<u32>,
    /// The group of a shared subscription.
    pub shared_group: Option<Arc<str>>,
}

impl Broker {
    /// Every session, connected or offline, sorted by client id.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut out: Vec<ClientInfo> = self.sessions().iter().map(|s| client_info(s)).collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        out
    }

    /// The session of `client_id`, if there is one.
    pub fn client(&self, client_id: &str) -> Option<ClientInfo> {
        let s = self.inner.sessions.lock().get(client_id).cloned()?;
        Some(client_info(&s))
    }

    /// Disconnects `client_id` if it is connected (5.0: DISCONNECT 0x98
    /// Administrative action; its will is published, as for any close the
    /// server initiates). With `discard_session` its session ends as well,
    /// online or offline: subscriptions and queued messages are gone, and a
    /// will still waiting for its delay is published now. Returns false if
    /// there was nothing to do (unknown client id, or an offline session
    /// without `discard_session`).
    pub fn disconnect_client(&self, client_id: &str, discard_session: bool) -> bool {
        let inner = &self.inner;
        let (session, conn) = {
            let mut reg = inner.sessions.lock();
            let Some(s) = reg.get(client_id).cloned() else {
                return false;
            };
            let mut st = s.state.lock();
            let conn = st.owner.as_ref().map(|o| o.conn_id);
            if conn.is_none() && !discard_session {
                return false;
            }
            if discard_session {
                // The connection, when it closes, sees `ended` and treats
                // the session as over (will now, nothing kept).
                st.ended = true;
                drop(st);
                s.set_online(false);
                reg.remove(client_id);
            } else {
                drop(st);
            }
            (s, conn)
        };
        if discard_session {
            inner.end_session(&session);
            let pending = inner.timers.lock().take_will(client_id);
            if let Some(p) = pending {
                inner.publish_will(p.msg);
            }
        }
        if let Some(conn_id) = conn {
            if let Some(tx) = inner.conns.lock().get(&conn_id) {
                let _ = tx.try_send(ReasonCode::AdministrativeAction);
            }
        }
        tracing::info!(
            client_id,
            discard_session,
            "client disconnected by an administrator"
        );
        true
    }

    /// Every subscription of every session, sorted by client id then
    /// filter.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let mut out = Vec::new();
        for s in self.sessions() {
            let st = s.state.lock();
            for (filter, sub) in &st.subscriptions {
                let o = sub.options;
                out.push(SubscriptionInfo {
                    client_id: s.client_id.clone(),
                    filter: filter.clone(),
                    qos: o.qos,
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    retain_handling: o.retain_handling,
                    subscription_id: sub.id,
                    shared_group: topic::parse_shared(filter).map(|(g, _)| Arc::from(g)),
                });
            }
        }
        out.sort_by(|a, b| (&a.client_id, &a.filter).cmp(&(&b.client_id, &b.filter)));
        out
    }

    /// The live retained messages whose topics match `filter` (a topic
    /// filter; `$share/{group}/` is ignored), sorted by topic. An invalid
    /// filter matches nothing.
    pub fn retained(&self, filter: &str) -> Vec<Arc<Message>> {
        let filter = topic::parse_shared(filter).map_or(filter, |(_, f)| f);
        if topic::validate_filter(filter).is_err() {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.inner
            .retained
            .read()
            .matching(filter, Instant::now(), &mut out);
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }

    /// A copy of the session list (the registry lock is not held while the
    /// sessions are read).
    fn sessions(&self) -> Vec<Arc<Session>> {
        self.inner.sessions.lock().values().cloned().collect()
    }
}

fn client_info(s: &Session) -> ClientInfo {
    let username = s.username();
    let st = s.state.lock();
    let peer = st.peer.as_ref();
    let online = st.owner.is_some();
    ClientInfo {
        client_id: s.client_id.clone(),
        username,
        remote_addr: peer.and_then(|p| p.remote_addr),
        listener: peer.map(|p| p.listener.clone()),
        transport: peer.map(|p| p.transport),
        protocol: st.protocol,
        keep_alive: peer.map_or(0, |p| p.keep_alive),
        connected_since: peer.filter(|_| online).map(|p| p.connected_at),
        clean_start: peer.is_some_and(|p| p.clean_start),
        session_expiry_interval: st.expiry_interval,
        subscriptions: st.subscriptions.len(),
        queued: st.outbound.queued(),
        inflight: st.outbound.inflight(),
        dropped: s.dropped(),
    }
}
