//! [`InternalClient`]: an in-process MQTT 5.0 session over
//! `tokio::io::duplex`, driven by the broker exactly like a network client
//! (`Transport::Internal`). The HTTP publish API, SSE, long polling and
//! Socket.IO all act through one, so authentication hooks, the ACL, retained
//! messages, queue limits and counters apply to them as to MQTT clients.
//!
//! One actor task owns the stream: it encodes commands, matches
//! acknowledgements to waiters by packet id, acknowledges incoming QoS 1/2
//! messages and hands them to the [`Inbox`]. When the inbox is full the
//! actor stops reading, so the broker's bounded session queue (and its drop
//! policy and counters) takes the overflow, as for a slow MQTT client.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use midge_broker::{Broker, ConnectionInfo, Transport};
use midge_proto::{
    decode, encode, Connect, Disconnect, Packet, Properties, Protocol, PubResp, Publish, QoS,
    ReasonCode, RetainHandling, Subscribe, Subscription, SubscriptionOptions, Unsubscribe,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};

/// Bytes buffered in each direction of the in-process pipe.
const PIPE_BYTES: usize = 256 * 1024;
/// How long the broker may take to answer CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any acknowledgement may take (the broker answers at once; this
/// only bounds a broker that is shutting down).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest packet accepted from the broker (it is bounded by its own
/// max_packet_size when it accepted the message).
const MAX_IN: usize = midge_proto::MAX_REMAINING_LENGTH + 5;

/// Why an internal session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the broker refused the session: {0:?}")]
    Refused(ReasonCode),
    #[error("the broker closed the session")]
    Closed,
    #[error("the broker did not answer in time")]
    Timeout,
    #[error("cannot encode packet: {0}")]
    Encode(midge_proto::Error),
}

/// Who the session connects as.
#[derive(Debug, Clone)]
pub struct Login {
    pub client_id: String,
    pub username: Option<String>,
    /// `None` for users the HTTP layer authenticated itself (tokens): the
    /// auth hooks trust internal sessions without a password.
    pub password: Option<Bytes>,
    /// The HTTP client's address: logs, and the failed-login back-off.
    pub remote_addr: Option<SocketAddr>,
    /// The HTTP listener's name.
    pub listener: Arc<str>,
    /// Messages the inbox holds before the actor stops reading.
    pub inbox: usize,
}

/// A message the session received.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Properties,
}

enum Command {
    Publish(
        Box<Publish>,
        oneshot::Sender<Result<ReasonCode, SessionError>>,
    ),
    Subscribe(
        Vec<Subscription>,
        oneshot::Sender<Result<Vec<ReasonCode>, SessionError>>,
    ),
    Unsubscribe(
        Vec<String>,
        oneshot::Sender<Result<Vec<ReasonCode>, SessionError>>,
    ),
    Ping(oneshot::Sender<Result<(), SessionError>>),
}

/// The receiving side of a session: messages in arrival order.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Incoming>,
}

impl Inbox {
    /// The next message; `None` once the session has ended.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }

    /// A message if one is waiting.
    pub fn try_next(&mut self) -> Option<Incoming> {
        self.rx.try_recv().ok()
    }
}

/// The sending side of a session; cheap to share behind an `Arc`. Dropping
/// it (and every clone of its command channel) ends the session with a
/// DISCONNECT.
#[derive(Debug)]
pub struct InternalClient {
    cmd: mpsc::Sender<Command>,
    client_id: Arc<str>,
    username: Option<String>,
    max_qos: QoS,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Publish(..) => "Publish",
            Command::Subscribe(..) => "Subscribe",
            Command::Unsubscribe(..) => "Unsubscribe",
            Command::Ping(..) => "Ping",
        })
    }
}

impl InternalClient {
    /// Opens a clean MQTT 5.0 session (expiry 0) as `login`.
    pub async fn connect(
        broker: &Broker,
        login: Login,
    ) -> Result<(InternalClient, Inbox), SessionError> {
        let (mine, theirs) = tokio::io::duplex(PIPE_BYTES);
        let info = ConnectionInfo {
            remote_addr: login.remote_addr,
            listener: login.listener.clone(),
            transport: Transport::Internal,
            tls_identity: None,
        };
        let b = broker.clone();
        tokio::spawn(async move { b.handle_connection(theirs, info).await });
        let mut io = Io {
            stream: mine,
            rbuf: BytesMut::with_capacity(8 * 1024),
        };
        let properties = Properties {
            // The broker's own max_inflight bounds the window; ours is open.
            receive_maximum: Some(u16::MAX),
            ..Properties::default()
        };
        let connect = Packet::Connect(Box::new(Connect {
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: 0,
            client_id: login.client_id.as_str().into(),
            will: None,
            username: login.username.as_deref().map(Into::into),
            password: login.password.clone(),
            properties,
        }));
        io.write(&connect).await?;
        let ack = tokio::time::timeout(CONNECT_TIMEOUT, io.read())
            .await
            .map_err(|_| SessionError::Timeout)??;
        let Packet::ConnAck(ack) = ack else {
            return Err(SessionError::Closed);
        };
        if ack.reason.is_error() {
            return Err(SessionError::Refused(ack.reason));
        }
        let max_qos = ack
            .properties
            .maximum_qos
            .and_then(QoS::from_u8)
            .unwrap_or(QoS::ExactlyOnce);
        let ping_every = ack
            .properties
            .server_keep_alive
            .filter(|s| *s > 0)
            .map(|s| Duration::from_millis(u64::from(s) * 500));
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (in_tx, in_rx) = mpsc::channel(login.inbox.max(1));
        let actor = Actor {
            io,
            inbox: in_tx,
            next_pkid: 1,
            pending: HashMap::new(),
            pings: VecDeque::new(),
            qos2_in: HashSet::new(),
        };
        tokio::spawn(actor.run(cmd_rx, ping_every));
        Ok((
            InternalClient {
                cmd: cmd_tx,
                client_id: Arc::from(login.client_id),
                username: login.username,
                max_qos,
            },
            Inbox { rx: in_rx },
        ))
    }

    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The highest QoS the broker grants.
    pub fn max_qos(&self) -> QoS {
        self.max_qos
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.cmd.is_closed()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, SessionError>>) -> Command,
    ) -> Result<T, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(make(tx))
            .await
            .map_err(|_| SessionError::Closed)?;
        match tokio::time::timeout(ACK_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(SessionError::Closed),
            Err(_) => Err(SessionError::Timeout),
        }
    }

    /// Publishes and waits for the broker's answer: the PUBACK/PUBREC
    /// reason for QoS 1/2 (0x87 when the ACL refuses), `Success` once
    /// written for QoS 0.
    pub async fn publish(&self, p: Publish) -> Result<ReasonCode, SessionError> {
        self.call(|tx| Command::Publish(Box::new(p), tx)).await
    }

    /// Subscribes to `filters` at `qos`; retained messages are sent when
    /// `retained`. Returns the SUBACK reasons, one per filter.
    pub async fn subscribe(
        &self,
        filters: &[String],
        qos: QoS,
        retained: bool,
    ) -> Result<Vec<ReasonCode>, SessionError> {
        let subs = filters
            .iter()
            .map(|f| Subscription {
                filter: f.as_str().into(),
                options: SubscriptionOptions {
                    qos: qos.min(self.max_qos),
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: if retained {
                        RetainHandling::SendAtSubscribe
                    } else {
                        RetainHandling::DoNotSend
                    },
                },
            })
            .collect();
        self.call(|tx| Command::Subscribe(subs, tx)).await
    }

    /// Unsubscribes; returns the UNSUBACK reasons.
    pub async fn unsubscribe(&self, filters: &[String]) -> Result<Vec<ReasonCode>, SessionError> {
        self.call(|tx| Command::Unsubscribe(filters.to_vec(), tx))
            .await
    }

    /// PINGREQ, and waits for PINGRESP: everything the broker wrote before
    /// it has been read by then.
    pub async fn ping(&self) -> Result<(), SessionError> {
        self.call(Command::Ping).await
    }
}

/// The stream with its read buffer.
struct Io {
    stream: DuplexStream,
    rbuf: BytesMut,
}

impl Io {
    async fn write(&mut self, p: &Packet) -> Result<(), SessionError> {
        let mut buf = BytesMut::new();
        encode(p, Protocol::V5, &mut buf).map_err(SessionError::Encode)?;
        self.stream
            .write_all(&buf)
            .await
            .map_err(|_| SessionError::Closed)
    }

    /// Reads one whole packet. Cancel-safe: bytes read stay in `rbuf`.
    async fn read(&mut self) -> Result<Packet, SessionError> {
        loop {
            match decode(&mut self.rbuf, Protocol::V5, MAX_IN) {
                Ok(p) => return Ok(p),
                Err(midge_proto::Error::Incomplete(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "internal session: undecodable packet from the broker");
                    return Err(SessionError::Closed);
                }
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return Err(SessionError::Closed),
                Ok(_) => {}
            }
        }
    }
}

enum Waiter {
    Pub(oneshot::Sender<Result<ReasonCode, SessionError>>),
    /// QoS 2 after PUBREC: waiting for PUBCOMP, with PUBREC's reason.
    PubComp(oneshot::Sender<Result<ReasonCode, SessionError>>),
    Sub(oneshot::Sender<Result<Vec<ReasonCode>, SessionError>>),
}

struct Actor {
    io: Io,
    inbox: mpsc::Sender<Incoming>,
    next_pkid: u16,
    pending: HashMap<u16, Waiter>,
    pings: VecDeque<oneshot::Sender<Result<(), SessionError>>>,
    /// QoS 2 packet ids received and not yet released (duplicates are not
    /// delivered twice).
    qos2_in: HashSet<u16>,
}

impl Actor {
    fn pkid(&mut self) -> u16 {
        // 65,535 ids and at most a few hundred in flight: the next free one
        // is always near.
        loop {
            let id = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Command>, ping_every: Option<Duration>) {
        let mut ticker = ping_every.map(tokio::time::interval);
        loop {
            let step = tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.command(c).await,
                    None => {
                        // Every handle dropped: leave politely.
                        let _ = self.io.write(&Packet::Disconnect(Disconnect::new(ReasonCode::Success))).await;
                        let _ = self.io.stream.shutdown().await;
                        break;
                    }
                },
                p = self.io.read() => match p {
                    Ok(p) => self.packet(p).await,
                    Err(e) => Err(e),
                },
                _ = tick(&mut ticker) => self.io.write(&Packet::PingReq).await,
            };
            if step.is_err() {
                break;
            }
        }
        // Whoever still waits learns that the session is gone.
        for (_, w) in self.pending.drain() {
            match w {
                Waiter::Pub(tx) | Waiter::PubComp(tx) => {
                    let _ = tx.send(Err(SessionError::Closed));
                }
                Waiter::Sub(tx) => {
                    let _ = tx.send(Err(SessionError::Closed));
                }
            }
        }
        for tx in self.pings.drain(..) {
            let _ = tx.send(Err(SessionError::Closed));
        }
    }

    async fn command(&mut self, c: Command) -> Result<(), SessionError> {
        match c {
            Command::Publish(mut p, tx) => {
                if p.qos == QoS::AtMostOnce {
                    p.pkid = 0;
                    return match self.io.write(&Packet::Publish(*p)).await {
                        Ok(()) => {
                            let _ = tx.send(Ok(ReasonCode::Success));
                            Ok(())
                        }
                        Err(e) => fail(tx, e),
                    };
                }
                p.pkid = self.pkid();
                let id = p.pkid;
                match self.io.write(&Packet::Publish(*p)).await {
                    Ok(()) => {
                        self.pending.insert(id, Waiter::Pub(tx));
                        Ok(())
                    }
                    Err(e) => fail(tx, e),
                }
            }
            Command::Subscribe(filters, tx) => {
                let id = self.pkid();
                let p = Packet::Subscribe(Subscribe {
                    pkid: id,
                    filters,
                    properties: Properties::default(),
                });
                self.send_tracked(id, p, Waiter::Sub(tx)).await
            }
            Command::Unsubscribe(filters, tx) => {
                let id = self.pkid();
                let p = Packet::Unsubscribe(Unsubscribe {
                    pkid: id,
                    filters: filters.iter().map(|f| f.as_str().into()).collect(),
                    properties: Properties::default(),
                });
                self.send_tracked(id, p, Waiter::Sub(tx)).await
            }
            Command::Ping(tx) => {
                self.io.write(&Packet::PingReq).await?;
                self.pings.push_back(tx);
                Ok(())
            }
        }
    }

    async fn send_tracked(&mut self, id: u16, p: Packet, w: Waiter) -> Result<(), SessionError> {
        match self.io.write(&p).await {
            Ok(()) => {
                self.pending.insert(id, w);
                Ok(())
            }
            Err(e) => match w {
                Waiter::Sub(tx) => fail(tx, e),
                Waiter::Pub(tx) | Waiter::PubComp(tx) => fail(tx, e),
            },
        }
    }

    async fn packet(&mut self, p: Packet) -> Result<(), SessionError> {
        match p {
            Packet::Publish(p) => {
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => {
                        self.io.write(&Packet::PubAck(PubResp::new(p.pkid))).await?;
                    }
                    QoS::ExactlyOnce => {
                        self.io.write(&Packet::PubRec(PubResp::new(p.pkid))).await?;
                        if !self.qos2_in.insert(p.pkid) {
                            return Ok(());
                        }
                    }
                }
                let msg = Incoming {
                    topic: p.topic.to_string(),
                    payload: p.payload,
                    qos: p.qos,
                    retain: p.retain,
                    properties: p.properties,
                };
                // Waits while the inbox is full: the broker queues meanwhile.
                // A dropped inbox (publish-only sessions) just discards.
                let _ = self.inbox.send(msg).await;
                Ok(())
            }
            Packet::PubRel(r) => {
                self.qos2_in.remove(&r.pkid);
                self.io.write(&Packet::PubComp(PubResp::new(r.pkid))).await
            }
            Packet::PubAck(r) => {
                if let Some(Waiter::Pub(tx)) = self.pending.remove(&r.pkid) {
                    let _ = tx.send(Ok(r.reason));
                }
                Ok(())
            }
            Packet::PubRec(r) => {
                match self.pending.remove(&r.pkid) {
                    Some(Waiter::Pub(tx)) if r.reason.is_error() => {
                        let _ = tx.send(Ok(r.reason));
                    }
                    Some(Waiter::Pub(tx)) => {
                        self.pending.insert(r.pkid, Waiter::PubComp(tx));
                        self.io.write(&Packet::PubRel(PubResp::new(r.pkid))).await?;
                    }
                    Some(other) => {
                        self.pending.insert(r.pkid, other);
                    }
                    None => {}
                }
                Ok(())
            }
            Packet::PubComp(r) => {
                if let Some(Waiter::PubComp(tx)) = self.pending.remove(&r.pkid) {
                    let _ = tx.send(Ok(ReasonCode::Success));
                }
                Ok(())
            }
            Packet::SubAck(a) => {
                if let Some(Waiter::Sub(tx)) = self.pending.remove(&a.pkid) {
                    let _ = tx.send(Ok(a.reasons));
                }
                Ok(())
            }
            Packet::UnsubAck(a) => {
                if let Some(Waiter::Sub(tx)) = self.pending.remove(&a.pkid) {
                    let _ = tx.send(Ok(a.reasons));
                }
                Ok(())
            }
            Packet::PingResp => {
                if let Some(tx) = self.pings.pop_front() {
                    let _ = tx.send(Ok(()));
                }
                Ok(())
            }
            Packet::Disconnect(d) => {
                tracing::debug!(reason = ?d.reason, "internal session disconnected by the broker");
                Err(SessionError::Closed)
            }
            _ => Ok(()),
        }
    }
}

/// Gives a failed write's error to its waiter. An encode error (say, a
/// field over 65,535 bytes) is the caller's and leaves the stream usable;
/// a closed stream ends the actor.
fn fail<T>(
    tx: oneshot::Sender<Result<T, SessionError>>,
    e: SessionError,
) -> Result<(), SessionError> {
    let fatal = matches!(e, SessionError::Closed);
    let _ = tx.send(Err(e));
    if fatal {
        Err(SessionError::Closed)
    } else {
        Ok(())
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
