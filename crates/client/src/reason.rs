//! Human-readable texts for CONNACK return codes and MQTT 5.0 reason codes,
//! worded as libmosquitto words them so scripts that match them keep working.

use midge_proto::ReasonCode;

/// The text of an MQTT 3.1/3.1.1 CONNACK return code.
pub fn connack_v3_string(code: u8) -> &'static str {
    match code {
        0 => "Connection Accepted.",
        1 => "Connection Refused: unacceptable protocol version.",
        2 => "Connection Refused: identifier rejected.",
        3 => "Connection Refused: broker unavailable.",
        4 => "Connection Refused: bad user name or password.",
        5 => "Connection Refused: not authorised.",
        _ => "Connection Refused: unknown reason.",
    }
}

/// The text of an MQTT 5.0 reason code.
pub fn reason_string(reason: &ReasonCode) -> &'static str {
    use ReasonCode::*;
    match reason {
        Success => "Success",
        GrantedQoS1 => "Granted QoS 1",
        GrantedQoS2 => "Granted QoS 2",
        DisconnectWithWillMessage => "Disconnect with Will Message",
        NoMatchingSubscribers => "No matching subscribers",
        NoSubscriptionExisted => "No subscription existed",
        ContinueAuthentication => "Continue authentication",
        ReAuthenticate => "Re-authenticate",
        UnspecifiedError => "Unspecified error",
        MalformedPacket => "Malformed Packet",
        ProtocolError => "Protocol Error",
        ImplementationSpecificError => "Implementation specific error",
        UnsupportedProtocolVersion => "Unsupported Protocol Version",
        ClientIdentifierNotValid => "Client Identifier not valid",
        BadUserNameOrPassword => "Bad User Name or Password",
        NotAuthorized => "Not authorized",
        ServerUnavailable => "Server unavailable",
        ServerBusy => "Server busy",
        Banned => "Banned",
        ServerShuttingDown => "Server shutting down",
        BadAuthenticationMethod => "Bad authentication method",
        KeepAliveTimeout => "Keep Alive timeout",
        SessionTakenOver => "Session taken over",
        TopicFilterInvalid => "Topic Filter invalid",
        TopicNameInvalid => "Topic Name invalid",
        PacketIdentifierInUse => "Packet Identifier in use",
        PacketIdentifierNotFound => "Packet Identifier not found",
        ReceiveMaximumExceeded => "Receive Maximum exceeded",
        TopicAliasInvalid => "Topic Alias invalid",
        PacketTooLarge => "Packet too large",
        MessageRateTooHigh => "Message rate too high",
        QuotaExceeded => "Quota exceeded",
        AdministrativeAction => "Administrative action",
        PayloadFormatInvalid => "Payload format invalid",
        RetainNotSupported => "Retain not supported",
        QoSNotSupported => "QoS not supported",
        UseAnotherServer => "Use another server",
        ServerMoved => "Server moved",
        SharedSubscriptionsNotSupported => "Shared Subscriptions not supported",
        ConnectionRateExceeded => "Connection rate exceeded",
        MaximumConnectTime => "Maximum connect time",
        SubscriptionIdentifiersNotSupported => "Subscription identifiers not supported",
        WildcardSubscriptionsNotSupported => "Wildcard Subscriptions not supported",
    }
}
