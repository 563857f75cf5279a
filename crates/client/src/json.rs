//! JSON renderings of a received message: midge's own `--json` lines, and
//! mosquitto's `%j` / `%J` objects (same keys and order as mosquitto_sub).

use base64::Engine as _;
use bytes::Bytes;
use midge_proto::Properties;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::format::Received;

/// `--json`: one object per message. Text that is not UTF-8 (payload,
/// correlation data) is base64, and a sibling `*_encoding` field says so.
#[derive(Serialize)]
struct MidgeJson<'a> {
    time: String,
    topic: &'a str,
    qos: u8,
    retain: bool,
    payload_encoding: &'static str,
    payload: String,
    properties: MidgeProps<'a>,
}

#[derive(Serialize)]
struct MidgeProps<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_format_indicator: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic_alias: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data_encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data: Option<String>,
    #[serde(skip_serializing_if = "no_ids")]
    subscription_identifiers: &'a [u32],
    /// `[key, value]` pairs: order and repeated keys are kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    user_properties: Vec<[&'a str; 2]>,
}

fn no_ids(ids: &&[u32]) -> bool {
    ids.is_empty()
}

/// Text if UTF-8, else base64; with the name of the encoding used.
fn text_or_base64(bytes: &Bytes) -> (&'static str, String) {
    match std::str::from_utf8(bytes) {
        Ok(s) => ("utf8", s.to_owned()),
        Err(_) => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ),
    }
}

/// The `--json` line of a message (without the newline).
pub fn midge_json(msg: &Received, pretty: bool) -> String {
    let p = &msg.publish;
    let props = &p.properties;
    let (payload_encoding, payload) = text_or_base64(&p.payload);
    let correlation = props.correlation_data.as_ref().map(text_or_base64);
    let value = MidgeJson {
        time: msg.time.rfc3339_micros(),
        topic: &msg.topic,
        qos: p.qos as u8,
        retain: p.retain,
        payload_encoding,
        payload,
        properties: MidgeProps {
            payload_format_indicator: props.payload_format_indicator,
            message_expiry_interval: props.message_expiry_interval,
            topic_alias: props.topic_alias,
            content_type: props.content_type.as_deref(),
            response_topic: props.response_topic.as_deref(),
            correlation_data_encoding: correlation.as_ref().map(|c| c.0),
            correlation_data: correlation.map(|c| c.1),
            subscription_identifiers: &props.subscription_identifiers,
            user_properties: props
                .user_properties
                .iter()
                .map(|(k, v)| [&**k, &**v])
                .collect(),
        },
    };
    to_string(&value, pretty)
}

/// mosquitto's `%j` object; with `parse_payload` (`%J`) a payload that is
/// valid JSON is embedded as JSON rather than as a string.
#[derive(Serialize)]
struct MosquittoJson<'a> {
    tst: String,
    topic: &'a str,
    qos: u8,
    retain: u8,
    payloadlen: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    mid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<MosquittoProps<'a>>,
    payload: serde_json::Value,
}

struct MosquittoProps<'a>(&'a Properties);

impl Serialize for MosquittoProps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = s.serialize_map(None)?;
        if let Some(v) = p.payload_format_indicator {
            map.serialize_entry("payload-format-indicator", &v)?;
        }
        if let Some(v) = p.message_expiry_interval {
            map.serialize_entry("message-expiry-interval", &v)?;
        }
        if let Some(v) = &p.content_type {
            map.serialize_entry("content-type", &**v)?;
        }
        if let Some(v) = &p.response_topic {
            map.serialize_entry("response-topic", &**v)?;
        }
        if let Some(v) = &p.correlation_data {
            map.serialize_entry("correlation-data", &String::from_utf8_lossy(v))?;
        }
        if let Some(v) = p.subscription_identifiers.first() {
            map.serialize_entry("subscription-identifier", v)?;
        }
        if let Some(v) = p.topic_alias {
            map.serialize_entry("topic-alias", &v)?;
        }
        if !p.user_properties.is_empty() {
            map.serialize_entry("user-properties", &UserProps(&p.user_properties))?;
        }
        map.end()
    }
}

struct UserProps<'a>(&'a [(bytestring::ByteString, bytestring::ByteString)]);

impl Serialize for UserProps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(&**k, &**v)?;
        }
        map.end()
    }
}

fn has_publish_properties(p: &Properties) -> bool {
    p.payload_format_indicator.is_some()
        || p.message_expiry_interval.is_some()
        || p.content_type.is_some()
        || p.response_topic.is_some()
        || p.correlation_data.is_some()
        || !p.subscription_identifiers.is_empty()
        || p.topic_alias.is_some()
        || !p.user_properties.is_empty()
}

/// `%j` (`parse_payload` false) or `%J` (true).
pub fn mosquitto_json(msg: &Received, parse_payload: bool, pretty: bool) -> String {
    let p = &msg.publish;
    let text = String::from_utf8_lossy(&p.payload);
    let payload = if parse_payload {
        serde_json::from_slice(&p.payload)
            .unwrap_or_else(|_| serde_json::Value::String(text.into_owned()))
    } else {
        serde_json::Value::String(text.into_owned())
    };
    let value = MosquittoJson {
        tst: msg.time.mosquitto_tst(),
        topic: &msg.topic,
        qos: p.qos as u8,
        retain: u8::from(p.retain),
        payloadlen: p.payload.len(),
        mid: (p.pkid != 0).then_some(p.pkid),
        properties: has_publish_properties(&p.properties).then_some(MosquittoProps(&p.properties)),
        payload,
    };
    to_string(&value, pretty)
}

fn to_string<T: Serialize>(value: &T, pretty: bool) -> String {
    let result = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    // Serializing plain structs of strings and numbers into a String cannot
    // fail; an empty object is still valid output should it ever.
    result.unwrap_or_else(|_| "{}".to_owned())
}
