//! Property identifiers and the packets that may carry each one
//! (MQTT 5.0 §2.2.2.2, table "Properties").

/// Property identifiers.
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Where a property block sits: each packet type with properties, plus the
/// will properties inside CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u8]) -> u64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < ids.len() {
        m |= 1u64 << ids[i];
        i += 1;
    }
    m
}

use id::*;

const ACK: u64 = bits(&[REASON_STRING, USER_PROPERTY]);

const CONNECT: u64 = bits(&[
    SESSION_EXPIRY_INTERVAL,
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
    REQUEST_PROBLEM_INFORMATION,
    REQUEST_RESPONSE_INFORMATION,
    RECEIVE_MAXIMUM,
    TOPIC_ALIAS_MAXIMUM,
    USER_PROPERTY,
    MAXIMUM_PACKET_SIZE,
]);

const WILL: u64 = bits(&[
    PAYLOAD_FORMAT_INDICATOR,
    MESSAGE_EXPIRY_INTERVAL,
    CONTENT_TYPE,
    RESPONSE_TOPIC,
    CORRELATION_DATA,
    WILL_DELAY_INTERVAL,
    USER_PROPERTY,
]);

const CONNACK: u64 = bits(&[
    SESSION_EXPIRY_INTERVAL,
    ASSIGNED_CLIENT_IDENTIFIER,
    SERVER_KEEP_ALIVE,
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
    RESPONSE_INFORMATION,
    SERVER_REFERENCE,
    REASON_STRING,
    RECEIVE_MAXIMUM,
    TOPIC_ALIAS_MAXIMUM,
    MAXIMUM_QOS,
    RETAIN_AVAILABLE,
    USER_PROPERTY,
    MAXIMUM_PACKET_SIZE,
    WILDCARD_SUBSCRIPTION_AVAILABLE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    SHARED_SUBSCRIPTION_AVAILABLE,
]);

const PUBLISH: u64 = bits(&[
    PAYLOAD_FORMAT_INDICATOR,
    MESSAGE_EXPIRY_INTERVAL,
    CONTENT_TYPE,
    RESPONSE_TOPIC,
    CORRELATION_DATA,
    SUBSCRIPTION_IDENTIFIER,
    TOPIC_ALIAS,
    USER_PROPERTY,
]);

const SUBSCRIBE: u64 = bits(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]);
const UNSUBSCRIBE: u64 = bits(&[USER_PROPERTY]);

const DISCONNECT: u64 = bits(&[
    SESSION_EXPIRY_INTERVAL,
    SERVER_REFERENCE,
    REASON_STRING,
    USER_PROPERTY,
]);

const AUTH: u64 = bits(&[
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
    REASON_STRING,
    USER_PROPERTY,
]);

impl PropertyContext {
    /// Bit `n` set when property identifier `n` may appear here.
    #[inline]
    pub const fn allowed_mask(self) -> u64 {
        match self {
            PropertyContext::Connect => CONNECT,
            PropertyContext::Will => WILL,
            PropertyContext::ConnAck => CONNACK,
            PropertyContext::Publish => PUBLISH,
            PropertyContext::PubAck
            | PropertyContext::PubRec
            | PropertyContext::PubRel
            | PropertyContext::PubComp
            | PropertyContext::SubAck
            | PropertyContext::UnsubAck => ACK,
            PropertyContext::Subscribe => SUBSCRIBE,
            PropertyContext::Unsubscribe => UNSUBSCRIBE,
            PropertyContext::Disconnect => DISCONNECT,
            PropertyContext::Auth => AUTH,
        }
    }

    /// True when property identifier `id` may appear here.
    #[inline]
    pub const fn allows(self, id: u8) -> bool {
        id < 64 && self.allowed_mask() & (1u64 << id) != 0
    }

    /// Every context, for tests and table-driven callers.
    pub const ALL: [PropertyContext; 14] = [
        PropertyContext::Connect,
        PropertyContext::Will,
        PropertyContext::ConnAck,
        PropertyContext::Publish,
        PropertyContext::PubAck,
        PropertyContext::PubRec,
        PropertyContext::PubRel,
        PropertyContext::PubComp,
        PropertyContext::Subscribe,
        PropertyContext::SubAck,
        PropertyContext::Unsubscribe,
        PropertyContext::UnsubAck,
        PropertyContext::Disconnect,
        PropertyContext::Auth,
    ];
}

/// Every defined identifier.
pub(crate) const KNOWN: u64 = CONNECT | WILL | CONNACK | PUBLISH | SUBSCRIBE | DISCONNECT | AUTH;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_set_has_all_27_identifiers() {
        assert_eq!(KNOWN.count_ones(), 27);
    }

    #[test]
    fn user_property_allowed_everywhere_and_reason_string_not_in_requests() {
        for ctx in PropertyContext::ALL {
            assert!(ctx.allows(USER_PROPERTY), "{ctx:?}");
        }
        for ctx in [
            PropertyContext::Connect,
            PropertyContext::Will,
            PropertyContext::Publish,
            PropertyContext::Subscribe,
            PropertyContext::Unsubscribe,
        ] {
            assert!(!ctx.allows(REASON_STRING), "{ctx:?}");
        }
        assert!(PropertyContext::Will.allows(WILL_DELAY_INTERVAL));
        assert!(!PropertyContext::Publish.allows(WILL_DELAY_INTERVAL));
        assert!(!PropertyContext::Connect.allows(64));
    }
}
