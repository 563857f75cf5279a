//! midge-broker: the MQTT broker core. Sessions, QoS 1/2 state machines,
//! packet ids, keep alive, wills, retained messages, the subscription index
//! (with `+`, `#` and `$share/`), takeover and limits. Drives any
//! `AsyncRead + AsyncWrite`; opens no sockets itself.
//!
//! Layout: pure, clock-free state (`index`, `retained`, `session`,
//! `keepalive`, `alias`, `timers`, `ratelimit`) is unit-tested without I/O; `client`
//! handles one client's packets; `connection` owns the socket and buffers;
//! `broker`, `routing` and `registry` hold the shared state.

mod admin;
mod alias;
mod auth;
mod background;
mod broker;
mod buffers;
mod client;
mod config;
mod connect;
mod connection;
mod event;
mod hooks;
pub mod index;
mod keepalive;
mod kick;
mod message;
mod outgoing;
mod persist;
mod ratelimit;
mod registry;
pub mod retained;
mod routing;
pub mod session;
mod stats;
mod sys;
mod timers;

pub use admin::{ClientInfo, SubscriptionInfo};
pub use broker::Broker;
pub use config::{BrokerConfig, PublishRateAction};
pub use event::{DropReason, Event};
pub use hooks::{AllowAll, AuthDecision, AuthRequest, ClientRef, ConnectionInfo, Hooks, Transport};
pub use message::Message;
pub use persist::DurabilityStats;
pub use stats::{DroppedByReason, Stats};
pub use tokio_util::sync::CancellationToken;
