//! `-D COMMAND IDENTIFIER VALUE [VALUE]`: MQTT 5.0 properties given on the
//! command line in mosquitto's syntax, sorted into the packet they go in.

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::Properties;

/// The properties of each packet kind a command-line client sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertySets {
    pub connect: Properties,
    pub publish: Properties,
    pub subscribe: Properties,
    pub unsubscribe: Properties,
    pub disconnect: Properties,
    pub will: Properties,
}

impl PropertySets {
    pub fn is_empty(&self) -> bool {
        *self == PropertySets::default()
    }

    /// Adds one `-D` definition: `values` is `[command, identifier, value]`,
    /// or `[command, "user-property", key, value]`.
    pub fn add(&mut self, values: &[String]) -> Result<(), String> {
        let (command, ident, rest) = match values {
            [c, i, rest @ ..] if !rest.is_empty() => (c.as_str(), i.as_str(), rest),
            _ => return Err("-D needs: command identifier value".into()),
        };
        let target = match command {
            "connect" => &mut self.connect,
            "publish" => &mut self.publish,
            "subscribe" => &mut self.subscribe,
            "unsubscribe" => &mut self.unsubscribe,
            "disconnect" => &mut self.disconnect,
            "will" => &mut self.will,
            other => {
                return Err(format!(
                    "invalid -D command '{other}' (connect, publish, subscribe, unsubscribe, disconnect, will)"
                ))
            }
        };
        if !allowed(command, ident) {
            return Err(format!(
                "property '{ident}' is not allowed for the {command} command"
            ));
        }
        let want = if ident == "user-property" { 2 } else { 1 };
        if rest.len() != want {
            return Err(format!(
                "-D {command} {ident} takes {want} value(s), got {}",
                rest.len()
            ));
        }
        let value = rest[0].as_str();
        let bad = |what: &str| format!("invalid value '{value}' for property '{ident}': {what}");
        let u32v = || {
            value
                .parse::<u32>()
                .map_err(|_| bad("expected 0..4294967295"))
        };
        let u16v = || value.parse::<u16>().map_err(|_| bad("expected 0..65535"));
        let flag = || match value {
            "0" => Ok(0u8),
            "1" => Ok(1u8),
            _ => Err(bad("expected 0 or 1")),
        };
        let text = || ByteString::from(value.to_owned());
        let binary = || Bytes::copy_from_slice(value.as_bytes());
        match ident {
            "payload-format-indicator" => target.payload_format_indicator = Some(flag()?),
            "message-expiry-interval" => target.message_expiry_interval = Some(u32v()?),
            "content-type" => target.content_type = Some(text()),
            "response-topic" => target.response_topic = Some(text()),
            "correlation-data" => target.correlation_data = Some(binary()),
            "subscription-identifier" => {
                let id = u32v()?;
                if !(1..=268_435_455).contains(&id) {
                    return Err(bad("expected 1..268435455"));
                }
                target.subscription_identifiers = vec![id];
            }
            "session-expiry-interval" => target.session_expiry_interval = Some(u32v()?),
            "authentication-method" => target.authentication_method = Some(text()),
            "authentication-data" => target.authentication_data = Some(binary()),
            "request-problem-information" => target.request_problem_information = Some(flag()?),
            "will-delay-interval" => target.will_delay_interval = Some(u32v()?),
            "request-response-information" => target.request_response_information = Some(flag()?),
            "reason-string" => target.reason_string = Some(text()),
            "receive-maximum" => match u16v()? {
                0 => return Err(bad("must not be 0")),
                n => target.receive_maximum = Some(n),
            },
            "topic-alias-maximum" => target.topic_alias_maximum = Some(u16v()?),
            "topic-alias" => match u16v()? {
                0 => return Err(bad("must not be 0")),
                n => target.topic_alias = Some(n),
            },
            "maximum-packet-size" => match u32v()? {
                0 => return Err(bad("must not be 0")),
                n => target.maximum_packet_size = Some(n),
            },
            "user-property" => target
                .user_properties
                .push((text(), ByteString::from(rest[1].clone()))),
            // `allowed` has already rejected unknown identifiers.
            other => return Err(format!("unknown property '{other}'")),
        }
        Ok(())
    }
}

/// Which property a client may put in which packet (MQTT 5.0, section 3).
fn allowed(command: &str, ident: &str) -> bool {
    let list: &[&str] = match command {
        "connect" => &[
            "session-expiry-interval",
            "receive-maximum",
            "maximum-packet-size",
            "topic-alias-maximum",
            "request-response-information",
            "request-problem-information",
            "user-property",
            "authentication-method",
            "authentication-data",
        ],
        "publish" => &[
            "payload-format-indicator",
            "message-expiry-interval",
            "topic-alias",
            "response-topic",
            "correlation-data",
            "user-property",
            "content-type",
        ],
        "will" => &[
            "will-delay-interval",
            "payload-format-indicator",
            "message-expiry-interval",
            "content-type",
            "response-topic",
            "correlation-data",
            "user-property",
        ],
        "subscribe" => &["subscription-identifier", "user-property"],
        "unsubscribe" => &["user-property"],
        "disconnect" => &["session-expiry-interval", "reason-string", "user-property"],
        _ => &[],
    };
    list.contains(&ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(sets: &mut PropertySets, args: &[&str]) -> Result<(), String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        sets.add(&v)
    }

    #[test]
    fn sorts_into_packets() {
        let mut s = PropertySets::default();
        add(&mut s, &["publish", "user-property", "k", "v"]).unwrap();
        add(&mut s, &["publish", "user-property", "k", "w"]).unwrap();
        add(&mut s, &["publish", "message-expiry-interval", "30"]).unwrap();
        add(&mut s, &["publish", "correlation-data", "abc"]).unwrap();
        add(&mut s, &["publish", "topic-alias", "3"]).unwrap();
        add(&mut s, &["subscribe", "subscription-identifier", "42"]).unwrap();
        add(&mut s, &["connect", "session-expiry-interval", "60"]).unwrap();
        add(&mut s, &["will", "will-delay-interval", "5"]).unwrap();
        assert_eq!(s.publish.user_properties.len(), 2);
        assert_eq!(s.publish.user_properties[1].1, "w");
        assert_eq!(s.publish.message_expiry_interval, Some(30));
        assert_eq!(s.publish.correlation_data.as_deref(), Some(&b"abc"[..]));
        assert_eq!(s.publish.topic_alias, Some(3));
        assert_eq!(s.subscribe.subscription_identifiers, vec![42]);
        assert_eq!(s.connect.session_expiry_interval, Some(60));
        assert_eq!(s.will.will_delay_interval, Some(5));
        assert!(s.disconnect == Properties::default());
    }

    #[test]
    fn rejects_misplaced_and_malformed() {
        let mut s = PropertySets::default();
        assert!(add(&mut s, &["publish", "subscription-identifier", "1"]).is_err());
        assert!(add(&mut s, &["connect", "topic-alias", "1"]).is_err());
        assert!(add(&mut s, &["publish", "topic-alias", "0"]).is_err());
        assert!(add(&mut s, &["publish", "message-expiry-interval", "-1"]).is_err());
        assert!(add(&mut s, &["publish", "user-property", "k"]).is_err());
        assert!(add(&mut s, &["publish", "content-type", "a", "b"]).is_err());
        assert!(add(&mut s, &["bogus", "content-type", "a"]).is_err());
        assert!(add(&mut s, &["publish", "payload-format-indicator", "2"]).is_err());
        assert!(s.is_empty());
    }
}
