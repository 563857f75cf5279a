//! Test helpers: a broker on 127.0.0.1:0 with a tiny accept loop, and a raw
//! MQTT client built on midge-proto that sends exact packets (malformed ones
//! too) and checks exact answers. Every wait has a timeout.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use midge_broker::{Broker, BrokerConfig, ConnectionInfo, Event, Hooks, Transport};
use midge_proto::{
    decode, encode, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, PubResp, Publish,
    QoS, ReasonCode, SubAck, Subscribe, Subscription, SubscriptionOptions, Will,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestBroker {
    pub addr: SocketAddr,
    pub broker: Broker,
    pub shutdown: CancellationToken,
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(config: BrokerConfig) -> TestBroker {
    start_with(config, None).await
}

pub async fn start_with(config: BrokerConfig, hooks: Option<Arc<dyn Hooks>>) -> TestBroker {
    let broker = match hooks {
        Some(h) => Broker::with_hooks(config, h),
        None => Broker::new(config),
    };
    let (addr, shutdown) = serve(broker.clone()).await;
    TestBroker {
        addr,
        broker,
        shutdown,
    }
}

/// Serves `broker` (and runs its background tasks) on 127.0.0.1:0 until
/// the token is cancelled.
pub async fn serve(broker: Broker) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    broker.spawn_background(shutdown.clone());
    let token = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                r = listener.accept() => {
                    let Ok((stream, peer)) = r else { continue };
                    let _ = stream.set_nodelay(true);
                    let b = broker.clone();
                    tokio::spawn(async move {
                        b.handle_connection(stream, ConnectionInfo::new(Some(peer), "test", Transport::Tcp)).await;
                    });
                }
            }
        }
    });
    (addr, shutdown)
}

/// Polls `done` every 10 ms until it holds; fails the test after [`WAIT`]
/// with `what`.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first event `pick` turns into a value (others are passed over);
/// each event must come within [`WAIT`].
pub async fn next_event<T>(
    events: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    loop {
        let e = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("event timeout")
            .expect("event");
        if let Some(t) = pick(e) {
            return t;
        }
    }
}

/// A raw MQTT client speaking exact packets.
pub struct Raw {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub protocol: Protocol,
}

pub fn connect_packet(protocol: Protocol, client_id: &str, clean: bool) -> Connect {
    Connect {
        protocol,
        clean_start: clean,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

/// A 5.0 CONNECT without clean start whose session outlives the
/// connection by `expiry` seconds.
pub fn persistent_connect(client_id: &str, expiry: u32) -> Connect {
    let mut c = connect_packet(Protocol::V5, client_id, false);
    c.properties.session_expiry_interval = Some(expiry);
    c
}

pub fn will(topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::from_static(payload),
        qos,
        retain,
        properties: Properties::default(),
    }
}

impl Raw {
    pub async fn open(addr: SocketAddr, protocol: Protocol) -> Raw {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: BytesMut::new(),
            protocol,
        }
    }

    /// Opens and sends `c`, returning the CONNACK.
    pub async fn connect_with(addr: SocketAddr, c: Connect) -> (Raw, ConnAck) {
        let mut r = Raw::open(addr, c.protocol).await;
        r.send_connect(c).await;
        match r.recv().await {
            Some(Packet::ConnAck(a)) => (r, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects and asserts success.
    pub async fn connect(
        addr: SocketAddr,
        protocol: Protocol,
        id: &str,
        clean: bool,
    ) -> (Raw, ConnAck) {
        let (r, a) = Raw::connect_with(addr, connect_packet(protocol, id, clean)).await;
        assert_eq!(a.reason, ReasonCode::Success, "CONNACK {a:?}");
        (r, a)
    }

    /// Connects with clean start and holds one subscription (packet id 1).
    pub async fn subscriber(
        addr: SocketAddr,
        protocol: Protocol,
        id: &str,
        filter: &str,
        qos: QoS,
    ) -> Raw {
        let (mut r, _) = Raw::connect(addr, protocol, id, true).await;
        r.subscribe(1, filter, qos).await;
        r
    }

    pub async fn send(&mut self, p: &Packet) {
        let mut b = BytesMut::new();
        encode(p, self.protocol, &mut b).expect("encode");
        self.send_bytes(&b).await;
    }

    pub async fn send_connect(&mut self, c: Connect) {
        self.send(&Packet::Connect(Box::new(c))).await;
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(b))
            .await
            .expect("write timeout")
            .expect("write");
    }

    /// The next packet, or `None` if the connection closed. Panics after
    /// [`WAIT`].
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT)
            .await
            .expect("no packet within the timeout")
    }

    /// `Err(())` on timeout, `Ok(None)` on close.
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Option<Packet>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match decode(&mut self.buf, self.protocol, usize::MAX) {
                Ok(p) => return Ok(Some(p)),
                Err(midge_proto::Error::Incomplete(_)) => {}
                Err(e) => panic!("client could not decode: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn expect_nothing(&mut self, wait: Duration) {
        if let Ok(p) = self.recv_within(wait).await {
            panic!("expected nothing, got {p:?}");
        }
    }

    /// Asserts the broker closes the connection, returning what came first
    /// (e.g. a DISCONNECT).
    pub async fn expect_close(&mut self) -> Vec<Packet> {
        let mut got = Vec::new();
        loop {
            match self.recv().await {
                None => return got,
                Some(p) => got.push(p),
            }
        }
    }

    /// Asserts the broker sends a DISCONNECT with `reason`, nothing else,
    /// and closes the connection.
    pub async fn expect_disconnect(&mut self, reason: ReasonCode) {
        let got = self.expect_close().await;
        assert!(
            matches!(&got[..], [Packet::Disconnect(d)] if d.reason == reason),
            "expected DISCONNECT {reason:?}, then close: {got:?}"
        );
    }

    pub async fn subscribe(&mut self, pkid: u16, filter: &str, qos: QoS) -> SubAck {
        let opts = SubscriptionOptions {
            qos,
            ..Default::default()
        };
        self.subscribe_opts(pkid, &[(filter, opts)], Properties::default())
            .await
    }

    pub async fn subscribe_opts(
        &mut self,
        pkid: u16,
        filters: &[(&str, SubscriptionOptions)],
        properties: Properties,
    ) -> SubAck {
        let s = Subscribe {
            pkid,
            filters: filters
                .iter()
                .map(|(f, o)| Subscription {
                    filter: (*f).into(),
                    options: *o,
                })
                .collect(),
            properties,
        };
        self.send(&Packet::Subscribe(s)).await;
        match self.recv().await {
            Some(Packet::SubAck(a)) => {
                assert_eq!(a.pkid, pkid);
                a
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &'static [u8],
        qos: QoS,
        retain: bool,
        pkid: u16,
    ) {
        self.send(&Packet::Publish(publish(topic, payload, qos, retain, pkid)))
            .await;
    }

    /// The next PUBLISH (acks of our own publishes are skipped).
    pub async fn recv_publish(&mut self) -> Publish {
        loop {
            match self.recv().await {
                Some(Packet::Publish(p)) => return p,
                Some(Packet::PubAck(_)) | Some(Packet::PubComp(_)) => continue,
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }

    pub async fn puback(&mut self, pkid: u16) {
        self.send(&Packet::PubAck(PubResp::new(pkid))).await;
    }

    pub async fn disconnect(&mut self, reason: ReasonCode) {
        self.send(&Packet::Disconnect(Disconnect::new(reason)))
            .await;
    }

    /// A normal DISCONNECT, which the broker answers by closing the
    /// connection without a packet.
    pub async fn leave(&mut self) {
        self.disconnect(ReasonCode::Success).await;
        assert!(self.expect_close().await.is_empty());
    }
}

pub fn publish(topic: &str, payload: &'static [u8], qos: QoS, retain: bool, pkid: u16) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        pkid,
        payload: Bytes::from_static(payload),
        properties: Properties::default(),
    }
}
