//! The authentication hook runs off the runtime's worker threads: a hook
//! that blocks does not stall other clients, concurrent checks are bounded,
//! and a hook that does not answer within the connect timeout refuses the
//! client with 0x89 Server busy. Tests run on a current-thread runtime, so a
//! hook run on the connection's task would stall the whole broker.

mod common;

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use midge_broker::{AuthDecision, AuthRequest, BrokerConfig, Hooks};
use midge_proto::{Packet, Protocol, QoS, ReasonCode};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Blocks the thread for user "slow" until the test releases it (or WAIT
/// passes); reports when it starts.
struct Gate {
    started: mpsc::UnboundedSender<String>,
    release: Mutex<std_mpsc::Receiver<()>>,
}

impl Hooks for Gate {
    fn authenticate(&self, req: &AuthRequest<'_>) -> AuthDecision {
        if req.username == Some("slow") {
            let _ = self.started.send(req.client_id.to_owned());
            let _ = self.release.lock().recv_timeout(WAIT);
        }
        AuthDecision::Allow {
            username: req.username.map(str::to_owned),
        }
    }
}

struct Fixture {
    b: TestBroker,
    started: mpsc::UnboundedReceiver<String>,
    release: std_mpsc::Sender<()>,
}

async fn fixture(config: BrokerConfig) -> Fixture {
    let (started_tx, started) = mpsc::unbounded_channel();
    let (release, release_rx) = std_mpsc::channel();
    let hooks = Gate {
        started: started_tx,
        release: Mutex::new(release_rx),
    };
    let b = start_with(config, Some(Arc::new(hooks))).await;
    Fixture {
        b,
        started,
        release,
    }
}

/// Sends a CONNECT as user "slow" and waits until its hook is running.
async fn slow_login(f: &mut Fixture, id: &str) -> Raw {
    let mut c = connect_packet(Protocol::V5, id, true);
    c.username = Some("slow".into());
    let mut r = Raw::open(f.b.addr, Protocol::V5).await;
    r.send_connect(c).await;
    let started = tokio::time::timeout(WAIT, f.started.recv())
        .await
        .expect("hook started");
    assert_eq!(started.as_deref(), Some(id));
    r
}

async fn expect_connack(r: &mut Raw) -> ReasonCode {
    match r.recv().await {
        Some(Packet::ConnAck(a)) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn blocking_hook_does_not_stall_other_clients() {
    let mut f = fixture(BrokerConfig {
        max_concurrent_auth: 2,
        ..BrokerConfig::default()
    })
    .await;
    let mut slow = slow_login(&mut f, "slow-1").await;
    // The hook above blocks a thread; the (only) runtime thread still serves
    // a whole connect / subscribe / publish round trip.
    let mut other = Raw::subscriber(f.b.addr, Protocol::V5, "other", "t", QoS::AtMostOnce).await;
    other.publish("t", b"x", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&other.recv_publish().await.payload[..], b"x");
    slow.expect_nothing(Duration::from_millis(50)).await;
    f.release.send(()).expect("release");
    assert_eq!(expect_connack(&mut slow).await, ReasonCode::Success);
}

#[tokio::test]
async fn concurrent_checks_are_bounded_and_timeout_refuses_busy() {
    let mut f = fixture(BrokerConfig {
        max_concurrent_auth: 1,
        connect_timeout: Duration::from_millis(400),
        ..BrokerConfig::default()
    })
    .await;
    let mut slow = slow_login(&mut f, "slow-1").await;
    // The only slot is taken: this login waits for it past the connect
    // timeout and is refused, although its own check would be instant.
    let (_, ack) = Raw::connect_with(f.b.addr, connect_packet(Protocol::V5, "waiting", true)).await;
    assert_eq!(ack.reason, ReasonCode::ServerBusy);
    // The slow one timed out too (its hook is still blocked).
    assert_eq!(expect_connack(&mut slow).await, ReasonCode::ServerBusy);
    f.release.send(()).expect("release");
    // Once the hook returns, its slot is free again.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, ack) =
            Raw::connect_with(f.b.addr, connect_packet(Protocol::V3_1_1, "later", true)).await;
        if ack.reason == ReasonCode::Success {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_running_hook() {
    let mut f = fixture(BrokerConfig::default()).await;
    let mut slow = slow_login(&mut f, "slow-sd").await;
    tokio::time::timeout(
        Duration::from_secs(2),
        f.b.broker.shutdown(Duration::from_secs(3)),
    )
    .await
    .expect("shutdown returns while the hook still blocks");
    assert!(slow.expect_close().await.is_empty());
    f.release.send(()).expect("release");
}
