//! Messages as JSON, both ways: the publish request body (HTTP and
//! Socket.IO) checked and turned into a PUBLISH, and a received message
//! turned into the JSON object SSE, long polling and Socket.IO deliver.
//!
//! Payloads that are UTF-8 travel as `payload` (text); others as
//! `payload_base64`. Correlation data is always base64.

use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use midge_broker::Message;
use midge_proto::{topic, Properties, Publish, QoS};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::session::Incoming;

/// `POST /api/v1/publish` and the Socket.IO `publish` event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub topic: String,
    /// The payload as text (UTF-8).
    #[serde(default)]
    pub payload: Option<String>,
    /// Any JSON value, sent as its JSON text.
    #[serde(default)]
    pub payload_json: Option<serde_json::Value>,
    /// Binary payload, base64.
    #[serde(default)]
    pub payload_base64: Option<String>,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub response_topic: Option<String>,
    /// base64
    #[serde(default)]
    pub correlation_data: Option<String>,
    #[serde(default)]
    pub message_expiry_interval: Option<u32>,
    #[serde(default)]
    pub payload_format_indicator: Option<u8>,
    /// `[[key, value], ...]`
    #[serde(default)]
    pub user_properties: Vec<(String, String)>,
}

/// What a publish is checked against.
#[derive(Debug, Clone, Copy)]
pub struct PublishLimits {
    pub max_payload: usize,
    pub max_topic_levels: usize,
    pub maximum_qos: QoS,
    pub retain_available: bool,
}

/// The largest string field MQTT can carry.
const MAX_FIELD: usize = 65_535;

fn field(name: &str, v: &str) -> Result<(), ApiError> {
    if v.len() > MAX_FIELD {
        return Err(ApiError::BadRequest(format!(
            "{name} is longer than {MAX_FIELD} bytes"
        )));
    }
    if v.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "{name} contains a NUL character"
        )));
    }
    Ok(())
}

impl PublishRequest {
    /// Checks everything the broker would refuse (it would close the
    /// session instead of answering) and builds the PUBLISH.
    pub fn into_publish(self, limits: &PublishLimits) -> Result<Publish, ApiError> {
        topic::validate_name_with_limit(&self.topic, limits.max_topic_levels)
            .map_err(|e| ApiError::BadTopic(format!("{:?}: {e}", self.topic)))?;
        if self.topic.len() > MAX_FIELD {
            return Err(ApiError::BadTopic("longer than 65,535 bytes".into()));
        }
        let qos = QoS::from_u8(self.qos).ok_or_else(|| {
            ApiError::BadRequest(format!("qos must be 0, 1 or 2, not {}", self.qos))
        })?;
        if qos > limits.maximum_qos {
            return Err(ApiError::BadRequest(format!(
                "qos {} is above the broker's maximum QoS {}",
                self.qos, limits.maximum_qos as u8
            )));
        }
        if self.retain && !limits.retain_available {
            return Err(ApiError::BadRequest(
                "retained messages are not available on this broker".into(),
            ));
        }
        let given = [
            self.payload.is_some(),
            self.payload_json.is_some(),
            self.payload_base64.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given > 1 {
            return Err(ApiError::BadRequest(
                "give at most one of payload, payload_json, payload_base64".into(),
            ));
        }
        let payload: Bytes = if let Some(t) = self.payload {
            Bytes::from(t)
        } else if let Some(j) = self.payload_json {
            Bytes::from(j.to_string())
        } else if let Some(b) = self.payload_base64 {
            Bytes::from(
                STANDARD
                    .decode(b.trim())
                    .map_err(|e| ApiError::BadRequest(format!("payload_base64: {e}")))?,
            )
        } else {
            Bytes::new()
        };
        if payload.len() > limits.max_payload {
            return Err(ApiError::TooLarge(format!(
                "payload of {} bytes is over the limit of {} bytes",
                payload.len(),
                limits.max_payload
            )));
        }
        let mut properties = Properties::default();
        if let Some(pfi) = self.payload_format_indicator {
            if pfi > 1 {
                return Err(ApiError::BadRequest(
                    "payload_format_indicator must be 0 or 1".into(),
                ));
            }
            if pfi == 1 && std::str::from_utf8(&payload).is_err() {
                return Err(ApiError::BadRequest(
                    "payload_format_indicator is 1 but the payload is not UTF-8".into(),
                ));
            }
            properties.payload_format_indicator = Some(pfi);
        }
        if let Some(ct) = self.content_type {
            field("content_type", &ct)?;
            properties.content_type = Some(ct.into());
        }
        if let Some(rt) = self.response_topic {
            topic::validate_name(&rt)
                .map_err(|e| ApiError::BadRequest(format!("response_topic {rt:?}: {e}")))?;
            field("response_topic", &rt)?;
            properties.response_topic = Some(rt.into());
        }
        if let Some(cd) = self.correlation_data {
            let data = STANDARD
                .decode(cd.trim())
                .map_err(|e| ApiError::BadRequest(format!("correlation_data (base64): {e}")))?;
            if data.len() > MAX_FIELD {
                return Err(ApiError::BadRequest(
                    "correlation_data is longer than 65,535 bytes".into(),
                ));
            }
            properties.correlation_data = Some(Bytes::from(data));
        }
        properties.message_expiry_interval = self.message_expiry_interval;
        for (k, v) in self.user_properties {
            field("user property name", &k)?;
            field("user property value", &v)?;
            properties.user_properties.push((k.into(), v.into()));
        }
        Ok(Publish {
            dup: false,
            qos,
            retain: self.retain,
            topic: self.topic.into(),
            pkid: 0,
            payload,
            properties,
        })
    }
}

/// A delivered message, as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageJson {
    pub topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    pub qos: u8,
    pub retain: bool,
    pub properties: PropertiesJson,
}

/// The 5.0 properties a subscriber sees.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PropertiesJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_format_indicator: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
}

impl MessageJson {
    fn new(
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        p: &Properties,
        expiry: Option<u32>,
    ) -> Self {
        let (payload, payload_base64) = match std::str::from_utf8(payload) {
            Ok(t) => (Some(t.to_owned()), None),
            Err(_) => (None, Some(STANDARD.encode(payload))),
        };
        MessageJson {
            topic: topic.to_owned(),
            payload,
            payload_base64,
            qos: qos as u8,
            retain,
            properties: PropertiesJson {
                content_type: p.content_type.as_ref().map(|s| s.to_string()),
                response_topic: p.response_topic.as_ref().map(|s| s.to_string()),
                correlation_data: p.correlation_data.as_ref().map(|b| STANDARD.encode(b)),
                message_expiry_interval: expiry,
                payload_format_indicator: p.payload_format_indicator,
                user_properties: p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        }
    }

    /// A retained message read from the broker's store at `now`: its QoS
    /// as stored, and (as a subscriber would get it) the Message Expiry
    /// Interval that is left.
    pub fn retained(m: &Message, now: Instant) -> Self {
        let expiry = m.properties.message_expiry_interval.map(|secs| {
            let waited = now.saturating_duration_since(m.received_at).as_secs();
            secs.saturating_sub(u32::try_from(waited).unwrap_or(u32::MAX))
        });
        MessageJson::new(&m.topic, &m.payload, m.qos, true, &m.properties, expiry)
    }
}

impl From<&Incoming> for MessageJson {
    fn from(m: &Incoming) -> Self {
        let p = &m.properties;
        MessageJson::new(
            &m.topic,
            &m.payload,
            m.qos,
            m.retain,
            p,
            p.message_expiry_interval,
        )
    }
}

/// Checks a list of topic filters given by a client.
pub fn check_filters(filters: &[String], max_levels: usize) -> Result<(), ApiError> {
    if filters.is_empty() {
        return Err(ApiError::BadRequest(
            "give at least one topic filter (filter=...)".into(),
        ));
    }
    if filters.len() > 64 {
        return Err(ApiError::BadRequest("at most 64 topic filters".into()));
    }
    for f in filters {
        topic::validate_filter_with_limit(f, max_levels)
            .map_err(|e| ApiError::BadTopic(format!("filter {f:?}: {e}")))?;
        if f.len() > MAX_FIELD {
            return Err(ApiError::BadTopic("filter longer than 65,535 bytes".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PublishLimits {
        PublishLimits {
            max_payload: 16,
            max_topic_levels: 8,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
        }
    }

    fn req(json: serde_json::Value) -> Result<Publish, ApiError> {
        serde_json::from_value::<PublishRequest>(json)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
            .into_publish(&limits())
    }

    #[test]
    fn payload_forms() {
        let p = req(serde_json::json!({"topic": "a/b", "payload": "hi", "qos": 1})).expect("ok");
        assert_eq!(&p.payload[..], b"hi");
        assert_eq!(p.qos, QoS::AtLeastOnce);
        let p = req(serde_json::json!({"topic": "a", "payload_json": {"x": 1}})).expect("ok");
        assert_eq!(&p.payload[..], br#"{"x":1}"#);
        let p = req(serde_json::json!({"topic": "a", "payload_base64": "AAE="})).expect("ok");
        assert_eq!(&p.payload[..], &[0, 1]);
        assert!(
            req(serde_json::json!({"topic": "a", "payload": "x", "payload_base64": "AA=="}))
                .is_err()
        );
    }

    #[test]
    fn refusals_say_what() {
        let e = req(serde_json::json!({"topic": "a/+"})).unwrap_err();
        assert_eq!(e.code(), "bad_topic");
        let e = req(serde_json::json!({"topic": "a", "qos": 3})).unwrap_err();
        assert!(e.to_string().contains("qos"));
        let e = req(serde_json::json!({"topic": "a", "payload": "x".repeat(17)})).unwrap_err();
        assert_eq!(e.code(), "too_large");
        let e = req(serde_json::json!({"topic": "a", "payload_base64": "AP8=", "payload_format_indicator": 1})).unwrap_err();
        assert!(e.to_string().contains("UTF-8"));
        assert!(req(serde_json::json!({"topic": "a", "bogus": 1})).is_err());
    }

    #[test]
    fn properties_round_trip() {
        let p = req(serde_json::json!({
            "topic": "a", "payload": "x", "content_type": "text/plain",
            "response_topic": "r/1", "correlation_data": "AQI=",
            "message_expiry_interval": 60, "payload_format_indicator": 1,
            "user_properties": [["k", "v"]]
        }))
        .expect("ok");
        let m = Incoming {
            topic: p.topic.to_string(),
            payload: p.payload.clone(),
            qos: p.qos,
            retain: p.retain,
            properties: p.properties.clone(),
        };
        let j = MessageJson::from(&m);
        assert_eq!(j.properties.correlation_data.as_deref(), Some("AQI="));
        assert_eq!(j.properties.user_properties, vec![("k".into(), "v".into())]);
        assert_eq!(j.payload.as_deref(), Some("x"));
        let bin = Incoming {
            payload: Bytes::from_static(&[0xff]),
            ..m
        };
        assert_eq!(
            MessageJson::from(&bin).payload_base64.as_deref(),
            Some("/w==")
        );
    }

    #[test]
    fn retained_messages_show_the_expiry_left() {
        let mut m = Message::new("a/b", Bytes::from_static(&[0xff]), QoS::AtLeastOnce, true);
        m.properties.message_expiry_interval = Some(60);
        let later = m.received_at + std::time::Duration::from_secs(25);
        let j = MessageJson::retained(&m, later);
        assert_eq!(j.properties.message_expiry_interval, Some(35));
        assert_eq!((j.qos, j.retain), (1, true));
        assert_eq!(j.payload_base64.as_deref(), Some("/w=="));
        assert_eq!(j.payload, None);
    }
}
