//! The broker: shared state behind an `Arc` (sessions, subscription index,
//! retained store, timers, counters) and the public API the front doors
//! call. Routing lives in `routing.rs`, session lifecycle in `registry.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_proto::ReasonCode;
use midge_store::{Store, StoreError};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::event::{DropReason, Event};
use crate::hooks::{AllowAll, ConnectionInfo, Hooks};
use crate::index::Index;
use crate::kick::Kick;
use crate::message::Message;
use crate::persist::{DurabilityStats, Persist};
use crate::retained::Retained;
use crate::session::Session;
use crate::stats::{Counters, Stats};
use crate::timers::Timers;

/// Capacity of the event channel; slower receivers lose events.
const EVENT_CAPACITY: usize = 4096;

/// The MQTT broker core. Cheap to clone: every clone is the same broker.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Shared broker state. Locks are `parking_lot` and held only for short,
/// non-awaiting sections; they are never nested except registry ->
/// session (in that order).
pub(crate) struct Inner {
    pub config: BrokerConfig,
    pub hooks: Arc<dyn Hooks>,
    pub index: RwLock<Index<Arc<Session>>>,
    pub retained: RwLock<Retained>,
    /// Client id -> session, online or not.
    pub sessions: Mutex<HashMap<Arc<str>, Arc<Session>, ahash::RandomState>>,
    /// Live connections, to kick them (takeover, shutdown).
    pub conns: Mutex<HashMap<u64, Kick, ahash::RandomState>>,
    pub timers: Mutex<Timers>,
    /// Wakes the background task when a deadline earlier than the one it
    /// sleeps for may have been added.
    pub timers_changed: Notify,
    pub counters: Counters,
    pub events: broadcast::Sender<Event>,
    /// Whether per-message events (`MessagePublished`, `MessageDropped`)
    /// are sent: only once someone asked for them with `events()`, since
    /// at a million messages a second they cost more than the routing.
    message_events: AtomicBool,
    next_id: AtomicU64,
    pub started: Instant,
    pub closing: AtomicBool,
    /// Notified each time a connection task ends (shutdown waits on it).
    pub conn_done: Notify,
    /// Rate limit for the "queue full" warning: when it was last logged.
    drop_warn: Mutex<Option<Instant>>,
    /// "Queue full" drops since the warning was last logged.
    drops_unlogged: AtomicU64,
    /// Bounds concurrent `Hooks::authenticate` calls (see `auth.rs`).
    pub auth_permits: Arc<tokio::sync::Semaphore>,
    /// Messages queued or in flight over all sessions, kept by the session
    /// state locks (`session/lock.rs`).
    pub stored: Arc<AtomicUsize>,
    /// The durable store, if any (`persist/`).
    pub persist: Option<Persist>,
}

impl Broker {
    /// A broker that keeps everything in memory only.
    pub fn new(config: BrokerConfig) -> Broker {
        Broker::with_hooks(config, Arc::new(AllowAll))
    }

    /// A broker that keeps everything in memory only, with hooks.
    pub fn with_hooks(config: BrokerConfig, hooks: Arc<dyn Hooks>) -> Broker {
        Broker::build(config, hooks, None)
    }

    /// A durable broker: sessions, subscriptions, retained messages,
    /// queues, in-flight state and wills go to `store`, and what `store`
    /// holds is rebuilt now (see `docs/storage.md`). QoS 1/2 publishes that
    /// reach a persistent session (or are retained) are acknowledged once
    /// durable. Fails if the store cannot be read.
    pub fn with_store(
        config: BrokerConfig,
        hooks: Arc<dyn Hooks>,
        store: Arc<dyn Store>,
    ) -> Result<Broker, StoreError> {
        let recovered = store.load()?;
        let report = recovered.report;
        let broker = Broker::build(config, hooks, Some(Persist::new(store)));
        let restored = broker.inner.restore(recovered);
        tracing::info!(
            sessions = restored.sessions,
            queued = restored.queued,
            inflight = restored.inflight,
            retained = restored.retained,
            wills_sent = restored.wills_sent,
            dropped_over_queue_limit = restored.dropped,
            sessions_expired = report.sessions_expired,
            messages_expired = report.messages_expired,
            bad_rows = report.bad_rows,
            dangling_rows = report.dangling,
            "recovered from the store"
        );
        Ok(broker)
    }

    fn build(config: BrokerConfig, hooks: Arc<dyn Hooks>, persist: Option<Persist>) -> Broker {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let auth_permits = crate::auth::permits(config.max_concurrent_auth);
        Broker {
            inner: Arc::new(Inner {
                config,
                hooks,
                index: RwLock::new(Index::new()),
                retained: RwLock::new(Retained::new()),
                sessions: Mutex::new(HashMap::default()),
                conns: Mutex::new(HashMap::default()),
                timers: Mutex::new(Timers::new()),
                timers_changed: Notify::new(),
                counters: Counters::default(),
                events,
                next_id: AtomicU64::new(1),
                started: Instant::now(),
                closing: AtomicBool::new(false),
                conn_done: Notify::new(),
                drop_warn: Mutex::new(None),
                drops_unlogged: AtomicU64::new(0),
                message_events: AtomicBool::new(false),
                auth_permits,
                stored: Arc::default(),
                persist,
            }),
        }
    }

    /// The store's counters and what the broker refused because of it;
    /// `None` without a store.
    pub fn durability(&self) -> Option<DurabilityStats> {
        self.inner.persist.as_ref().map(Persist::stats)
    }

    /// Makes every store write durable and releases the store (its data
    /// directory), even while connection tasks still hold the broker. Call
    /// after `shutdown`; the broker must not serve afterwards.
    pub fn close_store(&self) {
        if let Some(p) = &self.inner.persist {
            p.store.shutdown();
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The authentication and authorization hooks the broker applies, so
    /// that front doors acting outside an MQTT session (the HTTP retained
    /// listing) decide as the broker would.
    pub fn hooks(&self) -> &Arc<dyn Hooks> {
        &self.inner.hooks
    }

    /// Runs one client connection to its end. Generic over the transport so
    /// that TCP, TLS and WebSocket share it.
    pub fn handle_connection<S>(
        &self,
        stream: S,
        info: ConnectionInfo,
    ) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        crate::connection::run(self.clone(), stream, Box::new(info), ())
    }

    /// [`Broker::handle_connection`], holding `guard` (a listener's
    /// admission permit, say) until the connection ends. Spawn the returned
    /// future as it is: wrapping it in an `async` block that also holds the
    /// guard would keep a second copy of its arguments in the task.
    pub fn handle_connection_with<S, G>(
        &self,
        stream: S,
        info: ConnectionInfo,
        guard: G,
    ) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        G: Send + 'static,
    {
        crate::connection::run(self.clone(), stream, Box::new(info), guard)
    }

    /// Spawns the timers (`$SYS`, will delay, session expiry, retained
    /// expiry); the task ends when `shutdown` is cancelled.
    pub fn spawn_background(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::background::run(self.clone(), shutdown))
    }

    /// Disconnects every client (5.0: DISCONNECT 0x8B Server shutting down)
    /// and waits until their tasks end, at most `deadline`. New connections
    /// are refused from now on.
    pub async fn shutdown(&self, deadline: Duration) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + deadline;
        // Every connection registered so far is kicked once: one registered
        // later sees `closing` and ends by itself. (Kicking all of them
        // again each time one ended was quadratic: seconds for 10,000.)
        let kicks: Vec<Kick> = self.inner.conns.lock().values().cloned().collect();
        for k in kicks {
            let _ = k.try_send(ReasonCode::ServerShuttingDown);
        }
        loop {
            // Register interest before looking, so that an end between the
            // look and the wait is not missed.
            let done = self.inner.conn_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.inner.conns.lock().is_empty()
                && self.inner.counters.connections.load(Ordering::SeqCst) == 0
            {
                return;
            }
            if tokio::time::timeout_at(until, done).await.is_err() {
                tracing::warn!(
                    remaining = self.inner.counters.connections.load(Ordering::SeqCst),
                    "shutdown deadline passed with connections still open"
                );
                return;
            }
        }
    }

    /// Subscribes to broker events, per-message ones (`MessagePublished`,
    /// `MessageDropped`) included: from the first call on, the broker sends
    /// one event per message routed and per message dropped. Lagging
    /// receivers lose events.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.message_events.store(true, Ordering::Relaxed);
        self.inner.events.subscribe()
    }

    /// Subscribes to broker events without asking for per-message events:
    /// clients connecting and disconnecting, subscriptions. (Per-message
    /// events still arrive if another subscriber asked for them with
    /// [`Broker::events`].) Message and drop counts are in [`Broker::stats`].
    pub fn lifecycle_events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.counters;
        // One lock, not one per session: the stored count is a gauge.
        let total = self.inner.sessions.lock().len();
        let stored = self.inner.stored.load(Relaxed);
        let connected = c.clients_connected.load(Relaxed);
        Stats {
            uptime: self.inner.started.elapsed(),
            clients_connected: connected,
            clients_disconnected: total.saturating_sub(connected),
            clients_total: total,
            clients_maximum: c.clients_maximum.load(Relaxed),
            connections: c.connections.load(Relaxed),
            connections_total: c.connections_total.load(Relaxed),
            messages_received: c.messages_received.load(Relaxed),
            messages_sent: c.messages_sent.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            publish_received: c.publish_received.load(Relaxed),
            publish_sent: c.publish_sent.load(Relaxed),
            publish_dropped: c.publish_dropped.load(Relaxed),
            dropped_by_reason: c.dropped_by_reason(),
            published_by_qos: c.published_by_qos().0,
            published_bytes_by_qos: c.published_by_qos().1,
            subscriptions: self.inner.index.read().len(),
            retained: self.inner.retained.read().len(),
            messages_stored: stored,
        }
    }

    /// Publishes from inside midge (HTTP API, rules, `$SYS`) through the
    /// same retain and routing path as an MQTT PUBLISH. No authorization is
    /// applied: the caller decides. A message to an invalid topic name
    /// (empty, wildcards) is dropped with a warning.
    pub fn publish(&self, msg: Message) {
        if let Err(e) = midge_proto::topic::validate_name(&msg.topic) {
            tracing::warn!(topic = &*msg.topic, error = %e, "internal publish to an invalid topic dropped");
            return;
        }
        let mut scratch = Vec::new();
        self.inner.dispatch(msg, &mut scratch);
    }
}

impl Inner {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Ids handed out from now on are above `id` (recovered sessions keep
    /// theirs).
    pub fn ids_above(&self, id: u64) {
        self.next_id
            .fetch_max(id.saturating_add(1), Ordering::Relaxed);
    }

    /// Sends an event if anybody listens (free otherwise).
    pub fn emit(&self, event: impl FnOnce() -> Event) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(event());
        }
    }

    /// Sends a per-message event if somebody asked for them (see
    /// [`Broker::events`]); one relaxed load otherwise.
    pub fn emit_message(&self, event: impl FnOnce() -> Event) {
        if self.message_events.load(Ordering::Relaxed) {
            self.emit(event);
        }
    }

    /// Counts `n` messages not delivered to `session` (broker-wide by
    /// reason and per session), with one event each if per-message events
    /// are on, and a rate-limited warning. Cheap: an overloaded broker
    /// drops hundreds of thousands of messages a second, so the clock and
    /// the warning's lock are looked at once per 1,024 drops at most.
    pub fn note_drops(&self, session: &Session, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        let client_id = &session.client_id;
        session.count_dropped(n);
        self.counters.count_dropped(reason, n);
        if self.message_events.load(Ordering::Relaxed) {
            for _ in 0..n {
                self.emit(|| Event::MessageDropped {
                    client_id: client_id.clone(),
                    reason,
                });
            }
        }
        if reason == DropReason::QueueFull {
            let before = self.drops_unlogged.fetch_add(n, Ordering::Relaxed);
            // The first drop since the last warning, or another 1,024.
            if before != 0 && (before + n) / 1024 == before / 1024 {
                return;
            }
            let mut last = self.drop_warn.lock();
            let now = Instant::now();
            let due = match *last {
                None => true,
                Some(t) => now.duration_since(t) >= Duration::from_secs(10),
            };
            if due {
                let dropped = self.drops_unlogged.swap(0, Ordering::Relaxed);
                tracing::warn!(
                    client_id = &**client_id,
                    dropped,
                    "session queue full: messages dropped (max_queued_messages)"
                );
                *last = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::testing::{attach, delivery};
    use midge_proto::{Protocol, QoS};

    #[test]
    fn stats_does_not_wait_for_a_busy_session() {
        let b = Broker::new(BrokerConfig::default());
        let s = Arc::new(Session::with_gauge(
            1,
            Arc::from("c"),
            Protocol::V5,
            10,
            b.inner.stored.clone(),
        ));
        b.inner.sessions.lock().insert(Arc::from("c"), s.clone());
        attach(&s, 1);
        assert_eq!(s.deliver(delivery(QoS::AtLeastOnce)), Ok(()));
        let busy = s.state.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let b2 = b.clone();
        std::thread::spawn(move || {
            let _ = tx.send(b2.stats());
        });
        let stats = rx.recv_timeout(Duration::from_secs(5));
        drop(busy);
        let stats = stats.expect("stats() must not lock sessions");
        assert_eq!((stats.messages_stored, stats.clients_total), (1, 1));
    }
}
