//! midge-proto: the MQTT 3.1, 3.1.1 and 5.0 wire format.
//!
//! Pure: bytes in, packets out. No I/O, no clock, no global state. Strings and
//! payloads are zero-copy slices (`Bytes` / `ByteString`) of the read buffer.
//!
//! * [`check`] reads a fixed header and says how long the packet is, rejecting
//!   one over the maximum size before its body is buffered.
//! * [`decode`] parses one whole packet off the front of a buffer.
//! * [`encode`] writes one packet into a buffer.

pub mod error;
pub mod packet;
pub mod properties;
pub mod reason;
pub mod topic;

mod codec;
mod varint;
mod wire;

pub use bytes::{Bytes, BytesMut};
pub use bytestring::ByteString;
pub use codec::{check, decode, encode, encoded_len, FixedHeader, MAX_PACKET_LEN};
pub use error::Error;
pub use packet::*;
pub use properties::{Properties, PropertyContext};
pub use reason::ReasonCode;
pub use varint::{read_varint, varint_len, write_varint};
pub use wire::MAX_FIELD_LEN;

/// Largest remaining length a four-byte variable byte integer can express.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The protocol level carried in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5,
}

impl Protocol {
    pub fn level(self) -> u8 {
        match self {
            Protocol::V3_1 => 3,
            Protocol::V3_1_1 => 4,
            Protocol::V5 => 5,
        }
    }

    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }
}

/// Quality of service of a PUBLISH or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}
