//! The web front doors on the HTTP port: the publish and retained-message
//! API, Server-Sent Events, long polling, the Socket.IO gateway, the
//! management API, Prometheus metrics, webhooks and the OpenAPI
//! description (see `docs/http.md`).
//!
//! Every door acts through an in-process MQTT session ([`session`]) as the
//! user the request authenticated as, so messages are routed, authorized,
//! retained and counted exactly as an MQTT client's.

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod feed;
pub mod message;
pub mod metrics;
pub mod openapi;
pub mod poll;
pub mod pool;
pub mod query;
pub mod session;
pub mod socketio;
pub mod sse;
pub mod views;
pub mod webhook;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use midge_broker::{Broker, Hooks};
use midge_proto::QoS;
use rand::RngCore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::HttpConfig;

use crate::http::HttpState;
use feed::FeedHub;
use message::PublishLimits;
use pool::Pool;
use webhook::Webhook;

/// Client ids of internal sessions start with this (ACL `%c` patterns can
/// match them; the management API marks them `internal`).
pub const INTERNAL_PREFIX: &str = "midge-web-";

/// A fresh random id (128 bits, hex).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A client id for an internal session of `kind` (sse, poll, sio, pub).
pub fn client_id(kind: &str) -> String {
    format!("{INTERNAL_PREFIX}{kind}-{}", &random_id()[..16])
}

/// Counters of the web layer itself.
#[derive(Debug, Default)]
pub struct WebCounters {
    pub http_publish: AtomicU64,
    pub http_publish_denied: AtomicU64,
    pub sse_connections: AtomicUsize,
    pub sse_connections_total: AtomicU64,
    pub poll_requests: AtomicU64,
    pub socketio_connections: AtomicUsize,
    pub socketio_connections_total: AtomicU64,
    pub socketio_emit_dropped: AtomicU64,
    /// Broker events the webhooks' event task missed by lagging.
    pub events_lagged: AtomicU64,
}

/// Shared state of the web doors: one per server, shared by every HTTP
/// listener.
pub struct WebInner {
    pub broker: Broker,
    pub config: HttpConfig,
    pub limits: PublishLimits,
    /// The broker's auth hooks: a QoS 0 publish is checked before it is
    /// sent (the broker drops a refused QoS 0 PUBLISH silently), and the
    /// retained listing applies them to each topic.
    pub hooks: Arc<dyn Hooks>,
    pub pool: Pool,
    pub feeds: FeedHub,
    pub webhooks: Vec<Webhook>,
    pub counters: WebCounters,
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for WebInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebInner")
            .field("feeds", &self.feeds.len())
            .field("pool", &self.pool)
            .field("webhooks", &self.webhooks.len())
            .finish_non_exhaustive()
    }
}

/// Handle on the web state.
#[derive(Debug, Clone)]
pub struct Web(pub Arc<WebInner>);

impl std::ops::Deref for Web {
    type Target = WebInner;
    fn deref(&self) -> &WebInner {
        &self.0
    }
}

impl Web {
    /// Builds the state and starts its background tasks (webhooks and their
    /// event feed, the reaper of idle feeds and sessions), which end with
    /// `shutdown`. Call before clients connect, so webhooks see them.
    /// `hooks`, if given, must be the broker's; `None` takes them from the
    /// broker ([`Broker::hooks`]).
    pub fn start(
        broker: Broker,
        config: &crate::Config,
        hooks: Option<Arc<dyn Hooks>>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Web {
        let http = config.http.clone();
        let b = broker.config();
        let limits = PublishLimits {
            // The payload alone first (a clear message); the whole encoded
            // PUBLISH is checked against max_packet_size before sending.
            max_payload: b.max_packet_size as usize,
            max_topic_levels: b.max_topic_levels,
            maximum_qos: b.maximum_qos,
            retain_available: b.retain_available,
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("midge/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let webhooks = http
            .webhooks
            .iter()
            .map(|w| Webhook::start(w.clone(), client.clone(), shutdown.child_token()))
            .collect();
        let web = Web(Arc::new(WebInner {
            feeds: FeedHub::new(
                http.stream_buffer,
                Duration::from_secs(http.stream_idle_secs),
                http.max_streams,
            ),
            pool: Pool::new(broker.clone()),
            webhooks,
            counters: WebCounters::default(),
            limits,
            hooks: hooks.unwrap_or_else(|| broker.hooks().clone()),
            config: http,
            broker,
            shutdown: shutdown.clone(),
        }));
        // Only webhooks listen to broker events: the management API and
        // `/metrics` read the broker's snapshots and counters. Without a
        // webhook the broker has no receiver and builds no event at all;
        // per-message events (one per message routed or dropped, which at
        // high rates cost more than the routing) are asked for only when a
        // webhook forwards them.
        if !web.webhooks.is_empty() {
            let events = if web.webhooks.iter().any(Webhook::wants_message_events) {
                web.broker.events()
            } else {
                web.broker.lifecycle_events()
            };
            tracker.spawn(run_events(web.clone(), events, shutdown.clone()));
        }
        tracker.spawn(run_reaper(web.clone(), shutdown));
        web
    }

    /// The highest QoS to subscribe internal sessions with.
    pub fn max_qos(&self) -> QoS {
        self.limits.maximum_qos
    }
}

/// Feeds the webhooks from the broker's events.
async fn run_events(
    web: Web,
    mut events: tokio::sync::broadcast::Receiver<midge_broker::Event>,
    shutdown: CancellationToken,
) {
    loop {
        let e = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.recv() => e,
        };
        match e {
            Ok(e) => {
                for h in &web.webhooks {
                    h.offer(&e);
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "webhooks lagged behind broker events");
                web.counters
                    .events_lagged
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Closes idle feeds and pooled sessions.
async fn run_reaper(web: Web, shutdown: CancellationToken) {
    let every = (web.feeds.idle() / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                web.feeds.close_all();
                return;
            }
            _ = tick.tick() => {
                web.feeds.reap();
                web.pool.reap();
            }
        }
    }
}

/// The web routes, merged into the HTTP port's router.
pub fn routes(state: &HttpState) -> Router<HttpState> {
    let body_limit = axum::extract::DefaultBodyLimit::max(state.web.config.max_body_bytes);
    Router::new()
        .route("/api/v1/publish", post(api::publish))
        .route("/api/v1/retained", get(api::retained))
        .route("/api/v1/stream", get(sse::stream))
        .route("/api/v1/poll", get(poll::poll).delete(poll::close))
        .route("/api/v1/clients", get(admin::clients))
        .route(
            "/api/v1/clients/{id}",
            get(admin::client).delete(admin::kick),
        )
        .route("/api/v1/subscriptions", get(admin::subscriptions))
        .route("/api/v1/stats", get(admin::stats))
        .route("/api/v1/openapi.json", get(openapi::spec))
        .route("/metrics", get(metrics::metrics))
        .layer(body_limit)
}
