//! A minimal MQTT client connection over TCP, built on midge-proto: CONNECT
//! and SUBSCRIBE handshakes, then a read half that decodes packets out of a
//! `BytesMut` and a write half for batched writes.

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};
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

/// The CONNECT packet of a run's sessions, encoded once: every client of a
/// run sends the same CONNECT but for its client id, which is the last
/// field when there is no will, user name or password.
#[derive(Debug, Clone)]
pub struct ConnectTemplate {
    first: u8,
    /// Variable header and properties: everything between the remaining
    /// length and the client id.
    head: Vec<u8>,
}

impl ConnectTemplate {
    pub fn new(opts: ClientOptions) -> Result<ConnectTemplate, BenchError> {
        let mut properties = Properties::default();
        if opts.persistent && opts.protocol.is_v5() {
            properties.session_expiry_interval = Some(crate::config::PERSISTENT_EXPIRY);
        }
        let connect = Packet::Connect(Box::new(Connect {
            protocol: opts.protocol,
            clean_start: !opts.persistent,
            keep_alive: opts.keep_alive,
            client_id: ByteString::new(),
            will: None,
            username: None,
            password: None,
            properties,
        }));
        let mut buf = BytesMut::with_capacity(64);
        encode_into(&connect, opts.protocol, &mut buf, "CONNECT template")?;
        let bad = || BenchError::Protocol {
            who: "CONNECT template".into(),
            what: format!("unexpected encoding {:02x?}", &buf[..]),
        };
        let (len, used) = midge_proto::read_varint(&buf[1..]).map_err(|_| bad())?;
        let body = &buf[1 + used..];
        // The empty client id is the two length bytes at the very end.
        if body.len() != len as usize || !body.ends_with(&[0, 0]) {
            return Err(bad());
        }
        Ok(ConnectTemplate {
            first: buf[0],
            head: body[..body.len() - 2].to_vec(),
        })
    }

    /// Appends the CONNECT of `client_id` to `out`.
    pub fn encode(&self, client_id: &str, out: &mut BytesMut) -> Result<(), BenchError> {
        let id = client_id.as_bytes();
        let id_len = u16::try_from(id.len())
            .map_err(|_| BenchError::Options(format!("client id of {} bytes", id.len())))?;
        let remaining = self.head.len() + 2 + id.len();
        out.reserve(5 + remaining);
        out.put_u8(self.first);
        // At most 64 KiB + a few header bytes: far below the varint limit.
        midge_proto::write_varint(out, remaining as u32);
        out.extend_from_slice(&self.head);
        out.put_u16(id_len);
        out.extend_from_slice(id);
        Ok(())
    }
}

/// What a handshake leaves: the stream, whatever the broker sent after its
/// CONNACK, and the broker's Receive Maximum (5.0).
#[derive(Debug)]
pub struct Opened {
    pub stream: TcpStream,
    pub rest: BytesMut,
    pub receive_maximum: Option<u16>,
}

/// Opens TCP, writes `connect` (a whole CONNECT packet) and waits for a
/// successful CONNACK. `nodelay` turns Nagle off (needed when small
/// writes follow each other; a lone CONNECT is never delayed by it).
/// `first_read` sizes the read buffer. The caller bounds the time.
pub async fn handshake(
    addr: SocketAddr,
    who: &str,
    connect: &[u8],
    protocol: Protocol,
    nodelay: bool,
    first_read: usize,
) -> Result<Opened, BenchError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| BenchError::io(format!("{who}: connect to {addr}"), e))?;
    if nodelay {
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::io(format!("{who}: set TCP_NODELAY"), e))?;
    }
    stream
        .write_all(connect)
        .await
        .map_err(|e| BenchError::io(format!("{who}: write"), e))?;
    let mut buf = BytesMut::with_capacity(first_read);
    let refused = |what: String| BenchError::Protocol {
        who: who.to_owned(),
        what,
    };
    loop {
        match midge_proto::decode(&mut buf, protocol, MAX_PACKET) {
            Ok(Packet::ConnAck(ack)) if ack.reason == ReasonCode::Success => {
                return Ok(Opened {
                    stream,
                    rest: buf,
                    receive_maximum: ack.properties.receive_maximum,
                })
            }
            Ok(Packet::ConnAck(ack)) => {
                return Err(refused(format!("CONNACK refused: {:?}", ack.reason)))
            }
            Ok(other) => return Err(refused(format!("expected CONNACK, got {}", kind(&other)))),
            Err(midge_proto::Error::Incomplete(_)) => {}
            Err(source) => {
                return Err(BenchError::Codec {
                    who: who.to_owned(),
                    source,
                })
            }
        }
        if buf.capacity() - buf.len() < 64 {
            buf.reserve(buf.capacity().clamp(64, READ_CHUNK));
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| BenchError::io(format!("{who}: read"), e))?;
        if n == 0 {
            return Err(BenchError::Closed {
                who: who.to_owned(),
            });
        }
    }
}

impl Conn {
    /// Opens TCP, sends CONNECT (clean session unless `opts.persistent`) and waits for a successful
    /// CONNACK. The caller bounds the time.
    pub async fn connect(
        addr: SocketAddr,
        client_id: &str,
        opts: ClientOptions,
    ) -> Result<Conn, BenchError> {
        let mut connect = BytesMut::with_capacity(64);
        ConnectTemplate::new(opts)?.encode(client_id, &mut connect)?;
        // Latency is measured per message: Nagle would add up to 40 ms.
        let opened = handshake(addr, client_id, &connect, opts.protocol, true, FIRST_READ).await?;
        let (r, w) = opened.stream.into_split();
        Ok(Conn {
            reader: Reader {
                half: r,
                buf: opened.rest,
                protocol: opts.protocol,
                who: client_id.to_owned(),
            },
            writer: w,
            protocol: opts.protocol,
            receive_maximum: opened.receive_maximum,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's bytes are exactly what the codec writes for the same
    /// CONNECT, for every version, session kind and client id length
    /// (including ids long enough for a two-byte remaining length).
    #[test]
    fn connect_template_matches_the_codec() {
        for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
            for persistent in [false, true] {
                let opts = ClientOptions {
                    protocol,
                    keep_alive: 60,
                    persistent,
                };
                let template = ConnectTemplate::new(opts).unwrap();
                for id in ["", "c", "mb1a2b-c9999", &"x".repeat(300)] {
                    let mut ours = BytesMut::new();
                    template.encode(id, &mut ours).unwrap();
                    let mut properties = Properties::default();
                    if persistent && protocol.is_v5() {
                        properties.session_expiry_interval = Some(crate::config::PERSISTENT_EXPIRY);
                    }
                    let packet = Packet::Connect(Box::new(Connect {
                        protocol,
                        clean_start: !persistent,
                        keep_alive: 60,
                        client_id: ByteString::from(id),
                        will: None,
                        username: None,
                        password: None,
                        properties,
                    }));
                    let mut theirs = BytesMut::new();
                    midge_proto::encode(&packet, protocol, &mut theirs).unwrap();
                    assert_eq!(ours, theirs, "{protocol:?} {persistent} {id}");
                    let back = midge_proto::decode(&mut ours, protocol, MAX_PACKET).unwrap();
                    assert_eq!(back, packet);
                }
            }
        }
    }

    #[test]
    fn connect_template_refuses_huge_ids() {
        let opts = ClientOptions {
            protocol: Protocol::V3_1_1,
            keep_alive: 0,
            persistent: false,
        };
        let template = ConnectTemplate::new(opts).unwrap();
        let mut out = BytesMut::new();
        assert!(template.encode(&"x".repeat(70_000), &mut out).is_err());
        assert!(out.is_empty());
    }
}
