//! One connected client's protocol handling after CONNECT: every packet it
//! sends, and the messages its session has queued for it. Writes packets
//! into the connection's write buffer; never touches the socket.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use midge_proto::{
    encode, encoded_len, topic, Connect, Disconnect, Packet, Properties, Protocol, PubResp,
    Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};

use crate::alias::TopicAliases;
use crate::broker::Broker;
use crate::event::{DropReason, Event};
use crate::hooks::ClientRef;
use crate::keepalive::KeepAlive;
use crate::message::Message;
use crate::routing::Scratch;
use crate::session::{Delivery, Outgoing, Qos2Publish, Session};
use crate::stats::Tally;

/// Most queued messages taken per session lock.
const DRAIN_BATCH: usize = 64;

/// Why a connection ends, and what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    pub reason: ReasonCode,
    /// Publish (or schedule) the will.
    pub will: bool,
    /// Send a 5.0 DISCONNECT with `reason` first.
    pub notify: bool,
}

impl Exit {
    /// The server closes for `reason` (DISCONNECT first in 5.0), will goes.
    pub fn error(reason: ReasonCode) -> Exit {
        Exit {
            reason,
            will: true,
            notify: true,
        }
    }

    /// The network connection ended without DISCONNECT.
    pub fn lost() -> Exit {
        Exit {
            reason: ReasonCode::UnspecifiedError,
            will: true,
            notify: false,
        }
    }
}

/// The state of one connected client.
pub(crate) struct Client {
    pub broker: Broker,
    pub session: Arc<Session>,
    pub conn_id: u64,
    pub protocol: Protocol,
    pub client_id: Arc<str>,
    pub username: Option<Arc<str>>,
    pub keepalive: KeepAlive,
    aliases: TopicAliases,
    /// Outbound in-flight window: min(max_inflight, client's Receive Maximum).
    quota: usize,
    /// The client's Maximum Packet Size.
    max_out: usize,
    /// Session Expiry Interval given at CONNECT (DISCONNECT may not raise
    /// it from 0).
    connect_expiry: u32,
    scratch: Scratch,
    pending: Vec<Outgoing>,
    pub tally: Tally,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl Client {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        broker: Broker,
        session: Arc<Session>,
        conn_id: u64,
        c: &Connect,
        client_id: Arc<str>,
        username: Option<Arc<str>>,
        keep_alive: u16,
        expiry: u32,
        now: Instant,
    ) -> Client {
        let cfg = broker.config();
        let v5 = c.protocol.is_v5();
        let client_rm = if v5 {
            c.properties.receive_maximum.unwrap_or(u16::MAX)
        } else {
            u16::MAX
        };
        let quota = usize::from(cfg.max_inflight.min(client_rm).max(1));
        let max_out = if v5 {
            c.properties
                .maximum_packet_size
                .map_or(usize::MAX, |m| m as usize)
        } else {
            usize::MAX
        };
        let aliases = TopicAliases::new(if v5 { cfg.max_topic_alias } else { 0 });
        Client {
            broker,
            session,
            conn_id,
            protocol: c.protocol,
            client_id,
            username,
            keepalive: KeepAlive::new(keep_alive, now),
            aliases,
            quota,
            max_out,
            connect_expiry: expiry,
            scratch: Vec::new(),
            pending: Vec::new(),
            tally: Tally::default(),
        }
    }

    fn v5(&self) -> bool {
        self.protocol.is_v5()
    }

    /// Encodes `p` into `out`. Our own packets always encode; if one does
    /// not, it is a bug worth a log line, and the connection closes.
    pub fn send(&mut self, p: &Packet, out: &mut BytesMut) -> Result<(), Exit> {
        let before = out.len();
        if let Err(e) = encode(p, self.protocol, out) {
            tracing::error!(client_id = &*self.client_id, error = %e, "cannot encode outgoing packet");
            out.truncate(before);
            return Err(Exit::error(ReasonCode::ImplementationSpecificError));
        }
        self.tally.messages_sent += 1;
        self.tally.bytes_sent += (out.len() - before) as u64;
        Ok(())
    }

    fn client_ref(&self) -> ClientRef<'_> {
        ClientRef {
            client_id: &self.client_id,
            username: self.username.as_deref(),
        }
    }

    /// Handles one packet from the client.
    pub fn handle(&mut self, packet: Packet, now: Instant, out: &mut BytesMut) -> Result<(), Exit> {
        self.keepalive.touch(now);
        self.tally.messages_received += 1;
        match packet {
            Packet::Publish(p) => self.on_publish(p, out),
            Packet::PubAck(p) => {
                self.session.state.lock().outbound.puback(p.pkid);
                Ok(())
            }
            Packet::PubRec(p) => {
                let send_rel = self
                    .session
                    .state
                    .lock()
                    .outbound
                    .pubrec(p.pkid, p.reason.is_error());
                if send_rel {
                    self.send(&Packet::PubRel(PubResp::new(p.pkid)), out)
                } else if !p.reason.is_error() {
                    // Unknown packet id: answer so the client can finish.
                    let mut r = PubResp::new(p.pkid);
                    if self.v5() {
                        r.reason = ReasonCode::PacketIdentifierNotFound;
                    }
                    self.send(&Packet::PubRel(r), out)
                } else {
                    Ok(())
                }
            }
            Packet::PubComp(p) => {
                self.session.state.lock().outbound.pubcomp(p.pkid);
                Ok(())
            }
            Packet::PubRel(p) => {
                let known = self.session.state.lock().inbound.release(p.pkid);
                let mut r = PubResp::new(p.pkid);
                if !known && self.v5() {
                    r.reason = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(&Packet::PubComp(r), out)
            }
            Packet::Subscribe(s) => self.on_subscribe(s, out),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u, out),
            Packet::PingReq => self.send(&Packet::PingResp, out),
            Packet::Disconnect(d) => Err(self.on_disconnect(d)),
            Packet::Connect(_) => Err(Exit::error(ReasonCode::ProtocolError)),
            // AUTH without an authentication method, or packets only a
            // server sends.
            Packet::Auth(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Err(Exit::error(ReasonCode::ProtocolError)),
        }
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Exit {
        if let Some(e) = d.properties.session_expiry_interval {
            if self.connect_expiry == 0 && e != 0 {
                return Exit::error(ReasonCode::ProtocolError);
            }
            let e = e.min(self.broker.config().max_session_expiry);
            self.session.state.lock().expiry_interval = e;
        }
        Exit {
            reason: d.reason,
            will: d.reason == ReasonCode::DisconnectWithWillMessage,
            notify: false,
        }
    }

    fn on_publish(&mut self, p: Publish, out: &mut BytesMut) -> Result<(), Exit> {
        self.tally.publish_received += 1;
        let cfg = self.broker.config();
        if !p.properties.subscription_identifiers.is_empty() {
            // Only the server sends those [MQTT-3.3.4-6].
            return Err(Exit::error(ReasonCode::ProtocolError));
        }
        let topic = if self.v5() {
            self.aliases
                .resolve(&p.topic, p.properties.topic_alias)
                .map_err(Exit::error)?
        } else {
            p.topic.clone()
        };
        if topic::validate_name_with_limit(&topic, cfg.max_topic_levels).is_err() {
            return Err(Exit::error(ReasonCode::TopicNameInvalid));
        }
        if p.qos > cfg.maximum_qos {
            return Err(Exit::error(ReasonCode::QoSNotSupported));
        }
        if p.retain && !cfg.retain_available {
            return Err(Exit::error(ReasonCode::RetainNotSupported));
        }
        let mut allowed = self
            .broker
            .inner
            .hooks
            .authorize_publish(&self.client_ref(), &topic);
        let mut denied = if self.v5() {
            ReasonCode::NotAuthorized
        } else {
            ReasonCode::Success
        };
        if allowed
            && p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            // The publisher promised UTF-8 and broke it: not forwarded
            // [MQTT-3.3.2-4], answered 0x99 (QoS 1/2).
            allowed = false;
            denied = ReasonCode::PayloadFormatInvalid;
        }
        match p.qos {
            QoS::AtMostOnce => {
                if allowed {
                    self.route(p, topic);
                }
                Ok(())
            }
            QoS::AtLeastOnce => {
                let pkid = p.pkid;
                if allowed {
                    self.route(p, topic);
                }
                let mut ack = PubResp::new(pkid);
                if !allowed {
                    ack.reason = denied;
                }
                self.send(&Packet::PubAck(ack), out)
            }
            QoS::ExactlyOnce => {
                let pkid = p.pkid;
                let mut rec = PubResp::new(pkid);
                if !allowed {
                    rec.reason = denied;
                    return self.send(&Packet::PubRec(rec), out);
                }
                let state = self
                    .session
                    .state
                    .lock()
                    .inbound
                    .publish(pkid, cfg.receive_maximum.max(1));
                match state {
                    Qos2Publish::New => self.route(p, topic),
                    Qos2Publish::Duplicate => {}
                    Qos2Publish::ReceiveMaximumExceeded => {
                        return Err(Exit::error(ReasonCode::ReceiveMaximumExceeded))
                    }
                }
                self.send(&Packet::PubRec(rec), out)
            }
        }
    }

    fn route(&mut self, p: Publish, topic: bytestring::ByteString) {
        let mut properties = p.properties;
        properties.topic_alias = None;
        let msg = Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            publisher: Some(self.client_id.clone()),
            received_at: Instant::now(),
        };
        self.broker.inner.dispatch(msg, &mut self.scratch);
    }

    fn on_subscribe(&mut self, s: Subscribe, out: &mut BytesMut) -> Result<(), Exit> {
        let cfg = self.broker.config();
        let v5 = self.v5();
        let id = s.properties.subscription_identifiers.first().copied();
        let fail = |code: ReasonCode| {
            if v5 {
                code
            } else {
                ReasonCode::UnspecifiedError
            }
        };
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut granted_subs = Vec::new();
        for sub in s.filters {
            let f = &sub.filter;
            if topic::validate_filter_with_limit(f, cfg.max_topic_levels).is_err() {
                reasons.push(fail(ReasonCode::TopicFilterInvalid));
                continue;
            }
            let shared = topic::parse_shared(f).is_some();
            if shared && sub.options.no_local && v5 {
                return Err(Exit::error(ReasonCode::ProtocolError));
            }
            if !self
                .broker
                .inner
                .hooks
                .authorize_subscribe(&self.client_ref(), f)
            {
                reasons.push(fail(ReasonCode::NotAuthorized));
                continue;
            }
            let mut options = sub.options;
            options.qos = options.qos.min(cfg.maximum_qos);
            if !v5 {
                options.no_local = false;
                options.retain_as_published = false;
                options.retain_handling = Default::default();
            }
            let sub_id = if v5 { id } else { None };
            let is_new = self
                .broker
                .inner
                .subscribe(&self.session, f, options, sub_id);
            reasons.push(ReasonCode::granted(options.qos));
            self.broker.inner.emit(|| Event::Subscribed {
                client_id: self.client_id.clone(),
                filter: f.clone(),
                qos: options.qos,
            });
            granted_subs.push((sub.filter, options, sub_id, is_new));
        }
        let ack = SubAck {
            pkid: s.pkid,
            reasons,
            properties: Properties::default(),
        };
        self.send(&Packet::SubAck(ack), out)?;
        // Retained messages follow the SUBACK through the session queue, so
        // flow control and ordering apply to them too.
        for (filter, options, sub_id, is_new) in granted_subs {
            self.broker
                .inner
                .send_retained(&self.session, &filter, options, sub_id, is_new);
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe, out: &mut BytesMut) -> Result<(), Exit> {
        let mut reasons = Vec::with_capacity(u.filters.len());
        for f in u.filters {
            let existed = self.broker.inner.unsubscribe(&self.session, &f);
            reasons.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
            if existed {
                self.broker.inner.emit(|| Event::Unsubscribed {
                    client_id: self.client_id.clone(),
                    filter: f.clone(),
                });
            }
        }
        if !self.v5() {
            reasons.clear();
        }
        let ack = UnsubAck {
            pkid: u.pkid,
            reasons,
            properties: Properties::default(),
        };
        self.send(&Packet::UnsubAck(ack), out)
    }

    /// Whether this connection still owns its session (not taken over).
    fn owns(&self, s: &crate::session::SessionState) -> bool {
        s.owner.as_ref().is_some_and(|o| o.conn_id == self.conn_id)
    }

    /// Sends again what was in flight when the session was last connected
    /// (PUBLISH with DUP, PUBREL), right after CONNACK.
    pub fn resend_inflight(&mut self, now: Instant, out: &mut BytesMut) -> Result<(), Exit> {
        let again = {
            let st = self.session.state.lock();
            if !self.owns(&st) {
                return Ok(());
            }
            st.outbound.resend()
        };
        self.pending = again;
        self.write_pending(now, out)
    }

    /// Moves queued messages the in-flight window allows into `out`, up to
    /// `limit` bytes. Returns true if more may be ready.
    pub fn drain(&mut self, now: Instant, out: &mut BytesMut, limit: usize) -> Result<bool, Exit> {
        let mut more = false;
        while out.len() < limit {
            let expired = {
                let mut st = self.session.state.lock();
                if !self.owns(&st) {
                    return Ok(false);
                }
                for _ in 0..DRAIN_BATCH {
                    match st.outbound.next(self.quota, now) {
                        Some(o) => self.pending.push(o),
                        None => break,
                    }
                }
                std::mem::take(&mut st.outbound.expired)
            };
            for _ in 0..expired {
                self.broker
                    .inner
                    .note_drop(&self.client_id, DropReason::Expired);
            }
            let got = self.pending.len();
            self.write_pending(now, out)?;
            if got < DRAIN_BATCH {
                return Ok(false);
            }
            more = true;
        }
        Ok(more)
    }

    fn write_pending(&mut self, now: Instant, out: &mut BytesMut) -> Result<(), Exit> {
        let pending = std::mem::take(&mut self.pending);
        for o in &pending {
            match o {
                Outgoing::PubRel(pkid) => self.send(&Packet::PubRel(PubResp::new(*pkid)), out)?,
                Outgoing::Publish {
                    pkid,
                    dup,
                    delivery,
                } => {
                    let p = self.publish_packet(delivery, *pkid, *dup, now);
                    if self.max_out != usize::MAX && encoded_len(&p, self.protocol) > self.max_out {
                        // Too large for this client [MQTT-3.1.2-25]: dropped.
                        if *pkid != 0 {
                            self.session.state.lock().outbound.abandon(*pkid);
                        }
                        self.broker
                            .inner
                            .note_drop(&self.client_id, DropReason::TooLarge);
                        continue;
                    }
                    self.send(&p, out)?;
                    self.tally.publish_sent += 1;
                }
            }
        }
        let mut pending = pending;
        pending.clear();
        self.pending = pending;
        Ok(())
    }

    fn publish_packet(&self, d: &Delivery, pkid: u16, dup: bool, now: Instant) -> Packet {
        let properties = if self.v5() {
            let mut p = d.msg.properties.clone();
            p.subscription_identifiers.clone_from(&d.sub_ids);
            p.message_expiry_interval = d.msg.remaining_expiry(now);
            p
        } else {
            Properties::default()
        };
        Packet::Publish(Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: d.msg.topic.clone(),
            pkid,
            payload: d.msg.payload.clone(),
            properties,
        })
    }

    /// The DISCONNECT to send for a server-side exit (5.0 only).
    pub fn disconnect_packet(&self, exit: &Exit) -> Option<Packet> {
        (self.v5() && exit.notify).then(|| Packet::Disconnect(Disconnect::new(exit.reason)))
    }
}
