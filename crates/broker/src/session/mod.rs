//! A session: the state MQTT keeps for a client id across network
//! connections (subscriptions, queued and in-flight messages, inbound QoS 2
//! ids, expiry). It lives in the broker's registry, independent of any
//! connection task, so an offline session keeps receiving. The state is
//! plain data behind one short lock, ready to be persisted by a store.

pub mod inbound;
pub mod lock;
pub mod outbound;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytestring::ByteString;
use midge_proto::{Protocol, QoS, SubscriptionOptions};
use parking_lot::RwLock;

use crate::event::DropReason;
use crate::hooks::Transport;
pub use crate::kick::Kick;
use crate::message::Message;
pub use inbound::{Inbound, Qos2Publish};
pub use lock::{StateGuard, StateLock};
pub use outbound::{Delivery, Outbound, Outgoing, Push};

/// Hashes with one random seed per process. Topic filters come from
/// clients, so the seed must be unknown to them; it need not differ per
/// map, and a per-map `ahash::RandomState` is 32 bytes of every session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededHasher;

impl std::hash::BuildHasher for SeededHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static SEED: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
        SEED.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

/// One subscription as the session remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

/// The connection currently attached to a session.
#[derive(Debug, Clone)]
pub struct Owner {
    pub conn_id: u64,
    /// Wakes the connection task when messages are queued (and kicks it).
    pub waker: Kick,
}

/// Where the session's latest connection came from and what it asked for,
/// for the management API. Kept while the session is offline.
#[derive(Debug, Clone)]
pub struct Peer {
    pub remote_addr: Option<SocketAddr>,
    pub listener: Arc<str>,
    pub transport: Transport,
    pub clean_start: bool,
    /// Keep alive in force (after the server's cap), seconds.
    pub keep_alive: u16,
    pub connected_at: SystemTime,
}

/// The will of the attached connection.
#[derive(Debug, Clone)]
pub struct WillState {
    pub msg: Message,
    /// Will Delay Interval, seconds.
    pub delay: u32,
}

/// The session's data.
#[derive(Debug)]
pub struct SessionState {
    pub protocol: Protocol,
    pub outbound: Outbound,
    pub inbound: Inbound,
    pub subscriptions: HashMap<ByteString, Subscribed, SeededHasher>,
    /// Session Expiry Interval in seconds (u32::MAX = never).
    pub expiry_interval: u32,
    pub owner: Option<Owner>,
    /// Boxed: a will is some 500 bytes and most sessions have none; the
    /// state of every session stays in memory.
    pub will: Option<Box<WillState>>,
    /// When an offline session expires (None while online or never).
    pub expires_at: Option<std::time::Instant>,
    /// Set once the session is over; late deliveries are ignored.
    pub ended: bool,
    /// The latest connection's facts (None before the first attach).
    pub peer: Option<Peer>,
}

/// A session shared by the registry, the subscription index and its
/// connection.
#[derive(Debug)]
pub struct Session {
    /// Unique for the broker's lifetime: a new session for the same client id
    /// gets a new id.
    pub id: u64,
    pub client_id: Arc<str>,
    /// `state.lock()` gives the data; releasing it counts stored messages.
    pub state: StateLock,
    online: AtomicBool,
    // Read on every delivery by authorize_deliver, written on connect.
    username: RwLock<Option<Arc<str>>>,
    /// Messages not delivered to this session (any `DropReason` counted by
    /// the broker); a statistic, so outside the state lock.
    dropped: AtomicU64,
    /// Whether the durable store holds this session (persistent: expiry
    /// interval above 0, and the broker has a store). Read without the
    /// state lock on the publish path.
    persisted: AtomicBool,
}

impl Session {
    /// A session whose stored messages are counted in a gauge of its own.
    pub fn new(id: u64, client_id: Arc<str>, protocol: Protocol, max_queued: usize) -> Self {
        Self::with_gauge(id, client_id, protocol, max_queued, Arc::default())
    }

    /// A session whose stored messages (queued plus in flight) are counted
    /// in `gauge`, shared by all sessions of a broker.
    pub fn with_gauge(
        id: u64,
        client_id: Arc<str>,
        protocol: Protocol,
        max_queued: usize,
        gauge: Arc<AtomicUsize>,
    ) -> Self {
        Session {
            id,
            client_id,
            state: StateLock::new(
                SessionState {
                    protocol,
                    outbound: Outbound::new(max_queued),
                    inbound: Inbound::new(),
                    subscriptions: HashMap::default(),
                    expiry_interval: 0,
                    owner: None,
                    will: None,
                    expires_at: None,
                    ended: false,
                    peer: None,
                },
                gauge,
            ),
            online: AtomicBool::new(false),
            username: RwLock::new(None),
            dropped: AtomicU64::new(0),
            persisted: AtomicBool::new(false),
        }
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    /// Whether the durable store holds this session.
    pub fn is_persisted(&self) -> bool {
        self.persisted.load(Ordering::Relaxed)
    }

    /// Marks the session stored (or not); returns what it was.
    pub(crate) fn set_persisted(&self, persisted: bool) -> bool {
        self.persisted.swap(persisted, Ordering::Relaxed)
    }

    /// Messages dropped for this session so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn username(&self) -> Option<Arc<str>> {
        self.username.read().clone()
    }

    pub fn set_username(&self, username: Option<Arc<str>>) {
        *self.username.write() = username;
    }

    /// Queues a message for this session and wakes its connection. Never
    /// blocks on the consumer: a full queue drops (QoS 0 first), an offline
    /// session does not keep QoS 0.
    pub fn deliver(&self, d: Delivery) -> Result<(), DropReason> {
        let mut st = self.state.lock();
        if st.ended {
            return Ok(());
        }
        if st.owner.is_none() && d.qos == QoS::AtMostOnce {
            return Err(DropReason::Offline);
        }
        // The connection is woken when its queue stops being empty: it
        // drains the whole queue (or as much as its in-flight window takes,
        // and acknowledgements wake it for the rest), so one wake-up per
        // batch is enough, and no stale permit wakes it for nothing later.
        let was_empty = st.outbound.queued() == 0;
        let pushed = st.outbound.push(d);
        if was_empty {
            if let Some(o) = &st.owner {
                o.waker.notify_one();
            }
        }
        match pushed {
            Push::Queued => Ok(()),
            Push::DroppedNew | Push::DroppedQos0 => Err(DropReason::QueueFull),
        }
    }
}

/// Builders for the tests of the session and of the code around it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use bytes::Bytes;

    /// A one-byte message on `t`, as a subscriber's queue holds it.
    pub fn delivery(qos: QoS) -> Delivery {
        Delivery {
            msg: Arc::new(Message::new("t", Bytes::from_static(b"x"), qos, false)),
            qos,
            retain: false,
            sub_ids: Vec::new(),
            share: None,
        }
    }

    /// Puts `s` online, owned by connection `conn_id`; returns the kick
    /// that connection would wait on.
    pub fn attach(s: &Session, conn_id: u64) -> Kick {
        let waker = Kick::new();
        s.state.lock().owner = Some(Owner {
            conn_id,
            waker: waker.clone(),
        });
        waker
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{attach, delivery};
    use super::*;

    #[test]
    fn offline_keeps_only_qos1_and_2() {
        let s = Session::new(1, Arc::from("c"), Protocol::V5, 10);
        assert_eq!(
            s.deliver(delivery(QoS::AtMostOnce)),
            Err(DropReason::Offline)
        );
        assert_eq!(s.deliver(delivery(QoS::AtLeastOnce)), Ok(()));
        assert_eq!(s.state.lock().outbound.queued(), 1);
    }

    #[test]
    fn one_wake_up_per_batch() {
        let s = Session::new(1, Arc::from("c"), Protocol::V5, 10);
        let waker = attach(&s, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(rt) = rt else { panic!("runtime") };
        let wait = std::time::Duration::from_millis(50);
        rt.block_on(async {
            // Three messages come while the connection is busy.
            for _ in 0..3 {
                assert_eq!(s.deliver(delivery(QoS::AtMostOnce)), Ok(()));
            }
            assert!(tokio::time::timeout(wait, waker.woken()).await.is_ok());
            // It drains all three at once: no permit was left for another
            // wake-up with nothing to do.
            assert!(tokio::time::timeout(wait, waker.woken()).await.is_err());
            // Drained: the next message wakes again.
            s.state.lock().outbound = Outbound::new(10);
            assert_eq!(s.deliver(delivery(QoS::AtMostOnce)), Ok(()));
            assert!(tokio::time::timeout(wait, waker.woken()).await.is_ok());
        });
    }

    #[test]
    fn online_delivery_wakes_owner() {
        let s = Session::new(1, Arc::from("c"), Protocol::V5, 1);
        let waker = attach(&s, 1);
        assert_eq!(s.deliver(delivery(QoS::AtMostOnce)), Ok(()));
        assert_eq!(
            s.deliver(delivery(QoS::AtMostOnce)),
            Err(DropReason::QueueFull)
        );
        // A permit was stored: notified() completes at once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let Ok(rt) = rt else { panic!("runtime") };
        rt.block_on(async {
            let woke = tokio::time::timeout(std::time::Duration::from_secs(1), waker.woken()).await;
            assert!(woke.is_ok());
        });
    }
}
