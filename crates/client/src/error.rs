//! The client's one error type and the mosquitto-compatible exit code of each.

use midge_proto::ReasonCode;

use crate::reason::{connack_v3_string, reason_string};

/// Exit code mosquitto_sub uses when `-W` expires (`MOSQ_ERR_TIMEOUT`).
pub const EXIT_TIMEOUT: i32 = 27;
/// Exit code for a connection lost after CONNACK (`MOSQ_ERR_CONN_LOST`).
pub const EXIT_CONN_LOST: i32 = 7;

/// Why `midge pub` / `midge sub` stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad command line: the message says which option and why.
    #[error("Error: {0}")]
    Usage(String),
    #[error("Error: {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker could not be reached (TCP, TLS or WebSocket handshake).
    #[error("Error: {0}")]
    Connect(String),
    #[error("Error: TLS: {0}")]
    Tls(String),
    /// CONNACK of MQTT 3.1/3.1.1 with a non-zero return code.
    #[error("Connection error: {}", connack_v3_string(*.0))]
    RefusedV3(u8),
    /// CONNACK of MQTT 5.0 with an error reason code.
    #[error("Connection error: {}", reason_string(.0))]
    RefusedV5(ReasonCode),
    #[error("Timed out")]
    Timeout,
    #[error("Error: connection lost: {0}")]
    ConnectionLost(String),
    /// The broker sent DISCONNECT (MQTT 5.0) with this reason.
    #[error("Disconnected by the broker: {}{}", reason_string(.reason), .detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    DisconnectedByBroker {
        reason: ReasonCode,
        detail: Option<String>,
    },
    #[error("Error: protocol: {0}")]
    Protocol(String),
    /// Every SUBSCRIBE filter was refused.
    #[error("All subscription requests were denied.")]
    AllSubscriptionsDenied,
    /// Some publishes were refused (MQTT 5.0 PUBACK/PUBREC reason codes).
    #[error("Error: {0} publish(es) refused by the broker")]
    PublishFailed(usize),
    #[error("Error: {0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// The process exit code, as mosquitto_pub/mosquitto_sub would return it.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::RefusedV3(code) => i32::from(*code),
            ClientError::RefusedV5(reason) => i32::from(*reason as u8),
            ClientError::Timeout => EXIT_TIMEOUT,
            ClientError::ConnectionLost(_) => EXIT_CONN_LOST,
            ClientError::DisconnectedByBroker { reason, .. } if reason.is_error() => {
                i32::from(*reason as u8)
            }
            _ => 1,
        }
    }
}

impl From<midge_proto::Error> for ClientError {
    fn from(e: midge_proto::Error) -> Self {
        ClientError::Protocol(e.to_string())
    }
}
