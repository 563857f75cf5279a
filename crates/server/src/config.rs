//! The TOML configuration file: one source of truth for every setting, with
//! every default written down (see `docs/config.md` and `midge.example.toml`).
//! Flags of `midge serve` override what the file says.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use midge_broker::{BrokerConfig, PublishRateAction};
use midge_proto::QoS;
use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::tls::TlsFiles;

/// Why a configuration could not be loaded. The messages name the file, the
/// line and the key, because that is what a user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration of `midge serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// tracing filter: error, warn, info, debug, trace, or a full directive.
    pub log_level: String,
    /// Listeners; several of each kind are allowed.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    pub limits: Limits,
    pub mqtt: MqttConfig,
    pub auth: AuthConfig,
    /// The web front doors (`[http]`, see docs/http.md).
    pub http: crate::web::HttpConfig,
    /// Durable state (`[store]`, see docs/storage.md).
    pub store: crate::store_config::StoreSection,
}

/// One listener: a kind, an address, and TLS files for `mqtts`/`wss`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub kind: ListenerKind,
    pub bind: SocketAddr,
    /// A name for logs and metrics; defaults to "KIND:BIND".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Certificate chain (PEM) for `mqtts` and `wss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) for `mqtts` and `wss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// CA (PEM) that client certificates are verified against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cafile: Option<PathBuf>,
    /// Refuse TLS clients without a valid certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_certificate: bool,
    /// Use the verified client certificate's Common Name as the username
    /// (no password asked), as Mosquitto's `use_identity_as_username`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_identity_as_username: bool,
    /// Open connections on this listener; 0 = unlimited. Over it, new
    /// sockets are closed at accept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_connections: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl ListenerConfig {
    pub fn new(kind: ListenerKind, bind: SocketAddr) -> Self {
        ListenerConfig {
            kind,
            bind,
            name: None,
            cert: None,
            key: None,
            cafile: None,
            require_certificate: false,
            use_identity_as_username: false,
            max_connections: 0,
        }
    }

    pub fn mqtt(bind: SocketAddr) -> Self {
        ListenerConfig::new(ListenerKind::Mqtt, bind)
    }

    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.kind.scheme(), self.bind))
    }

    /// The TLS files, for kinds that use TLS.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        match (self.kind.is_tls(), &self.cert, &self.key) {
            (true, Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                cafile: self.cafile.clone(),
                require_certificate: self.require_certificate,
            }),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let name = self.display_name();
        if self.kind.is_tls() && (self.cert.is_none() || self.key.is_none()) {
            return Err(ConfigError::Invalid(format!(
                "listener {name}: kind {} needs cert and key",
                self.kind.scheme()
            )));
        }
        if !self.kind.is_tls()
            && (self.cert.is_some() || self.key.is_some() || self.cafile.is_some())
        {
            return Err(ConfigError::Invalid(format!(
                "listener {name}: cert/key/cafile given but kind {} does not use TLS (use {}s)",
                self.kind.scheme(),
                self.kind.scheme()
            )));
        }
        if self.use_identity_as_username && !self.require_certificate {
            return Err(ConfigError::Invalid(format!(
                "listener {name}: use_identity_as_username needs require_certificate (and cafile)"
            )));
        }
        if self.require_certificate && self.cafile.is_none() {
            return Err(ConfigError::Invalid(format!(
                "listener {name}: require_certificate needs cafile"
            )));
        }
        Ok(())
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// MQTT over TCP.
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// HTTP: MQTT over WebSocket on `/mqtt`, and the web features.
    Ws,
    /// HTTPS: as `ws`, over TLS.
    Wss,
}

impl ListenerKind {
    pub fn scheme(self) -> &'static str {
        match self {
            ListenerKind::Mqtt => "mqtt",
            ListenerKind::Mqtts => "mqtts",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Mqtts | ListenerKind::Wss)
    }
}

/// Bounds on everything a client controls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest packet accepted from a client, in bytes.
    pub max_packet_size: u32,
    /// QoS 1/2 messages a client may have in flight towards the broker.
    pub receive_maximum: u16,
    /// QoS 1/2 messages in flight from the broker to one client.
    pub max_inflight: u16,
    /// Messages queued per session (online backlog or offline).
    pub max_queued_messages: usize,
    /// Levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Topic aliases a 5.0 client may use towards the broker.
    pub max_topic_alias: u16,
    /// Concurrent connections over all listeners; 0 means no limit.
    pub max_connections: usize,
    /// New connections per second accepted from one source address;
    /// 0 = unlimited. Over it, sockets are closed at accept.
    pub max_connection_rate: u32,
    /// Connections one source may open at once before the rate applies.
    pub connection_rate_burst: u32,
    /// PUBLISH packets per second from one client; 0 = unlimited.
    pub max_publish_rate: u32,
    /// Payload bytes per second from one client; 0 = unlimited.
    pub max_publish_bytes_rate: u64,
    /// Over a publish rate: `throttle` (stop reading the socket until the
    /// rate allows; nothing is dropped) or `disconnect` (5.0: reason 0x96).
    pub publish_rate_action: RateAction,
    /// Subscriptions one client may hold; 0 = unlimited (over: 0x97 / 0x80).
    pub max_subscriptions_per_client: usize,
    /// Password checks running at once (they are slow on purpose); 0 = one
    /// per CPU core.
    pub max_concurrent_auth: usize,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Largest keep alive accepted, in seconds; 0 means no cap.
    pub max_keepalive: u16,
    /// Largest session expiry interval granted, in seconds.
    pub max_session_expiry: u32,
}

impl Default for Limits {
    fn default() -> Self {
        let b = BrokerConfig::default();
        Limits {
            max_packet_size: b.max_packet_size,
            receive_maximum: b.receive_maximum,
            max_inflight: b.max_inflight,
            max_queued_messages: b.max_queued_messages,
            max_topic_levels: b.max_topic_levels,
            max_topic_alias: b.max_topic_alias,
            max_connections: b.max_connections,
            max_connection_rate: 0,
            connection_rate_burst: 100,
            max_publish_rate: b.max_publish_rate,
            max_publish_bytes_rate: b.max_publish_bytes_rate,
            publish_rate_action: match b.publish_rate_action {
                PublishRateAction::Throttle => RateAction::Throttle,
                PublishRateAction::Disconnect => RateAction::Disconnect,
            },
            max_subscriptions_per_client: b.max_subscriptions_per_client,
            max_concurrent_auth: b.max_concurrent_auth,
            connect_timeout_secs: b.connect_timeout.as_secs(),
            max_keepalive: b.max_keepalive,
            max_session_expiry: b.max_session_expiry,
        }
    }
}

/// What happens to a client over its publish rate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RateAction {
    Throttle,
    Disconnect,
}

/// MQTT features.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub retain_available: bool,
    /// Highest QoS granted: 0, 1 or 2.
    pub maximum_qos: u8,
    pub allow_zero_length_client_id: bool,
    /// Seconds between `$SYS/broker/...` updates; 0 turns them off.
    pub sys_interval_secs: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        let b = BrokerConfig::default();
        MqttConfig {
            retain_available: b.retain_available,
            maximum_qos: b.maximum_qos as u8,
            allow_zero_length_client_id: b.allow_zero_length_client_id,
            sys_interval_secs: b.sys_interval.as_secs(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("midge-data"),
            log_level: "info".to_owned(),
            listeners: vec![
                ListenerConfig::mqtt(SocketAddr::from(([0, 0, 0, 0], 1883))),
                ListenerConfig::new(ListenerKind::Ws, SocketAddr::from(([0, 0, 0, 0], 8080))),
            ],
            limits: Limits::default(),
            mqtt: MqttConfig::default(),
            auth: AuthConfig::default(),
            http: crate::web::HttpConfig::default(),
            store: crate::store_config::StoreSection::default(),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text. toml's messages carry the line,
    /// the column and the offending key.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mqtt.maximum_qos > 2 {
            return Err(ConfigError::Invalid(format!(
                "mqtt.maximum_qos must be 0, 1 or 2, not {}",
                self.mqtt.maximum_qos
            )));
        }
        if self.limits.receive_maximum == 0 {
            return Err(ConfigError::Invalid(
                "limits.receive_maximum must be at least 1".into(),
            ));
        }
        if self.limits.max_inflight == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_inflight must be at least 1".into(),
            ));
        }
        if self.limits.max_packet_size < 64 {
            return Err(ConfigError::Invalid(
                "limits.max_packet_size must be at least 64 bytes".into(),
            ));
        }
        if self.limits.max_packet_size as usize > midge_proto::MAX_REMAINING_LENGTH + 5 {
            return Err(ConfigError::Invalid(format!(
                "limits.max_packet_size must be at most {} bytes",
                midge_proto::MAX_REMAINING_LENGTH + 5
            )));
        }
        if self.limits.max_topic_levels == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_topic_levels must be at least 1".into(),
            ));
        }
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one [[listener]] is needed".into(),
            ));
        }
        for l in &self.listeners {
            l.validate()?;
        }
        self.http.validate().map_err(ConfigError::Invalid)?;
        self.store.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The broker core's settings.
    pub fn broker_config(&self) -> BrokerConfig {
        let l = &self.limits;
        BrokerConfig {
            max_packet_size: l.max_packet_size,
            receive_maximum: l.receive_maximum,
            max_inflight: l.max_inflight,
            max_queued_messages: l.max_queued_messages,
            max_topic_levels: l.max_topic_levels,
            max_topic_alias: l.max_topic_alias,
            max_connections: l.max_connections,
            connect_timeout: Duration::from_secs(l.connect_timeout_secs),
            max_keepalive: l.max_keepalive,
            max_session_expiry: l.max_session_expiry,
            max_publish_rate: l.max_publish_rate,
            max_publish_bytes_rate: l.max_publish_bytes_rate,
            publish_rate_action: match l.publish_rate_action {
                RateAction::Throttle => PublishRateAction::Throttle,
                RateAction::Disconnect => PublishRateAction::Disconnect,
            },
            max_subscriptions_per_client: l.max_subscriptions_per_client,
            max_concurrent_auth: l.max_concurrent_auth,
            retain_available: self.mqtt.retain_available,
            maximum_qos: QoS::from_u8(self.mqtt.maximum_qos).unwrap_or(QoS::ExactlyOnce),
            allow_zero_length_client_id: self.mqtt.allow_zero_length_client_id,
            sys_interval: Duration::from_secs(self.mqtt.sys_interval_secs),
            ..BrokerConfig::default()
        }
    }

    /// The effective configuration as TOML (`midge serve --print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").expect("empty config is valid");
        assert_eq!(
            c.listeners[0],
            ListenerConfig::mqtt("0.0.0.0:1883".parse().expect("addr"))
        );
        assert_eq!(c.listeners[1].kind, ListenerKind::Ws);
        assert_eq!(
            c.limits.max_packet_size,
            BrokerConfig::default().max_packet_size
        );
    }

    #[test]
    fn example_file_is_valid_and_complete() {
        let text = include_str!("../../../midge.example.toml");
        let c = Config::parse(text).expect("midge.example.toml parses");
        // Every default is written out: printing the parsed file gives the
        // same text as printing the defaults. If this fails, regenerate the
        // file with `midge serve --print-config`.
        assert_eq!(c.to_toml(), Config::default().to_toml());
    }

    #[test]
    fn printed_config_parses_back() {
        let c = Config::default();
        let again = Config::parse(&c.to_toml()).expect("printed config parses");
        assert_eq!(again.to_toml(), c.to_toml());
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err =
            Config::parse("log_level = \"info\"\n\n[limits]\nmax_pakcet_size = 10\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 4"), "{msg}");
        assert!(msg.contains("max_pakcet_size"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = Config::parse("[mqtt]\nsys_interval_secs = \"ten\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(Config::parse("[mqtt]\nmaximum_qos = 3\n").is_err());
        assert!(Config::parse("[limits]\nreceive_maximum = 0\n").is_err());
        assert!(Config::parse("listener = []\n").is_err());
    }

    #[test]
    fn tls_listener_needs_files() {
        let err = Config::parse("[[listener]]\nkind = \"mqtts\"\nbind = \"127.0.0.1:8883\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("needs cert and key"), "{err}");
        let err = Config::parse(
            "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1\"\ncert = \"a.pem\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not use TLS"), "{err}");
    }

    #[test]
    fn client_limits_reach_the_broker() {
        let c = Config::parse(
            "[limits]\nmax_publish_rate = 50\nmax_publish_bytes_rate = 4096\npublish_rate_action = \"disconnect\"\nmax_subscriptions_per_client = 8\n",
        )
        .expect("valid");
        let b = c.broker_config();
        assert_eq!(b.max_publish_rate, 50);
        assert_eq!(b.max_publish_bytes_rate, 4096);
        assert_eq!(b.publish_rate_action, PublishRateAction::Disconnect);
        assert_eq!(b.max_subscriptions_per_client, 8);
        let err = Config::parse("[limits]\npublish_rate_action = \"drop\"\n")
            .expect_err("unknown action");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn listeners_parse() {
        let c = Config::parse(
            "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1884\"\n\n[[listener]]\nkind = \"mqtt\"\nbind = \"[::1]:1885\"\nname = \"v6\"\n",
        )
        .expect("valid");
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].display_name(), "v6");
    }
}
