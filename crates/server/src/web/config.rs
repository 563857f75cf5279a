//! The `[http]` table of the config file: who may use the HTTP API (admins,
//! API keys, the JWT secret), the bounds of SSE streams and long-poll
//! subscriptions, and the webhooks (`[[http.webhook]]`).

use serde::{Deserialize, Serialize};

/// `[http]`: settings of the web front doors on every `ws`/`wss` listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Usernames with the admin role (management API, `/metrics` when not
    /// public).
    pub admins: Vec<String>,
    /// Bearer tokens, each mapped to a username (`[[http.api_key]]`).
    #[serde(rename = "api_key")]
    pub api_keys: Vec<ApiKey>,
    /// Secret of HS256 JWT bearer tokens (`sub` = username). Unset: JWTs are
    /// refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// Largest request body accepted (JSON publish), in bytes; the payload
    /// itself is also bound by `limits.max_packet_size`.
    pub max_body_bytes: usize,
    /// Messages kept per SSE stream or long-poll subscription for resuming
    /// (`Last-Event-ID`, poll cursor); older ones are dropped and counted.
    pub stream_buffer: usize,
    /// Seconds an SSE stream or poll subscription lives with nobody
    /// attached before its subscription is closed.
    pub stream_idle_secs: u64,
    /// SSE streams plus poll subscriptions open at once.
    pub max_streams: usize,
    /// Longest `timeout` a long poll may ask for, in seconds.
    pub poll_max_timeout_secs: u64,
    /// `/metrics` without credentials (Prometheus scrapers); false: admins
    /// only.
    pub metrics_public: bool,
    /// Broker events POSTed to HTTP endpoints.
    #[serde(rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            admins: Vec::new(),
            api_keys: Vec::new(),
            jwt_secret: None,
            max_body_bytes: 2 * 1024 * 1024,
            stream_buffer: 1000,
            stream_idle_secs: 60,
            max_streams: 10_000,
            poll_max_timeout_secs: 60,
            metrics_public: true,
            webhooks: Vec::new(),
        }
    }
}

/// `[[http.api_key]]`: a bearer token standing for a username.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub key: String,
    /// The identity the key acts as (ACL applies to it).
    pub username: String,
    /// The key grants the admin role whatever `admins` says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

impl std::fmt::Debug for ApiKey {
    // The key is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("username", &self.username)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// `[[http.webhook]]`: where to POST which broker events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL receiving one JSON object per event.
    pub url: String,
    /// Event names to send (`client.connected`, `client.disconnected`,
    /// `client.subscribed`, `client.unsubscribed`, `message.published`,
    /// `message.dropped`); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Topic filters that `message.published` events must match; empty =
    /// all topics.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Events waiting to be sent; over it new events are dropped and
    /// counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Attempts per event (1 = no retry).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_queue() -> usize {
    1000
}
fn default_attempts() -> u32 {
    5
}
fn default_timeout_ms() -> u64 {
    5000
}

/// Every event name a webhook can ask for.
pub const EVENT_NAMES: [&str; 6] = [
    "client.connected",
    "client.disconnected",
    "client.subscribed",
    "client.unsubscribed",
    "message.published",
    "message.dropped",
];

impl HttpConfig {
    /// Checks ranges and names; messages name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.stream_buffer == 0 {
            return Err("http.stream_buffer must be at least 1".into());
        }
        if self.max_body_bytes < 64 {
            return Err("http.max_body_bytes must be at least 64".into());
        }
        if let Some(s) = &self.jwt_secret {
            if s.len() < 16 {
                return Err("http.jwt_secret must be at least 16 bytes".into());
            }
        }
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.key.len() < 16 {
                return Err(format!(
                    "http.api_key[{i}].key must be at least 16 characters"
                ));
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(format!(
                    "http.webhook[{i}].url must start with http:// or https://"
                ));
            }
            if let Some(bad) = w.events.iter().find(|e| !EVENT_NAMES.contains(&e.as_str())) {
                return Err(format!(
                    "http.webhook[{i}].events: unknown event {bad:?} (known: {})",
                    EVENT_NAMES.join(", ")
                ));
            }
            if let Some(bad) = w
                .filters
                .iter()
                .find(|f| midge_proto::topic::validate_filter(f).is_err())
            {
                return Err(format!(
                    "http.webhook[{i}].filters: invalid topic filter {bad:?}"
                ));
            }
            if w.queue == 0 || w.max_attempts == 0 {
                return Err(format!(
                    "http.webhook[{i}]: queue and max_attempts must be at least 1"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let text = r#"
admins = ["root"]
jwt_secret = "0123456789abcdef0123"
[[api_key]]
key = "k-0123456789abcdef"
username = "svc"
admin = true
[[webhook]]
url = "http://127.0.0.1:9/hook"
events = ["message.published"]
filters = ["a/#"]
"#;
        let c: HttpConfig = toml::from_str(text).expect("parses");
        assert_eq!(c.api_keys[0].username, "svc");
        assert_eq!(c.webhooks[0].max_attempts, 5);
        assert_eq!(c.stream_buffer, 1000, "defaults kept");
        c.validate().expect("valid");
        assert!(
            !format!("{:?}", c.api_keys[0]).contains("0123456789"),
            "key not in Debug"
        );
        let again: HttpConfig =
            toml::from_str(&toml::to_string(&c).expect("serializes")).expect("re-parses");
        assert_eq!(again, c);
    }

    #[test]
    fn refuses_bad_values() {
        let bad = |t: &str| {
            toml::from_str::<HttpConfig>(t)
                .expect("parses")
                .validate()
                .unwrap_err()
        };
        assert!(bad("[[webhook]]\nurl = \"ftp://x\"\n").contains("url"));
        assert!(bad("[[webhook]]\nurl = \"http://x\"\nevents = [\"nope\"]\n").contains("nope"));
        assert!(bad("[[webhook]]\nurl = \"http://x\"\nfilters = [\"a/#/b\"]\n").contains("a/#/b"));
        assert!(bad("jwt_secret = \"short\"\n").contains("jwt_secret"));
        assert!(bad("[[api_key]]\nkey = \"k\"\nusername = \"u\"\n").contains("api_key"));
        assert!(
            toml::from_str::<HttpConfig>("admin = []\n").is_err(),
            "unknown key"
        );
    }
}
