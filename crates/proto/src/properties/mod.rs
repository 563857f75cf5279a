//! MQTT 5.0 properties: every identifier, its data type, where it may appear.
//!
//! The struct lives here; [`codec`] reads and writes a property block and
//! [`rules`] says which identifiers each packet may carry (MQTT 5.0
//! §2.2.2.2).

use bytes::Bytes;
use bytestring::ByteString;

mod codec;
mod rules;

pub(crate) use codec::{read, write};
pub use rules::{id, PropertyContext};

/// All MQTT 5.0 properties of one packet. Absent properties are `None` or
/// empty. Before 5.0 packets carry no properties and this stays default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    /// 0x01 Payload Format Indicator (byte).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval (four byte integer, seconds).
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type (UTF-8 string).
    pub content_type: Option<ByteString>,
    /// 0x08 Response Topic (UTF-8 string).
    pub response_topic: Option<ByteString>,
    /// 0x09 Correlation Data (binary data).
    pub correlation_data: Option<Bytes>,
    /// 0x0B Subscription Identifier (variable byte integer, 1..=268,435,455);
    /// may repeat in PUBLISH from server to client.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11 Session Expiry Interval (four byte integer, seconds).
    pub session_expiry_interval: Option<u32>,
    /// 0x12 Assigned Client Identifier (UTF-8 string).
    pub assigned_client_identifier: Option<ByteString>,
    /// 0x13 Server Keep Alive (two byte integer).
    pub server_keep_alive: Option<u16>,
    /// 0x15 Authentication Method (UTF-8 string).
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data (binary data).
    pub authentication_data: Option<Bytes>,
    /// 0x17 Request Problem Information (byte 0/1).
    pub request_problem_information: Option<u8>,
    /// 0x18 Will Delay Interval (four byte integer, seconds).
    pub will_delay_interval: Option<u32>,
    /// 0x19 Request Response Information (byte 0/1).
    pub request_response_information: Option<u8>,
    /// 0x1A Response Information (UTF-8 string).
    pub response_information: Option<ByteString>,
    /// 0x1C Server Reference (UTF-8 string).
    pub server_reference: Option<ByteString>,
    /// 0x1F Reason String (UTF-8 string).
    pub reason_string: Option<ByteString>,
    /// 0x21 Receive Maximum (two byte integer, non-zero).
    pub receive_maximum: Option<u16>,
    /// 0x22 Topic Alias Maximum (two byte integer).
    pub topic_alias_maximum: Option<u16>,
    /// 0x23 Topic Alias (two byte integer, non-zero).
    pub topic_alias: Option<u16>,
    /// 0x24 Maximum QoS (byte 0/1).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available (byte 0/1).
    pub retain_available: Option<u8>,
    /// 0x26 User Property (UTF-8 string pair); may repeat, order kept.
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// 0x27 Maximum Packet Size (four byte integer, non-zero).
    pub maximum_packet_size: Option<u32>,
    /// 0x28 Wildcard Subscription Available (byte 0/1).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifier Available (byte 0/1).
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A Shared Subscription Available (byte 0/1).
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Length of the property block as encoded in `ctx`, without its own
    /// length prefix. Properties `ctx` does not allow are not counted (the
    /// encoder leaves them out).
    pub fn encoded_len(&self, ctx: PropertyContext) -> usize {
        codec::content_len(self, ctx)
    }

    /// Length of the property block in `ctx` including its variable byte
    /// integer length prefix.
    pub fn encoded_len_with_prefix(&self, ctx: PropertyContext) -> usize {
        let n = self.encoded_len(ctx);
        crate::varint_len(n as u32) + n
    }
}
