//! One connected client's protocol handling after CONNECT: every packet it
//! sends, and the messages its session has queued for it. Writes packets
//! into the connection's write buffer; never touches the socket.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use midge_proto::{encode, Connect, Disconnect, Packet, Protocol, PubResp, ReasonCode};
use midge_store::Batch;

use crate::alias::{OutboundAliases, TopicAliases};
use crate::broker::Broker;
use crate::hooks::ClientRef;
use crate::keepalive::KeepAlive;
use crate::persist::{Action, Deferred};
use crate::ratelimit::{PublishLimiter, PublishRateAction};
use crate::session::Session;
use crate::stats::Tally;

mod deliver;
mod publish;
mod subscribe;

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

    /// A 3.x packet the store refused: 3.x acknowledgements cannot say no,
    /// so the connection closes without one (the client sends again); the
    /// will goes, no DISCONNECT (3.x has none to send).
    pub fn refused_v3(reason: ReasonCode) -> Exit {
        Exit {
            reason,
            will: true,
            notify: false,
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
    /// Aliases this broker binds for topics it sends (5.0, when the client
    /// gave a Topic Alias Maximum).
    out_aliases: OutboundAliases,
    /// Outbound in-flight window: min(max_inflight, client's Receive Maximum).
    quota: usize,
    /// The client's Maximum Packet Size.
    max_out: usize,
    /// Session Expiry Interval given at CONNECT (DISCONNECT may not raise
    /// it from 0).
    connect_expiry: u32,
    /// Publish rate limits, when configured.
    // Boxed: most clients have no rate limit, and the client lives in the
    // connection task's state for the connection's whole life.
    limiter: Option<Box<PublishLimiter>>,
    pub tally: Tally,
    /// Acknowledgements waiting for store commits (`persist/acks.rs`).
    pub(crate) deferred: Deferred,
    /// Store writes of this connection not yet submitted
    /// (`persist/client.rs`).
    pub(crate) store_ops: Batch,
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
        let out_aliases = OutboundAliases::new(if v5 {
            c.properties.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        });
        let limiter = PublishLimiter::new(cfg, now).map(Box::new);
        Client {
            broker,
            session,
            conn_id,
            protocol: c.protocol,
            client_id,
            username,
            keepalive: KeepAlive::new(keep_alive, now),
            aliases,
            out_aliases,
            quota,
            max_out,
            connect_expiry: expiry,
            limiter,
            tally: Tally::default(),
            deferred: Deferred::default(),
            store_ops: Batch::new(),
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

    /// Applies the publish rate limits to a packet about to be handled:
    /// `Ok(None)` to handle it now, `Ok(Some(t))` to hold it (and stop
    /// reading) until `t`, or the exit for the `Disconnect` action.
    pub fn admit(&mut self, packet: &Packet, now: Instant) -> Result<Option<Instant>, Exit> {
        let (Some(limiter), Packet::Publish(p)) = (&mut self.limiter, packet) else {
            return Ok(None);
        };
        match limiter.admit(p.payload.len(), now) {
            Ok(()) => Ok(None),
            Err(at) => match self.broker.config().publish_rate_action {
                PublishRateAction::Throttle => Ok(Some(at)),
                PublishRateAction::Disconnect => {
                    tracing::debug!(client_id = &*self.client_id, "publish rate exceeded");
                    Err(Exit::error(ReasonCode::MessageRateTooHigh))
                }
            },
        }
    }

    /// A PUBACK (the connection decodes the common 4-byte form itself).
    pub fn on_puback(&mut self, pkid: u16, now: Instant) {
        self.keepalive.touch(now);
        self.tally.messages_received += 1;
        self.puback_stored(pkid);
    }

    /// Handles one packet from the client.
    pub fn handle(&mut self, packet: Packet, now: Instant, out: &mut BytesMut) -> Result<(), Exit> {
        self.keepalive.touch(now);
        self.tally.messages_received += 1;
        match packet {
            Packet::Publish(p) => self.on_publish(p, out),
            Packet::PubAck(p) => {
                self.puback_stored(p.pkid);
                Ok(())
            }
            Packet::PubRec(p) => {
                let (send_rel, commit) = self.pubrec_stored(p.pkid, p.reason.is_error());
                if send_rel {
                    // A stored session's PUBREL state is durable first: a
                    // PUBLISH sent again after a crash would be a new
                    // message to a client that completed the exchange.
                    let rel = Packet::PubRel(PubResp::new(p.pkid));
                    self.after_commit(commit, Action::Release(rel), out)
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
                self.pubcomp_stored(p.pkid);
                Ok(())
            }
            Packet::PubRel(p) => {
                let (known, commit) = self.pubrel_stored(p.pkid);
                let mut r = PubResp::new(p.pkid);
                if !known && self.v5() {
                    r.reason = ReasonCode::PacketIdentifierNotFound;
                }
                // A stored id is forgotten durably before PUBCOMP: the
                // client may reuse it for a new message right after.
                self.after_commit(commit, Action::Release(Packet::PubComp(r)), out)
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
    /// The DISCONNECT to send for a server-side exit (5.0 only).
    pub fn disconnect_packet(&self, exit: &Exit) -> Option<Packet> {
        (self.v5() && exit.notify).then(|| Packet::Disconnect(Disconnect::new(exit.reason)))
    }
}
