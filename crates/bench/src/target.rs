//! The broker under test, from `--url`: scheme, host and port.
//!
//! Only plain TCP (`mqtt://`, `tcp://`) is driven today; `mqtts://`, `ws://`
//! and `wss://` are recognised so that the error says what is missing rather
//! than "bad URL", and so that adding those transports later only touches the
//! connection setup.

use std::fmt;

/// A transport that `--url` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// MQTT over plain TCP (`mqtt://` or `tcp://`).
    Mqtt,
    /// MQTT over TLS (`mqtts://`, `ssl://`): not supported yet.
    Mqtts,
    /// MQTT over WebSocket (`ws://`): not supported yet.
    Ws,
    /// MQTT over secure WebSocket (`wss://`): not supported yet.
    Wss,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

/// Why `--url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("unknown URL scheme '{0}://' (use mqtt://host:port)")]
    UnknownScheme(String),
    #[error("{0}:// is not supported by midge bench yet; use mqtt://host:port")]
    Unsupported(&'static str),
    #[error("URL '{0}' has no host")]
    NoHost(String),
    #[error("URL '{url}' has an invalid port '{port}'")]
    BadPort { url: String, port: String },
    #[error("URL '{0}' has a path; mqtt:// takes only host and port")]
    Path(String),
}

/// Where to send all traffic of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Parses `mqtt://host:port` (scheme and port optional, `[v6]:port`
    /// accepted) and refuses transports that are not implemented.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let target = Target::parse_any(url)?;
        match target.scheme {
            Scheme::Mqtt => Ok(target),
            other => Err(TargetError::Unsupported(other.name())),
        }
    }

    /// Parses any recognised scheme, supported or not.
    fn parse_any(url: &str) -> Result<Target, TargetError> {
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) => {
                let scheme = match s.to_ascii_lowercase().as_str() {
                    "mqtt" | "tcp" => Scheme::Mqtt,
                    "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
                    "ws" => Scheme::Ws,
                    "wss" => Scheme::Wss,
                    _ => return Err(TargetError::UnknownScheme(s.to_owned())),
                };
                (scheme, rest)
            }
            None => (Scheme::Mqtt, url),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // A WebSocket URL will need its path; for plain MQTT a path is a
        // mistake worth reporting rather than silently dropping.
        if !(path.is_empty() || path == "/") && scheme != Scheme::Ws && scheme != Scheme::Wss {
            return Err(TargetError::Path(url.to_owned()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            match v6.split_once(']') {
                Some((host, tail)) => (host, tail.strip_prefix(':')),
                None => return Err(TargetError::NoHost(url.to_owned())),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(TargetError::NoHost(url.to_owned()));
        }
        let port =
            match port {
                None => scheme.default_port(),
                Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    TargetError::BadPort {
                        url: url.to_owned(),
                        port: p.to_owned(),
                    }
                })?,
            };
        Ok(Target {
            scheme,
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme.name(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme.name(), self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mqtt_urls() {
        let t = Target::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1884));
        let t = Target::parse("localhost").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 1883));
        let t = Target::parse("tcp://[::1]:2000/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 2000));
        assert_eq!(t.to_string(), "mqtt://[::1]:2000");
    }

    #[test]
    fn refuses_unsupported_and_bad_urls() {
        assert_eq!(
            Target::parse("mqtts://h:8883"),
            Err(TargetError::Unsupported("mqtts"))
        );
        assert_eq!(
            Target::parse("ws://h:8080/mqtt"),
            Err(TargetError::Unsupported("ws"))
        );
        assert!(matches!(
            Target::parse("http://h"),
            Err(TargetError::UnknownScheme(_))
        ));
        assert!(matches!(
            Target::parse("mqtt://h:99999"),
            Err(TargetError::BadPort { .. })
        ));
        assert!(matches!(
            Target::parse("mqtt://:1883"),
            Err(TargetError::NoHost(_))
        ));
        assert!(matches!(
            Target::parse("mqtt://h:1883/x"),
            Err(TargetError::Path(_))
        ));
    }
}
