//! The codec's one error type.

use crate::ReasonCode;

/// Why bytes did not become a packet (or a packet did not become bytes).
///
/// `Incomplete` is not a failure: the caller reads more and tries again.
/// Every other variant means the connection must be closed, and
/// [`Error::reason_code`] says which MQTT 5.0 reason code to send first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("incomplete packet: at least {0} more bytes needed")]
    Incomplete(usize),
    #[error("packet of {size} bytes exceeds the maximum packet size of {max}")]
    PacketTooLarge { size: usize, max: usize },
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    #[error("topic alias invalid")]
    TopicAliasInvalid,
}

impl Error {
    /// The MQTT 5.0 reason code a server sends in DISCONNECT (or CONNACK)
    /// before closing the connection for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Error::Incomplete(_) | Error::Malformed(_) => ReasonCode::MalformedPacket,
            Error::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Error::Protocol(_) => ReasonCode::ProtocolError,
            Error::UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            Error::TopicAliasInvalid => ReasonCode::TopicAliasInvalid,
        }
    }
}
