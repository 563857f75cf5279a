//! Broker limits and switches, with the defaults the server's config file
//! documents. Plain data: the server crate fills it from TOML and flags.

use std::time::Duration;

use midge_proto::QoS;

pub use crate::ratelimit::PublishRateAction;

/// Everything the broker core can be told. See each field for its default.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest inbound packet in bytes; advertised in the 5.0 CONNACK. [1 MiB]
    pub max_packet_size: u32,
    /// Inbound QoS 1/2 in flight per client, advertised in CONNACK. [100]
    pub receive_maximum: u16,
    /// Outbound QoS 1/2 in flight per client (min with the client's Receive
    /// Maximum). [100]
    pub max_inflight: u16,
    /// Messages waiting per session (online backlog and offline); QoS 0 is
    /// dropped first. [10,000]
    pub max_queued_messages: usize,
    /// Levels allowed in a topic name or filter. [128]
    pub max_topic_levels: usize,
    /// Topic Alias Maximum advertised to 5.0 clients (0 = none). [65,535]
    pub max_topic_alias: u16,
    /// Connections at once over all listeners (0 = unlimited). [0]
    pub max_connections: usize,
    /// The first packet must be a CONNECT within this; its authentication
    /// (waiting for a free slot included) must then answer within this too,
    /// else the client is refused with 0x89 Server busy. [10 s]
    pub connect_timeout: Duration,
    /// `Hooks::authenticate` calls running at once, on the blocking thread
    /// pool (a password hash costs CPU time and memory); others wait for a
    /// slot. 0 = one per CPU core. [0]
    pub max_concurrent_auth: usize,
    /// Keep alive cap in seconds (0 = no cap). [0]
    pub max_keepalive: u16,
    /// Session Expiry Interval cap in seconds. [u32::MAX]
    pub max_session_expiry: u32,
    /// Whether retained messages are supported. [true]
    pub retain_available: bool,
    /// Highest QoS accepted and granted. [ExactlyOnce]
    pub maximum_qos: QoS,
    /// Whether a client may connect with an empty client id (one is then
    /// assigned). [true]
    pub allow_zero_length_client_id: bool,
    /// PUBLISH packets per second per connection (0 = unlimited): a token
    /// bucket that holds one second's worth, so a client may burst that
    /// many at once. [0]
    pub max_publish_rate: u32,
    /// PUBLISH payload bytes per second per connection (0 = unlimited),
    /// with a burst of one second's worth; a payload larger than that waits
    /// for a full bucket and then delays the next ones. [0]
    pub max_publish_bytes_rate: u64,
    /// What a connection over `max_publish_rate` or
    /// `max_publish_bytes_rate` gets: `Throttle` (its socket is not read
    /// until the tokens are there; nothing is dropped) or `Disconnect` (5.0:
    /// DISCONNECT 0x96 Message rate too high; 3.x: closed). [Throttle]
    pub publish_rate_action: PublishRateAction,
    /// Subscriptions one session may hold (0 = unlimited). Each filter of a
    /// SUBSCRIBE that would go beyond gets 0x97 Quota exceeded (5.0) or
    /// 0x80 (3.x); replacing an existing subscription always works. [0]
    pub max_subscriptions_per_client: usize,
    /// `$SYS` publishing period; zero turns it off. [10 s]
    pub sys_interval: Duration,
    /// Reported as `$SYS/broker/version`. ["midge <version>"]
    pub version: String,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_packet_size: 1_048_576,
            receive_maximum: 100,
            max_inflight: 100,
            max_queued_messages: 10_000,
            max_topic_levels: 128,
            max_topic_alias: 65_535,
            max_connections: 0,
            connect_timeout: Duration::from_secs(10),
            max_concurrent_auth: 0,
            max_keepalive: 0,
            max_session_expiry: u32::MAX,
            retain_available: true,
            maximum_qos: QoS::ExactlyOnce,
            allow_zero_length_client_id: true,
            max_publish_rate: 0,
            max_publish_bytes_rate: 0,
            publish_rate_action: PublishRateAction::Throttle,
            max_subscriptions_per_client: 0,
            sys_interval: Duration::from_secs(10),
            version: format!("midge {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
