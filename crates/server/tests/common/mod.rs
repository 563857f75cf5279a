//! Helpers for the server's end-to-end tests: start a real `Server` on
//! loopback port 0, and speak raw MQTT (midge-proto) over any byte stream.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use midge_broker::Event;
use midge_proto::{
    decode, encode, Bytes, BytesMut, Connect, Packet, Properties, Protocol, Publish, QoS,
    Subscribe, Subscription, SubscriptionOptions,
};
use midge_server::{Config, ListenerConfig, ListenerKind, Server};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::{error::RecvError, Receiver};

pub const WAIT: Duration = Duration::from_secs(5);

/// A config with the given listeners (port 0) and a temporary data dir.
pub fn config(listeners: Vec<ListenerConfig>, data_dir: &std::path::Path) -> Config {
    Config {
        listeners,
        data_dir: data_dir.to_owned(),
        ..Config::default()
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn start(config: &Config) -> Server {
    tokio::time::timeout(WAIT, Server::start(config))
        .await
        .expect("start in time")
        .expect("server starts")
}

pub fn addr_of(server: &Server, kind: ListenerKind) -> SocketAddr {
    server
        .listeners()
        .iter()
        .find(|l| l.kind == kind)
        .expect("listener bound")
        .local_addr
}

/// A clean-start CONNECT with no will and no login, for tests to adjust.
pub fn connect(client_id: &str, protocol: Protocol) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 30,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

pub fn connect_packet(client_id: &str, protocol: Protocol) -> Packet {
    Packet::Connect(Box::new(connect(client_id, protocol)))
}

pub fn connect_with_login(
    client_id: &str,
    protocol: Protocol,
    user: &str,
    password: &str,
) -> Packet {
    Packet::Connect(Box::new(Connect {
        username: Some(user.into()),
        password: Some(Bytes::copy_from_slice(password.as_bytes())),
        ..connect(client_id, protocol)
    }))
}

pub fn subscribe_packet(pkid: u16, filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid,
        filters: vec![Subscription {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }],
        properties: Properties::default(),
    })
}

pub fn publish_packet(topic: &str, payload: &[u8], qos: QoS, pkid: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        pkid,
        payload: Bytes::copy_from_slice(payload),
        properties: Properties::default(),
    })
}

/// Asserts `got` is a PUBLISH of `payload` to `topic`.
#[track_caller]
pub fn assert_publish(got: Option<Packet>, topic: &str, payload: &[u8]) {
    match got {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.topic, topic);
            assert_eq!(&p.payload[..], payload);
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// The first broker event that `pick` turns into a value, within `WAIT`
/// (events it returns `None` for are passed over).
pub async fn wait_event<T>(
    events: &mut Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let found = async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(e) {
                        return t;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("event channel closed waiting for {what}"),
            }
        }
    };
    tokio::time::timeout(WAIT, found)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

pub fn bytes_of(packet: &Packet, protocol: Protocol) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf).expect("encodes");
    buf
}

/// A raw MQTT connection over any stream.
pub struct Raw<S> {
    pub stream: S,
    pub buf: BytesMut,
    pub protocol: Protocol,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    pub fn new(stream: S, protocol: Protocol) -> Self {
        Raw {
            stream,
            buf: BytesMut::new(),
            protocol,
        }
    }

    pub async fn send(&mut self, packet: &Packet) {
        let bytes = bytes_of(packet, self.protocol);
        self.stream.write_all(&bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// The next packet, or None when the peer closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, async {
            loop {
                match decode(&mut self.buf, self.protocol, 1 << 24) {
                    Ok(p) => return Some(p),
                    Err(midge_proto::Error::Incomplete(_)) => {}
                    Err(e) => panic!("bad packet from server: {e}"),
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("a packet or close within the wait")
    }

    /// CONNECT and the CONNACK's reason.
    pub async fn handshake(&mut self, connect: &Packet) -> midge_proto::ReasonCode {
        self.send(connect).await;
        match self.recv().await {
            Some(Packet::ConnAck(ack)) => ack.reason,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}
