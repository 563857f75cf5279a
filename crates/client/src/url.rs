//! `-L` / `--url`: `scheme://[user[:password]@]host[:port][/topic]` with the
//! schemes `mqtt`, `mqtts`, `ws` and `wss`. The path is the topic, as in
//! mosquitto (`#` and `+` are taken literally, not as a URL fragment);
//! `%XX` escapes in the user, password and topic are decoded.

/// Transport named by a URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl Scheme {
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Mqtts | Scheme::Wss)
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    /// The port used when neither the URL nor `-p` names one.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }
}

/// The parts of a broker URL; absent parts are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub scheme: Scheme,
    pub username: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub topic: Option<String>,
}

/// Parses a broker URL; the error says what is wrong with it.
pub fn parse(url: &str) -> Result<BrokerUrl, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("invalid URL '{url}': expected scheme://host"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => Scheme::Mqtt,
        "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        other => {
            return Err(format!(
                "unsupported URL scheme '{other}' (use mqtt, mqtts, ws or wss)"
            ))
        }
    };
    let (authority, topic) = match rest.split_once('/') {
        Some((a, t)) => (a, (!t.is_empty()).then(|| percent_decode(t)).transpose()?),
        None => (rest, None),
    };
    // The last '@' separates credentials: a password may contain '@' unescaped.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(percent_decode(user)?), Some(percent_decode(pass)?)),
            None => (Some(percent_decode(u)?), None),
        },
    };
    let (host, port) = split_host_port(hostport)?;
    if host.is_empty() {
        return Err(format!("invalid URL '{url}': no host"));
    }
    Ok(BrokerUrl {
        scheme,
        username,
        password,
        host,
        port,
        topic,
    })
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid port '{p}' in URL"))
    };
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid IPv6 host '{s}' in URL"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(format!("invalid host '{s}' in URL")),
        };
        return Ok((host.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_owned(), Some(parse_port(p)?))),
        None => Ok((s.to_owned(), None)),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid %-escape in URL part '{s}'"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("URL part '{s}' is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url() {
        let u = parse("mqtts://alice:s%40cret@broker.example:8884/a/b/#").unwrap();
        assert_eq!(u.scheme, Scheme::Mqtts);
        assert_eq!(u.username.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.host, "broker.example");
        assert_eq!(u.port, Some(8884));
        assert_eq!(u.topic.as_deref(), Some("a/b/#"));
    }

    #[test]
    fn minimal_and_ipv6() {
        let u = parse("ws://[::1]").unwrap();
        assert_eq!(u.scheme, Scheme::Ws);
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, None);
        assert_eq!(u.topic, None);
        assert!(u.username.is_none() && u.password.is_none());
        let u = parse("wss://[::1]:9001/t").unwrap();
        assert_eq!((u.port, u.topic.as_deref()), (Some(9001), Some("t")));
        let u = parse("mqtt://bob@h/").unwrap();
        assert_eq!((u.username.as_deref(), u.topic), (Some("bob"), None));
    }

    #[test]
    fn errors() {
        assert!(parse("localhost:1883").is_err());
        assert!(parse("http://h/t").is_err());
        assert!(parse("mqtt://h:99999/t").is_err());
        assert!(parse("mqtt:///t").is_err());
        assert!(parse("mqtt://h/%zz").is_err());
    }
}
