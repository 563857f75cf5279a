//! End-to-end authentication and authorization: a real midge on 127.0.0.1
//! with a password file and an ACL, driven by a raw MQTT client built on
//! midge-proto so that CONNACK and SUBACK codes are seen byte for byte.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use midge_proto::{
    decode, encode, ByteString, Bytes, BytesMut, Connect, Packet, Properties, Protocol, Publish,
    QoS, ReasonCode, Subscribe, Subscription, SubscriptionOptions,
};
use midge_server::auth::passwd_edit::hash_password_with;
use midge_server::auth::{AuthConfig, RateLimitConfig};
use midge_server::{Config, ListenerConfig, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// `mosquitto_passwd` ($7$, 101 iterations) for the password "pass".
const BOB_PASS: &str = "$7$101$XEV+rvAUUHNAyDOa$j231QZbdOipR9piMxbPrBZhiWQAbCBNuy/ZigzaigZXuGt2d4Y3aWBuNHo9/1i94jBuhsGL2mj2i9ZJv/H7F1w==";

const ACL: &str = "\
user alice
topic read #
topic deny secret/#
user bob
topic write #
pattern readwrite clients/%c/#
";

struct Broker {
    server: Server,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Broker {
    async fn start(max_failures: u32) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let cheap = argon2_cheap();
        let alice = hash_password_with(b"alice-pw", cheap).expect("hash");
        write(
            dir.path(),
            "passwd",
            &format!("# test users\nalice:{alice}\nbob:{BOB_PASS}\n"),
        );
        write(dir.path(), "acl", ACL);
        let auth = AuthConfig {
            password_file: Some(dir.path().join("passwd")),
            acl_file: Some(dir.path().join("acl")),
            rate_limit: RateLimitConfig {
                max_failures,
                ..RateLimitConfig::default()
            },
            ..AuthConfig::default()
        };
        let config = Config {
            data_dir: dir.path().join("data"),
            listeners: vec![ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 0)))],
            auth,
            ..Config::default()
        };
        let server = Server::start(&config).await.expect("server starts");
        let addr = server.listeners()[0].local_addr;
        Broker { server, addr, dir }
    }

    async fn stop(self) {
        self.server.shutdown(Duration::from_secs(5)).await;
    }
}

/// Cheap argon2 costs: the tests are about the broker, not the hash.
fn argon2_cheap() -> argon2::Params {
    argon2::Params::new(64, 1, 1, None).expect("argon2 params")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write file");
}

/// A raw MQTT client: one TCP stream, one read buffer.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    protocol: Protocol,
}

impl Client {
    async fn open(addr: SocketAddr, protocol: Protocol) -> Client {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("tcp connect");
        Client {
            stream,
            buf: BytesMut::new(),
            protocol,
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, self.protocol, &mut out).expect("encode");
        self.stream.write_all(&out).await.expect("write");
    }

    /// The next packet, or `None` if the broker closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            match decode(&mut self.buf, self.protocol, 1 << 20) {
                Ok(p) => return Some(p),
                Err(midge_proto::Error::Incomplete(_)) => {}
                Err(e) => panic!("undecodable packet from midge: {e:?}"),
            }
            let n = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("no packet from midge in time")
                .expect("read");
            if n == 0 {
                return None;
            }
        }
    }

    async fn connect(&mut self, client_id: &str, user: Option<&str>, password: Option<&str>) {
        let connect = Connect {
            protocol: self.protocol,
            clean_start: true,
            keep_alive: 30,
            client_id: ByteString::from(client_id),
            will: None,
            username: user.map(ByteString::from),
            password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
            properties: Properties::default(),
        };
        self.send(Packet::Connect(Box::new(connect))).await;
    }

    async fn subscribe(&mut self, pkid: u16, filter: &str) -> ReasonCode {
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        };
        self.send(Packet::Subscribe(Subscribe {
            pkid,
            filters: vec![Subscription {
                filter: ByteString::from(filter),
                options,
            }],
            properties: Properties::default(),
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) if ack.pkid == pkid && ack.reasons.len() == 1 => {
                ack.reasons[0]
            }
            other => panic!("expected SUBACK {pkid}, got {other:?}"),
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK, so that the message has
    /// been routed (or refused) before this returns.
    async fn publish(&mut self, pkid: u16, topic: &str, payload: &str) {
        self.send(Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: ByteString::from(topic),
            pkid,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            properties: Properties::default(),
        }))
        .await;
        match self.recv().await {
            Some(Packet::PubAck(ack)) if ack.pkid == pkid => {}
            other => panic!("expected PUBACK {pkid}, got {other:?}"),
        }
    }

    /// The next PUBLISH's topic; PUBACKs it owes are sent.
    async fn next_topic(&mut self) -> String {
        match self.recv().await {
            Some(Packet::Publish(p)) => {
                if p.qos != QoS::AtMostOnce {
                    self.send(Packet::PubAck(midge_proto::PubResp::new(p.pkid)))
                        .await;
                }
                p.topic.to_string()
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// CONNECT with MQTT 3.1.1; the raw CONNACK return code (byte 4).
async fn connack_v311(addr: SocketAddr, user: Option<&str>, password: Option<&str>) -> u8 {
    let mut c = Client::open(addr, Protocol::V3_1_1).await;
    c.connect("probe", user, password).await;
    let mut raw = [0u8; 4];
    tokio::time::timeout(WAIT, c.stream.read_exact(&mut raw))
        .await
        .expect("CONNACK in time")
        .expect("read CONNACK");
    assert_eq!(&raw[..2], &[0x20, 0x02], "a 3.1.1 CONNACK");
    raw[3]
}

/// CONNECT with MQTT 5.0; the CONNACK reason code.
async fn connack_v5(addr: SocketAddr, user: Option<&str>, password: Option<&str>) -> ReasonCode {
    let mut c = Client::open(addr, Protocol::V5).await;
    c.connect("probe5", user, password).await;
    match c.recv().await {
        Some(Packet::ConnAck(ack)) => ack.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

async fn logged_in(addr: SocketAddr, client_id: &str, user: &str, password: &str) -> Client {
    let mut c = Client::open(addr, Protocol::V3_1_1).await;
    c.connect(client_id, Some(user), Some(password)).await;
    match c.recv().await {
        Some(Packet::ConnAck(ack)) if ack.reason == ReasonCode::Success => c,
        other => panic!("{user} should be let in, got {other:?}"),
    }
}

#[tokio::test]
async fn connack_codes_for_3_1_1_and_5_0() {
    let b = Broker::start(100).await;
    assert_eq!(
        connack_v311(b.addr, Some("alice"), Some("alice-pw")).await,
        0
    );
    assert_eq!(
        connack_v311(b.addr, Some("bob"), Some("pass")).await,
        0,
        "a mosquitto_passwd hash"
    );
    assert_eq!(connack_v311(b.addr, Some("alice"), Some("wrong")).await, 4);
    assert_eq!(
        connack_v311(b.addr, Some("mallory"), Some("alice-pw")).await,
        4
    );
    assert_eq!(
        connack_v311(b.addr, None, None).await,
        5,
        "anonymous is off with a password file"
    );
    assert_eq!(
        connack_v5(b.addr, Some("alice"), Some("alice-pw")).await,
        ReasonCode::Success
    );
    assert_eq!(
        connack_v5(b.addr, Some("alice"), Some("wrong")).await,
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        connack_v5(b.addr, None, None).await,
        ReasonCode::NotAuthorized
    );
    b.stop().await;
}

#[tokio::test]
async fn acl_filters_subscriptions_publishes_and_deliveries() {
    let b = Broker::start(100).await;
    let mut alice = logged_in(b.addr, "alice-1", "alice", "alice-pw").await;
    let mut bob = logged_in(b.addr, "bob-1", "bob", "pass").await;

    // alice may read everything but secret/#; bob may only write.
    assert_eq!(alice.subscribe(1, "#").await, ReasonCode::GrantedQoS1);
    assert_eq!(
        alice.subscribe(2, "secret/#").await,
        ReasonCode::UnspecifiedError,
        "3.1.1 failure 0x80"
    );
    assert_eq!(
        bob.subscribe(1, "news/#").await,
        ReasonCode::UnspecifiedError
    );

    // Through `#`, the secret topic is held back and the next one arrives.
    bob.publish(10, "secret/plans", "s").await;
    bob.publish(11, "news/today", "n").await;
    assert_eq!(alice.next_topic().await, "news/today");

    // alice cannot write outside her pattern; inside it she can (and, being
    // subscribed to `#`, receives her own message first of the two).
    alice.publish(20, "news/fake", "x").await;
    alice.publish(21, "clients/alice-1/status", "up").await;
    assert_eq!(alice.next_topic().await, "clients/alice-1/status");
    b.stop().await;
}

#[tokio::test]
async fn reload_applies_new_files_to_new_connections() {
    let b = Broker::start(100).await;
    let carol = hash_password_with(b"carol-pw", argon2_cheap()).expect("hash");
    write(b.dir.path(), "passwd", &format!("carol:{carol}\n"));
    write(b.dir.path(), "acl", "user carol\ntopic readwrite carol/#\n");
    b.server.reload();
    assert_eq!(
        connack_v311(b.addr, Some("carol"), Some("carol-pw")).await,
        0
    );
    assert_eq!(
        connack_v311(b.addr, Some("alice"), Some("alice-pw")).await,
        4
    );
    let mut c = logged_in(b.addr, "carol-1", "carol", "carol-pw").await;
    assert_eq!(c.subscribe(1, "carol/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(
        c.subscribe(2, "other/#").await,
        ReasonCode::UnspecifiedError
    );

    // A broken file is refused and the running ones stay.
    write(b.dir.path(), "acl", "user carol\ntopic sideways x\n");
    b.server.reload();
    assert_eq!(
        connack_v311(b.addr, Some("carol"), Some("carol-pw")).await,
        0
    );
    b.stop().await;
}

#[tokio::test]
async fn failed_logins_put_the_address_in_back_off() {
    let b = Broker::start(3).await;
    for _ in 0..3 {
        assert_eq!(connack_v311(b.addr, Some("alice"), Some("guess")).await, 4);
    }
    // Now even the right password is refused: 3.1.1 "server unavailable",
    // 5.0 "connection rate exceeded".
    assert_eq!(
        connack_v311(b.addr, Some("alice"), Some("alice-pw")).await,
        3
    );
    assert_eq!(
        connack_v5(b.addr, Some("alice"), Some("alice-pw")).await,
        ReasonCode::ConnectionRateExceeded
    );
    b.stop().await;
}
