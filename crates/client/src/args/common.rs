//! Options shared by `midge pub` and `midge sub` (connection, identity,
//! will, TLS, MQTT 5.0 properties) and their resolution into a
//! [`ConnectConfig`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use clap::{ArgAction, Args};
use midge_proto::{Properties, Protocol, QoS, Will};

use crate::config::{ConnectConfig, Target, TlsOptions, TlsVersion};
use crate::props::PropertySets;
use crate::url::{self, BrokerUrl, Scheme};

/// Connection options common to both commands.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// MQTT host to connect to [default: localhost]
    #[arg(short = 'h', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// Network port [default: 1883, 8883 with TLS]
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<u16>,
    /// Connect through a Unix domain socket instead of TCP
    #[arg(long = "unix", value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// Broker URL: mqtt|mqtts|ws|wss://[user[:password]@]host[:port][/topic]
    #[arg(short = 'L', long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// HTTP path of the WebSocket endpoint for ws:// and wss:// URLs
    #[arg(long = "ws-path", value_name = "PATH", default_value = "/mqtt")]
    pub ws_path: String,
    /// Bind the outgoing socket to this local address
    #[arg(short = 'A', value_name = "ADDRESS")]
    pub bind: Option<IpAddr>,
    /// Accepted for compatibility: midge always disables Nagle's algorithm
    #[arg(long = "nodelay")]
    pub nodelay: bool,
    /// Client identifier [default: assigned by the broker; generated for MQTT 3.1]
    #[arg(
        short = 'i',
        long = "id",
        value_name = "ID",
        allow_hyphen_values = true
    )]
    pub id: Option<String>,
    /// Client identifier made of this prefix and the process id
    #[arg(
        short = 'I',
        long = "id-prefix",
        value_name = "PREFIX",
        conflicts_with = "id"
    )]
    pub id_prefix: Option<String>,
    /// User name
    #[arg(
        short = 'u',
        long = "username",
        value_name = "USER",
        allow_hyphen_values = true
    )]
    pub username: Option<String>,
    /// Password
    #[arg(
        short = 'P',
        long = "pw",
        value_name = "PASSWORD",
        allow_hyphen_values = true
    )]
    pub password: Option<String>,
    /// Keep alive in seconds (0 disables)
    #[arg(
        short = 'k',
        long = "keepalive",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub keepalive: u16,
    /// MQTT version: 31, 311, 5 (or mqttv31, mqttv311, mqttv5)
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION", value_parser = parse_protocol, default_value = "311")]
    pub protocol: Protocol,
    /// Persistent session: do not clean the session on connect (needs -i or -I)
    #[arg(short = 'c', long = "disable-clean-session")]
    pub persistent: bool,
    /// MQTT 5.0 session expiry interval in seconds; -1 or ∞ for never [default: never with -c, else 0]
    #[arg(
        short = 'x',
        long = "session-expiry-interval",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub session_expiry: Option<String>,
    /// Print debug messages (packets sent and received) on stderr
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// Do not print error messages
    #[arg(long = "quiet")]
    pub quiet: bool,
    /// Give up after this many seconds (exit code 27)
    #[arg(short = 'W', long = "timeout", value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub timeout: Option<u32>,
    /// Topic of the client's will message
    #[arg(long = "will-topic", value_name = "TOPIC")]
    pub will_topic: Option<String>,
    /// Payload of the will message [default: empty]
    #[arg(
        long = "will-payload",
        value_name = "PAYLOAD",
        requires = "will_topic",
        allow_hyphen_values = true
    )]
    pub will_payload: Option<String>,
    /// QoS of the will message
    #[arg(long = "will-qos", value_name = "QOS", value_parser = parse_qos, requires = "will_topic")]
    pub will_qos: Option<QoS>,
    /// Retain the will message
    #[arg(long = "will-retain", requires = "will_topic")]
    pub will_retain: bool,
    /// PEM file of trusted CA certificates (enables TLS)
    #[arg(long = "cafile", value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// Directory of trusted PEM CA certificates (enables TLS)
    #[arg(long = "capath", value_name = "DIR")]
    pub capath: Option<PathBuf>,
    /// Client certificate (PEM) for TLS client authentication
    #[arg(long = "cert", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM) for TLS client authentication
    #[arg(long = "key", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Do not check that the server certificate matches the host name
    #[arg(long = "insecure")]
    pub insecure: bool,
    /// Trust the operating system's CA certificates (enables TLS)
    #[arg(long = "tls-use-os-certs")]
    pub tls_use_os_certs: bool,
    /// TLS version: tlsv1.3 or tlsv1.2 [default: either]
    #[arg(long = "tls-version", value_name = "VERSION", value_parser = parse_tls_version)]
    pub tls_version: Option<TlsVersion>,
    /// TLS ALPN protocol to offer (repeatable)
    #[arg(long = "tls-alpn", value_name = "PROTOCOL")]
    pub tls_alpn: Vec<String>,
    /// MQTT 5.0 property: -D COMMAND IDENTIFIER VALUE (user-property takes KEY VALUE)
    #[arg(short = 'D', long = "property", value_names = ["COMMAND", "IDENTIFIER", "VALUE"], num_args = 3..=4, action = ArgAction::Append)]
    pub property: Vec<String>,
    /// `-D` occurrences, each with its own values (filled by [`parse_from`]).
    #[arg(skip)]
    pub property_groups: Vec<Vec<String>>,
    /// Print this help
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// Parses a command line into `T` (whose flattened [`ConnArgs`] `conn`
/// gets its `-D` occurrences grouped: clap's derive flattens them).
pub fn parse_from<T>(
    args: Vec<std::ffi::OsString>,
    conn: impl FnOnce(&mut T) -> &mut ConnArgs,
) -> Result<T, clap::Error>
where
    T: clap::CommandFactory + clap::FromArgMatches,
{
    let matches = T::command().try_get_matches_from(args)?;
    let mut parsed = T::from_arg_matches(&matches)?;
    let groups = matches
        .get_occurrences::<String>("property")
        .map(|occ| occ.map(|values| values.cloned().collect()).collect())
        .unwrap_or_default();
    conn(&mut parsed).property_groups = groups;
    Ok(parsed)
}

/// What [`ConnArgs::resolve`] returns besides the connection: the topic a
/// `-L` URL carried, for the command to use.
#[derive(Debug)]
pub struct Resolved {
    pub config: ConnectConfig,
    pub url_topic: Option<String>,
}

/// Which command is resolving, for generated client identifiers.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Pub,
    Sub,
}

impl ConnArgs {
    /// Checks the options against each other and builds the connection
    /// settings; the error names the offending option.
    pub fn resolve(&self, kind: Kind, warn: &mut dyn FnMut(&str)) -> Result<Resolved, String> {
        let url: Option<BrokerUrl> = self.url.as_deref().map(url::parse).transpose()?;
        if url.is_some() && self.unix.is_some() {
            return Err("-L and --unix cannot be used together".into());
        }
        let scheme = url.as_ref().map(|u| u.scheme);
        let tls_wanted = scheme.is_some_and(Scheme::is_tls)
            || self.cafile.is_some()
            || self.capath.is_some()
            || self.cert.is_some()
            || self.tls_use_os_certs;
        let host = self
            .host
            .clone()
            .or_else(|| url.as_ref().map(|u| u.host.clone()))
            .unwrap_or_else(|| "localhost".to_owned());
        let default_port = match scheme {
            Some(s) if !s.is_tls() && tls_wanted && s == Scheme::Mqtt => 8883,
            Some(s) => s.default_port(),
            None if tls_wanted => 8883,
            None => 1883,
        };
        let port = self
            .port
            .or(url.as_ref().and_then(|u| u.port))
            .unwrap_or(default_port);
        if port == 0 {
            return Err("invalid port 0".into());
        }
        let target = if let Some(path) = &self.unix {
            if tls_wanted {
                return Err("TLS over --unix is not supported".into());
            }
            Target::Unix(path.clone())
        } else if scheme.is_some_and(Scheme::is_websocket) {
            let path = if self.ws_path.starts_with('/') {
                self.ws_path.clone()
            } else {
                format!("/{}", self.ws_path)
            };
            Target::WebSocket {
                host,
                port,
                path,
                bind: self.bind,
            }
        } else {
            Target::Tcp {
                host,
                port,
                bind: self.bind,
            }
        };
        let tls = tls_wanted.then(|| TlsOptions {
            cafile: self.cafile.clone(),
            capath: self.capath.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            insecure: self.insecure,
            use_os_certs: self.tls_use_os_certs,
            version: self.tls_version,
            alpn: self.tls_alpn.clone(),
        });
        if self.insecure && tls.is_none() {
            warn("Warning: --insecure has no effect without TLS");
        }

        let protocol = self.protocol;
        let username = self
            .username
            .clone()
            .or_else(|| url.as_ref().and_then(|u| u.username.clone()));
        let password = self
            .password
            .clone()
            .or_else(|| url.as_ref().and_then(|u| u.password.clone()));
        if password.is_some() && username.is_none() && !protocol.is_v5() {
            return Err("a password (-P) needs a user name (-u) before MQTT 5.0".into());
        }

        let client_id = match (&self.id, &self.id_prefix) {
            (Some(id), _) => id.clone(),
            (None, Some(prefix)) => format!("{prefix}{}", std::process::id()),
            (None, None) if self.persistent => {
                return Err("you must provide a client id (-i or -I) with -c".into())
            }
            (None, None) if protocol == Protocol::V3_1 => generated_id(kind),
            (None, None) => String::new(),
        };
        if protocol == Protocol::V3_1 && client_id.len() > 23 {
            warn("Warning: MQTT 3.1 brokers may refuse a client id over 23 bytes");
        }

        let mut props = PropertySets::default();
        for definition in &self.property_groups {
            props.add(definition)?;
        }
        let session_expiry = self
            .session_expiry
            .as_deref()
            .map(parse_session_expiry)
            .transpose()?;
        if protocol.is_v5() {
            // -x, then -c, then -D connect session-expiry-interval decide, as
            // mosquitto: an explicit -D wins.
            if props.connect.session_expiry_interval.is_none() {
                props.connect.session_expiry_interval = match (session_expiry, self.persistent) {
                    (Some(x), _) => Some(x),
                    (None, true) => Some(u32::MAX),
                    (None, false) => None,
                };
            }
        } else {
            if !props.is_empty() {
                warn("Warning: -D properties are ignored before MQTT 5.0 (use -V 5)");
                props = PropertySets::default();
            }
            if session_expiry.is_some() {
                warn("Warning: -x is ignored before MQTT 5.0 (use -V 5)");
            }
        }

        let will = match &self.will_topic {
            None => None,
            Some(topic) => {
                check_topic_name(topic).map_err(|e| format!("invalid will topic: {e}"))?;
                Some(Will {
                    topic: ByteString::from(topic.clone()),
                    payload: Bytes::from(self.will_payload.clone().unwrap_or_default()),
                    qos: self.will_qos.unwrap_or_default(),
                    retain: self.will_retain,
                    properties: std::mem::take(&mut props.will),
                })
            }
        };
        if will.is_none() && props.will != Properties::default() {
            return Err("-D will properties need --will-topic".into());
        }

        Ok(Resolved {
            config: ConnectConfig {
                target,
                tls,
                protocol,
                client_id,
                clean_start: !self.persistent,
                keep_alive: self.keepalive,
                username,
                password: password.map(String::into_bytes),
                will,
                props,
                debug: self.debug,
                quiet: self.quiet,
                timeout: self.timeout.map(|s| Duration::from_secs(u64::from(s))),
                connect_timeout: Duration::from_secs(30),
            },
            url_topic: url.and_then(|u| u.topic),
        })
    }
}

/// A client id for MQTT 3.1, which needs one: short enough for its
/// 23-byte limit, unique within the process (tests run clients side by side).
fn generated_id(kind: Kind) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let k = match kind {
        Kind::Pub => "pub",
        Kind::Sub => "sub",
    };
    format!("midge-{k}-{}-{n}", std::process::id())
}

/// `-V`: the spellings mosquitto accepts.
pub fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "31" | "mqttv31" => Ok(Protocol::V3_1),
        "311" | "mqttv311" => Ok(Protocol::V3_1_1),
        "5" | "mqttv5" => Ok(Protocol::V5),
        other => Err(format!(
            "invalid protocol version '{other}' (use 31, 311, 5, mqttv31, mqttv311 or mqttv5)"
        )),
    }
}

/// `-q` and `--will-qos`.
pub fn parse_qos(s: &str) -> Result<QoS, String> {
    s.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("invalid QoS '{s}' (use 0, 1 or 2)"))
}

fn parse_tls_version(s: &str) -> Result<TlsVersion, String> {
    match s {
        "tlsv1.3" => Ok(TlsVersion::V1_3),
        "tlsv1.2" => Ok(TlsVersion::V1_2),
        other => Err(format!(
            "unsupported TLS version '{other}' (use tlsv1.3 or tlsv1.2)"
        )),
    }
}

fn parse_session_expiry(s: &str) -> Result<u32, String> {
    match s {
        "-1" | "∞" => Ok(u32::MAX),
        _ => s
            .parse::<u32>()
            .map_err(|_| format!("invalid session expiry interval '{s}'")),
    }
}

/// A topic name as PUBLISH needs it (non-empty, no wildcards, no NUL).
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    midge_proto::topic::validate_name(topic).map_err(|e| e.to_string())
}

/// A topic filter as SUBSCRIBE needs it (wildcards whole levels, `#` last).
pub fn check_topic_filter(filter: &str) -> Result<(), String> {
    midge_proto::topic::validate_filter(filter).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_spellings() {
        assert_eq!(parse_protocol("31"), Ok(Protocol::V3_1));
        assert_eq!(parse_protocol("mqttv311"), Ok(Protocol::V3_1_1));
        assert_eq!(parse_protocol("mqttv5"), Ok(Protocol::V5));
        assert!(parse_protocol("4").is_err());
    }

    #[test]
    fn topics() {
        assert!(check_topic_name("a/b").is_ok());
        assert!(check_topic_name("a/+").is_err());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_filter("a/+/c/#").is_ok());
        assert!(check_topic_filter("#").is_ok());
        assert!(check_topic_filter("a/#/c").is_err());
        assert!(check_topic_filter("a/b#").is_err());
        assert!(check_topic_filter("a+/b").is_err());
    }

    #[test]
    fn session_expiry() {
        assert_eq!(parse_session_expiry("-1"), Ok(u32::MAX));
        assert_eq!(parse_session_expiry("30"), Ok(30));
        assert!(parse_session_expiry("x").is_err());
    }
}
