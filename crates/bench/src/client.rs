//! A minimal MQTT client connection over TCP, built on midge-proto: CONNECT
//! and SUBSCRIBE handshakes, then a read half that decodes packets out of a
//! `BytesMut` and a write half for batched writes.

use std::net::SocketAddr;

use bytes::BytesMut;
use midge_proto::{
    ByteString, Connect, Packet, Properties, Protocol, QoS, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::error::BenchError;

/// Largest packet accepted from the broker: far above any bench payload,
/// low enough that a corrupt length cannot make us buffer gigabytes.
pub const MAX_PACKET: usize = 64 * 1024 * 1024;
/// Largest read buffer growth step; one read takes up to this much.
const READ_CHUNK: usize = 64 * 1024;
/// First read buffer: small, so that thousands of idle connections cost
/// little; busy ones grow to [`READ_CHUNK`] steps.
const FIRST_READ: usize = 4 * 1024;

/// Session options shared by the clients of a run.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    pub protocol: Protocol,
    /// Keep alive in seconds; 0 disables it (the broker then never expects
    /// a PINGREQ, which suits clients that run for a bounded time).
    pub keep_alive: u16,
    /// Keep the session after the connection (clean start off; 5.0 with a
    /// Session Expiry Interval of [`crate::config::PERSISTENT_EXPIRY`]).
    pub persistent: bool,
}

/// The reading side of a connection: socket half plus its buffer.
#[derive(Debug)]
pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    protocol: Protocol,
    who: String,
}

impl Reader {
    /// Decodes one packet already in the buffer, if a whole one is there.
    pub fn try_decode(&mut self) -> Result<Option<Packet>, BenchError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        match midge_proto::decode(&mut self.buf, self.protocol, MAX_PACKET) {
            Ok(p) => Ok(Some(p)),
            Err(midge_proto::Error::Incomplete(_)) => Ok(None),
            Err(source) => Err(BenchError::Codec {
                who: self.who.clone(),
                source,
            }),
        }
    }

    /// Reads more bytes from the socket; errors with `Closed` at end of stream.
    pub async fn fill(&mut self) -> Result<usize, BenchError> {
        let spare = self.buf.capacity() - self.buf.len();
        if spare < FIRST_READ {
            let step = (self.buf.capacity() * 2).clamp(FIRST_READ, READ_CHUNK);
            self.buf.reserve(step);
        }
        let n = self
            .half
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| BenchError::io(format!("{}: read", self.who), e))?;
        if n == 0 {
            return Err(BenchError::Closed {
                who: self.who.clone(),
            });
        }
        Ok(n)
    }

    /// Waits for the next whole packet.
    pub async fn next(&mut self) -> Result<Packet, BenchError> {
        loop {
            if let Some(p) = self.try_decode()? {
                return Ok(p);
            }
            self.fill().await?;
        }
    }

    pub fn who(&self) -> &str {
        &self.who
    }
}

/// A connected, accepted MQTT session.
#[derive(Debug)]
pub struct Conn {
    pub reader: Reader,
    pub writer: OwnedWriteHalf,
    pub protocol: Protocol,
    /// The broker's Receive Maximum (5.0 CONNACK): how many QoS 1/2
    /// publishes it accepts unacknowledged. `None` before 5.0 or when absent.
    pub receive_maximum: Option<u16>,
}

impl Conn {
    /// Opens TCP, sends CONNECT (clean session unless `opts.persistent`) and waits for a successful
    /// CONNACK. The caller bounds the time.
    pub async fn connect(
        addr: SocketAddr,
        client_id: &str,
        opts: ClientOptions,
    ) -> Result<Conn, BenchError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| BenchError::io(format!("{client_id}: connect to {addr}"), e))?;
        // Latency is measured per message: Nagle would add up to 40 ms.
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::io(format!("{client_id}: set TCP_NODELAY"), e))?;
        let (r, w) = stream.into_split();
        let mut conn = Conn {
            reader: Reader {
                half: r,
                buf: BytesMut::with_capacity(FIRST_READ),
                protocol: opts.protocol,
                who: client_id.to_owned(),
            },
            writer: w,
            protocol: opts.protocol,
            receive_maximum: None,
        };
        let mut properties = Properties::default();
        if opts.persistent && opts.protocol.is_v5() {
            properties.session_expiry_interval = Some(crate::config::PERSISTENT_EXPIRY);
        }
        let connect = Packet::Connect(Box::new(Connect {
            protocol: opts.protocol,
            clean_start: !opts.persistent,
            keep_alive: opts.keep_alive,
            client_id: ByteString::from(client_id),
            will: None,
            username: None,
            password: None,
            properties,
        }));
        conn.send(&connect).await?;
        match conn.reader.next().await? {
            Packet::ConnAck(ack) if ack.reason == ReasonCode::Success => {
                conn.receive_maximum = ack.properties.receive_maximum;
                Ok(conn)
            }
            Packet::ConnAck(ack) => Err(conn.refused(format!("CONNACK refused: {:?}", ack.reason))),
            other => Err(conn.refused(format!("expected CONNACK, got {}", kind(&other)))),
        }
    }

    /// Subscribes to one filter and waits for a granting SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), BenchError> {
        let sub = Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![Subscription {
                filter: ByteString::from(filter),
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
            properties: Properties::default(),
        });
        self.send(&sub).await?;
        loop {
            match self.reader.next().await? {
                Packet::SubAck(ack) if ack.pkid == 1 => {
                    return match ack.reasons.first() {
                        Some(r) if (*r as u8) < 0x80 => Ok(()),
                        Some(r) => Err(self.refused(format!("SUBACK refused {filter}: {r:?}"))),
                        None => Err(self.refused("SUBACK without a reason code".into())),
                    };
                }
                // A retained message could arrive before the SUBACK only if
                // the broker reorders; anything else here is ignored.
                _ => continue,
            }
        }
    }

    /// Encodes and writes one packet.
    pub async fn send(&mut self, packet: &Packet) -> Result<(), BenchError> {
        let mut buf = BytesMut::with_capacity(64);
        encode_into(packet, self.protocol, &mut buf, &self.reader.who)?;
        self.writer
            .write_all(&buf)
            .await
            .map_err(|e| BenchError::io(format!("{}: write", self.reader.who), e))
    }

    fn refused(&self, what: String) -> BenchError {
        BenchError::Protocol {
            who: self.reader.who.clone(),
            what,
        }
    }
}

/// Appends one packet to a batch buffer.
pub fn encode_into(
    packet: &Packet,
    protocol: Protocol,
    buf: &mut BytesMut,
    who: &str,
) -> Result<(), BenchError> {
    midge_proto::encode(packet, protocol, buf).map_err(|source| BenchError::Codec {
        who: who.to_owned(),
        source,
    })
}

/// A short name of a packet kind, for error messages.
pub fn kind(p: &Packet) -> &'static str {
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
