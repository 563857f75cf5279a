//! An MQTT client session over a [`Connection`]: the CONNECT/CONNACK
//! handshake, what the broker allowed (limits from CONNACK), packet ids,
//! keep alive, the QoS 1/2 acknowledgement flows, and DISCONNECT.
//!
//! [`Session::next_event`] handles the protocol replies itself (PUBACK,
//! PUBREC, PUBREL, PUBCOMP) and hands the command only what it needs:
//! messages, acknowledgements, SUBACK and UNSUBACK.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{
    Connect, Disconnect, Packet, Properties, Protocol, PubResp, Publish, QoS, ReasonCode, SubAck,
    Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::config::ConnectConfig;
use crate::conn::{Connection, DebugLog, SharedWriter};
use crate::error::ClientError;
use crate::format::Received;
use crate::time::Timestamp;
use crate::transport;

/// The largest packet midge-proto can frame: 4-byte remaining length + 1.
const MAX_PACKET: usize = midge_proto::MAX_REMAINING_LENGTH + 5;

/// What the broker's CONNACK allows (MQTT 5.0; permissive defaults before).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub receive_maximum: u16,
    pub topic_alias_maximum: u16,
    pub maximum_qos: QoS,
    pub retain_available: bool,
    pub maximum_packet_size: Option<u32>,
}

/// What happened on the connection that the command must know.
#[derive(Debug)]
pub enum Event {
    /// A message to deliver (QoS 2: once its PUBREL arrived).
    Message(Box<Received>),
    /// One of our publishes finished: PUBACK, PUBCOMP, or a failing PUBREC.
    Acked {
        pkid: u16,
        reason: ReasonCode,
    },
    /// One of our QoS 2 publishes got its (successful) PUBREC: the broker
    /// has it, PUBREL is queued, PUBCOMP is awaited.
    Released {
        pkid: u16,
    },
    SubAck(SubAck),
    UnsubAck(UnsubAck),
    /// A packet that needed no action from the command.
    Nothing,
}

/// A connected client.
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    pub protocol: Protocol,
    /// Our client id: the one given, or the one the broker assigned.
    pub client_id: String,
    pub session_present: bool,
    pub limits: ServerLimits,
    keep_alive: Option<Duration>,
    ping_sent: Option<Instant>,
    next_pkid: u16,
    pkids_in_use: HashSet<u16>,
    /// Incoming QoS 2 messages waiting for their PUBREL, with their topic
    /// resolved on arrival: a topic alias means nothing on a later connection
    /// (see [`Session::resume`]), and the broker may remap it meanwhile.
    awaiting_rel: HashMap<u16, (Publish, String)>,
    /// Topic aliases the broker set up (only if we allowed any in CONNECT).
    inbound_aliases: HashMap<u16, ByteString>,
    disconnect_props: Properties,
}

impl Session {
    /// Opens the transport, sends CONNECT and waits for a successful CONNACK,
    /// all within `limit`.
    pub async fn connect(
        cfg: &ConnectConfig,
        stderr: &SharedWriter,
        limit: Duration,
    ) -> Result<Session, ClientError> {
        match tokio::time::timeout(limit, Self::connect_inner(cfg, stderr)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Connect(format!(
                "no CONNACK from the broker within {} s",
                limit.as_secs_f32()
            ))),
        }
    }

    async fn connect_inner(
        cfg: &ConnectConfig,
        stderr: &SharedWriter,
    ) -> Result<Session, ClientError> {
        let stream = transport::connect(cfg).await?;
        let log = cfg
            .debug
            .then(|| DebugLog::new(stderr.clone(), &cfg.client_id));
        let max_in = cfg
            .props
            .connect
            .maximum_packet_size
            .map_or(MAX_PACKET, |m| m as usize);
        let mut conn = Connection::new(stream, cfg.protocol, max_in, log);
        let connect = Connect {
            protocol: cfg.protocol,
            clean_start: cfg.clean_start,
            keep_alive: cfg.keep_alive,
            client_id: ByteString::from(cfg.client_id.clone()),
            will: cfg.will.clone(),
            username: cfg.username.clone().map(ByteString::from),
            password: cfg.password.clone().map(Bytes::from),
            properties: cfg.props.connect.clone(),
        };
        conn.send(&Packet::Connect(Box::new(connect))).await?;
        let connack = match conn.read_packet().await {
            Ok(Packet::ConnAck(c)) => c,
            Ok(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected CONNACK, got {:?}",
                    packet_name(&other)
                )))
            }
            Err(ClientError::ConnectionLost(why)) => {
                return Err(ClientError::Connect(format!(
                    "the broker closed the connection before CONNACK ({why})"
                )))
            }
            Err(e) => return Err(e),
        };
        if cfg.protocol.is_v5() {
            if connack.reason.is_error() {
                return Err(ClientError::RefusedV5(connack.reason));
            }
        } else if connack.reason != ReasonCode::Success {
            return Err(ClientError::RefusedV3(connack.reason.to_v3_connack()));
        }
        let p = &connack.properties;
        let mut client_id = cfg.client_id.clone();
        if let Some(assigned) = &p.assigned_client_identifier {
            client_id = assigned.to_string();
            if let Some(log) = &mut conn.log {
                log.client_id = client_id.clone();
            }
        }
        let keep_alive = p.server_keep_alive.unwrap_or(cfg.keep_alive);
        let limits = ServerLimits {
            receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
            topic_alias_maximum: p.topic_alias_maximum.unwrap_or(0),
            maximum_qos: match p.maximum_qos {
                Some(0) => QoS::AtMostOnce,
                Some(1) => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            },
            retain_available: p.retain_available != Some(0),
            maximum_packet_size: p.maximum_packet_size,
        };
        Ok(Session {
            conn,
            protocol: cfg.protocol,
            client_id,
            session_present: connack.session_present,
            limits,
            keep_alive: (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive))),
            ping_sent: None,
            next_pkid: 0,
            pkids_in_use: HashSet::new(),
            awaiting_rel: HashMap::new(),
            inbound_aliases: HashMap::new(),
            disconnect_props: cfg.props.disconnect.clone(),
        })
    }

    /// Takes over from `previous`, the session of a lost connection, what the
    /// broker keeps too when it resumed the session (CONNACK session present):
    /// QoS 2 messages we sent PUBREC for, whose PUBREL the broker now resends
    /// on this connection. Dropping them would lose those messages unprinted.
    pub fn resume(&mut self, previous: Session) {
        if self.session_present {
            self.awaiting_rel = previous.awaiting_rel;
        }
    }

    /// Goes on numbering packets where `previous`, a lost connection's
    /// session, stopped, as libmosquitto's one counter does across
    /// reconnections: a new message does not reuse the id of one that was
    /// just completed.
    pub fn continue_packet_ids(&mut self, previous: &Session) {
        self.next_pkid = previous.next_pkid;
    }

    /// Writes a `-d` line (e.g. "Subscribed ...") when debugging.
    pub fn debug(&self, text: &str) {
        if let Some(log) = &self.conn.log {
            log.line(text);
        }
    }

    /// When the keep alive timer next needs [`Session::on_keep_alive`].
    pub fn keep_alive_deadline(&self) -> Option<Instant> {
        let ka = self.keep_alive?;
        Some(match self.ping_sent {
            Some(sent) => sent + ka,
            None => self.conn.last_write() + ka,
        })
    }

    /// The keep alive deadline passed: send PINGREQ, or give up if the last
    /// one was never answered.
    pub fn on_keep_alive(&mut self) -> Result<(), ClientError> {
        if self.ping_sent.is_some() {
            return Err(ClientError::ConnectionLost(
                "no PINGRESP from the broker within the keep alive".into(),
            ));
        }
        self.conn.queue(&Packet::PingReq)?;
        self.ping_sent = Some(Instant::now());
        Ok(())
    }

    /// A free packet identifier, reserved until its flow completes.
    pub fn alloc_pkid(&mut self) -> Result<u16, ClientError> {
        for _ in 0..=u16::MAX {
            self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
            if self.pkids_in_use.insert(self.next_pkid) {
                return Ok(self.next_pkid);
            }
        }
        Err(ClientError::Protocol(
            "all 65,535 packet identifiers in use".into(),
        ))
    }

    /// Queues a PUBLISH; returns its packet id (0 for QoS 0). The topic may be
    /// empty when a topic alias (5.0) stands for it.
    pub fn queue_publish(
        &mut self,
        topic: ByteString,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<u16, ClientError> {
        let pkid = if qos == QoS::AtMostOnce {
            0
        } else {
            self.alloc_pkid()?
        };
        let packet = Packet::Publish(Publish {
            dup: false,
            qos,
            retain,
            topic,
            pkid,
            payload,
            properties,
        });
        if let Err(e) = self.check_size(&packet) {
            self.pkids_in_use.remove(&pkid);
            return Err(e);
        }
        self.conn.queue(&packet)?;
        Ok(pkid)
    }

    /// Queues again, with DUP set and its packet id `pkid` (reserved on this
    /// connection too), a QoS 1/2 PUBLISH that a lost connection left
    /// unacknowledged, as libmosquitto does on reconnecting.
    pub fn requeue_publish(&mut self, pkid: u16, publish: Publish) -> Result<(), ClientError> {
        let packet = Packet::Publish(Publish {
            dup: true,
            pkid,
            ..publish
        });
        self.check_size(&packet)?;
        self.pkids_in_use.insert(pkid);
        self.conn.queue(&packet)
    }

    /// Queues again the PUBREL of a QoS 2 flow that a lost connection left
    /// waiting for PUBCOMP, reserving its packet id on this connection.
    pub fn requeue_pubrel(&mut self, pkid: u16) -> Result<(), ClientError> {
        self.pkids_in_use.insert(pkid);
        self.conn.queue(&Packet::PubRel(PubResp::new(pkid)))
    }

    /// Refuses a packet over the broker's Maximum Packet Size (5.0).
    fn check_size(&self, packet: &Packet) -> Result<(), ClientError> {
        if let Some(max) = self.limits.maximum_packet_size {
            let len = midge_proto::encoded_len(packet, self.protocol);
            if len > max as usize {
                return Err(ClientError::Usage(format!(
                    "a message of {len} bytes exceeds the broker's maximum packet size of {max}"
                )));
            }
        }
        Ok(())
    }

    /// Queues a SUBSCRIBE of `filters` at `qos`; returns its packet id.
    pub fn queue_subscribe(
        &mut self,
        filters: &[String],
        qos: QoS,
        properties: Properties,
    ) -> Result<u16, ClientError> {
        let pkid = self.alloc_pkid()?;
        let filters = filters
            .iter()
            .map(|f| Subscription {
                filter: ByteString::from(f.clone()),
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            })
            .collect();
        self.conn.queue(&Packet::Subscribe(Subscribe {
            pkid,
            filters,
            properties,
        }))?;
        Ok(pkid)
    }

    /// Queues an UNSUBSCRIBE of `filters`; returns its packet id.
    pub fn queue_unsubscribe(
        &mut self,
        filters: &[String],
        properties: Properties,
    ) -> Result<u16, ClientError> {
        let pkid = self.alloc_pkid()?;
        self.conn.queue(&Packet::Unsubscribe(Unsubscribe {
            pkid,
            filters: filters
                .iter()
                .map(|f| ByteString::from(f.clone()))
                .collect(),
            properties,
        }))?;
        Ok(pkid)
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.conn.flush().await
    }

    /// Bytes queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.conn.queued()
    }

    /// Reads one packet and acts on it. Cancel-safe: the only await is the
    /// read, and nothing is consumed until a whole packet is there.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        let packet = self.conn.read_packet().await?;
        self.handle(packet)
    }

    fn handle(&mut self, packet: Packet) -> Result<Event, ClientError> {
        Ok(match packet {
            Packet::Publish(p) => match p.qos {
                QoS::AtMostOnce => {
                    let topic = self.topic(&p)?;
                    message(p, topic)
                }
                QoS::AtLeastOnce => {
                    self.conn.queue(&Packet::PubAck(PubResp::new(p.pkid)))?;
                    let topic = self.topic(&p)?;
                    message(p, topic)
                }
                QoS::ExactlyOnce => {
                    let pkid = p.pkid;
                    // A duplicate (redelivery before our PUBREC arrived) is
                    // acknowledged again but delivered only once.
                    let topic = self.topic(&p)?;
                    self.awaiting_rel.entry(pkid).or_insert((p, topic));
                    self.conn.queue(&Packet::PubRec(PubResp::new(pkid)))?;
                    Event::Nothing
                }
            },
            Packet::PubRel(r) => {
                self.conn.queue(&Packet::PubComp(PubResp::new(r.pkid)))?;
                match self.awaiting_rel.remove(&r.pkid) {
                    Some((p, topic)) => message(p, topic),
                    None => Event::Nothing,
                }
            }
            Packet::PubAck(r) | Packet::PubComp(r) => {
                self.pkids_in_use.remove(&r.pkid);
                Event::Acked {
                    pkid: r.pkid,
                    reason: r.reason,
                }
            }
            Packet::PubRec(r) => {
                if r.reason.is_error() {
                    self.pkids_in_use.remove(&r.pkid);
                    Event::Acked {
                        pkid: r.pkid,
                        reason: r.reason,
                    }
                } else {
                    self.conn.queue(&Packet::PubRel(PubResp::new(r.pkid)))?;
                    Event::Released { pkid: r.pkid }
                }
            }
            Packet::SubAck(s) => {
                self.pkids_in_use.remove(&s.pkid);
                Event::SubAck(s)
            }
            Packet::UnsubAck(u) => {
                self.pkids_in_use.remove(&u.pkid);
                Event::UnsubAck(u)
            }
            Packet::PingResp => {
                self.ping_sent = None;
                Event::Nothing
            }
            Packet::Disconnect(d) => {
                return Err(ClientError::DisconnectedByBroker {
                    reason: d.reason,
                    detail: d.properties.reason_string.map(|s| s.to_string()),
                })
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "unexpected {} from the broker",
                    packet_name(&other)
                )))
            }
        })
    }

    /// The topic of an incoming PUBLISH: its own, or the one its topic alias
    /// stands for (an alias sent with a topic sets that alias up).
    fn topic(&mut self, p: &Publish) -> Result<String, ClientError> {
        Ok(match (p.properties.topic_alias, p.topic.is_empty()) {
            (Some(alias), false) => {
                self.inbound_aliases.insert(alias, p.topic.clone());
                p.topic.to_string()
            }
            (Some(alias), true) => match self.inbound_aliases.get(&alias) {
                Some(t) => t.to_string(),
                None => {
                    return Err(ClientError::Protocol(format!(
                        "PUBLISH with unknown topic alias {alias}"
                    )))
                }
            },
            (None, _) => p.topic.to_string(),
        })
    }

    /// Sends DISCONNECT (normal) and closes the stream. Errors are ignored:
    /// the client is leaving either way.
    pub async fn disconnect(mut self) {
        let packet = Packet::Disconnect(Disconnect {
            reason: ReasonCode::Success,
            properties: std::mem::take(&mut self.disconnect_props),
        });
        if self.conn.queue(&packet).is_ok() {
            let _ = self.conn.flush().await;
        }
        self.conn.shutdown().await;
    }
}

/// A message to deliver, stamped with the time it is delivered.
fn message(publish: Publish, topic: String) -> Event {
    Event::Message(Box::new(Received {
        publish,
        topic,
        time: Timestamp::now(),
    }))
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect(_) => "DISCONNECT",
        Packet::Auth(_) => "AUTH",
    }
}
