//! CONNECT handling: protocol checks, client id rules, authentication,
//! limits, will validation, keep alive and session expiry negotiation, the
//! session attach (with takeover) and the CONNACK with its 5.0 properties.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use midge_proto::{topic, ConnAck, Connect, Properties, Protocol, QoS, ReasonCode};

use crate::auth::Credentials;
use crate::broker::Broker;
use crate::client::Client;
use crate::event::Event;
use crate::hooks::{AuthDecision, ClientRef, ConnectionInfo};
use crate::keepalive;
use crate::kick::Kick;
use crate::message::Message;
use crate::registry::Attach;
use crate::session::{Owner, Peer, WillState};

/// How long a CONNECT that takes a session over waits for the connection
/// holding it to let go (see `release_attached`); it is forced after that.
const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A refused CONNECT: the CONNACK to send before closing.
pub(crate) fn refusal(reason: ReasonCode) -> Box<ConnAck> {
    Box::new(ConnAck {
        session_present: false,
        reason,
        properties: Properties::default(),
    })
}

/// Assigned client ids: unique per broker run and across restarts in
/// practice (random prefix).
fn assign_client_id(broker: &Broker) -> Arc<str> {
    let r: u32 = rand::random();
    Arc::from(format!("midge-{r:08x}-{}", broker.inner.next_id()))
}

/// The will message a CONNECT carries, validated (5.0 reason on failure).
fn will_state(
    broker: &Broker,
    c: &Connect,
    client_id: &Arc<str>,
    username: Option<&str>,
) -> Result<Option<WillState>, ReasonCode> {
    let Some(w) = &c.will else {
        return Ok(None);
    };
    let cfg = broker.config();
    if topic::validate_name_with_limit(&w.topic, cfg.max_topic_levels).is_err() {
        return Err(ReasonCode::TopicNameInvalid);
    }
    if w.qos > cfg.maximum_qos {
        return Err(ReasonCode::QoSNotSupported);
    }
    if w.retain && !cfg.retain_available {
        return Err(ReasonCode::RetainNotSupported);
    }
    let who = ClientRef {
        client_id,
        username,
    };
    if !broker.inner.hooks.authorize_publish(&who, &w.topic) {
        return Err(ReasonCode::NotAuthorized);
    }
    let p = &w.properties;
    let properties = Properties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_properties.clone(),
        ..Properties::default()
    };
    Ok(Some(WillState {
        msg: Message {
            topic: w.topic.clone(),
            payload: w.payload.clone(),
            qos: w.qos,
            retain: w.retain,
            properties,
            publisher: Some(client_id.clone()),
            received_at: Instant::now(),
            stored: Default::default(),
        },
        delay: p.will_delay_interval.unwrap_or(0),
    }))
}

/// Accepts or refuses a CONNECT. On success the session is attached and
/// the returned client is ready; the caller sends the CONNACK. The only
/// await is the authentication hook, before anything is attached, so the
/// future may be dropped there (shutdown) without leaving state behind.
pub(crate) async fn connect(
    broker: &Broker,
    c: Connect,
    info: &ConnectionInfo,
    conn_id: u64,
    waker: Kick,
) -> Result<(Client, ConnAck), Box<ConnAck>> {
    let cfg = broker.config();
    let v5 = c.protocol.is_v5();
    if broker.inner.closing.load(Ordering::Relaxed) {
        return Err(refusal(ReasonCode::ServerShuttingDown));
    }
    if v5 && c.properties.authentication_method.is_some() {
        // No enhanced authentication method is configured.
        return Err(refusal(ReasonCode::BadAuthenticationMethod));
    }
    let mut assigned = None;
    let client_id: Arc<str> = if c.client_id.is_empty() {
        let allowed = cfg.allow_zero_length_client_id
            && match c.protocol {
                Protocol::V3_1 => false,
                // 3.1.1 needs clean session for an empty id [MQTT-3.1.3-8].
                Protocol::V3_1_1 => c.clean_start,
                // 5.0: assigned and treated as a new session either way.
                Protocol::V5 => true,
            };
        if !allowed {
            return Err(refusal(ReasonCode::ClientIdentifierNotValid));
        }
        let id = assign_client_id(broker);
        assigned = Some(id.clone());
        id
    } else {
        Arc::from(&*c.client_id)
    };
    let creds = Credentials {
        client_id: client_id.clone(),
        username: c.username.clone(),
        password: c.password.clone(),
        protocol: c.protocol,
    };
    let decision = crate::auth::authenticate(broker, creds, info).await;
    let username: Option<Arc<str>> = match decision {
        AuthDecision::Allow { username } => username.map(Arc::from),
        AuthDecision::Deny(reason) => {
            let reason = if reason.is_error() {
                reason
            } else {
                ReasonCode::NotAuthorized
            };
            return Err(refusal(reason));
        }
    };
    // After the (possibly slow) hook: keep alive counts from here.
    let now = Instant::now();
    let max = cfg.max_connections;
    if max > 0 && broker.inner.counters.connections.load(Ordering::Relaxed) > max {
        return Err(refusal(ReasonCode::ServerBusy));
    }
    let will = will_state(broker, &c, &client_id, username.as_deref()).map_err(refusal)?;
    let (keep_alive, server_keep_alive) = keepalive::negotiate(c.keep_alive, cfg.max_keepalive);
    let (expiry, expiry_capped) = if v5 {
        let asked = c.properties.session_expiry_interval.unwrap_or(0);
        (
            asked.min(cfg.max_session_expiry),
            asked > cfg.max_session_expiry,
        )
    } else if c.clean_start {
        (0, false)
    } else {
        (cfg.max_session_expiry, false)
    };
    let mut properties = Properties::default();
    if v5 {
        properties.receive_maximum = Some(cfg.receive_maximum.max(1));
        properties.maximum_packet_size = Some(cfg.max_packet_size);
        properties.topic_alias_maximum = Some(cfg.max_topic_alias);
        properties.retain_available = Some(u8::from(cfg.retain_available));
        if cfg.maximum_qos < QoS::ExactlyOnce {
            properties.maximum_qos = Some(cfg.maximum_qos as u8);
        }
        properties.wildcard_subscription_available = Some(1);
        properties.subscription_identifier_available = Some(1);
        properties.shared_subscription_available = Some(1);
        properties.server_keep_alive = server_keep_alive;
        properties.assigned_client_identifier = assigned.as_deref().map(ByteString::from);
        if expiry_capped {
            properties.session_expiry_interval = Some(expiry);
        }
    }
    // Even the CONNACK stays within the client's Maximum Packet Size
    // [MQTT-3.1.2-24]; decided before the session is attached, so that a
    // refusal leaves nothing behind.
    if let Some(max) = c.properties.maximum_packet_size.filter(|_| v5) {
        if !fit_connack(&mut properties, max) {
            return Err(refusal(ReasonCode::PacketTooLarge));
        }
    }
    // A 5.0 client without an id asked for nothing to resume.
    let clean_start = c.clean_start || assigned.is_some();
    if assigned.is_none() {
        broker
            .inner
            .release_attached(&client_id, TAKEOVER_WAIT)
            .await;
    }
    let opened = broker.inner.open_session(Attach {
        client_id: client_id.clone(),
        protocol: c.protocol,
        clean_start,
        expiry,
        owner: Owner { conn_id, waker },
        will,
        username: username.clone(),
        peer: Peer {
            remote_addr: info.remote_addr,
            listener: info.listener.clone(),
            transport: info.transport,
            clean_start: c.clean_start,
            keep_alive,
            connected_at: std::time::SystemTime::now(),
        },
    });
    let connack = ConnAck {
        session_present: opened.present,
        reason: ReasonCode::Success,
        properties,
    };
    broker.inner.emit(|| Event::ClientConnected {
        client_id: client_id.clone(),
        username: username.clone(),
        remote_addr: info.remote_addr,
        listener: info.listener.clone(),
        protocol: c.protocol,
        clean_start: c.clean_start,
        keep_alive,
        session_present: opened.present,
    });
    let client = Client::new(
        broker.clone(),
        opened.session,
        conn_id,
        &c,
        client_id,
        username,
        keep_alive,
        expiry,
        now,
    );
    Ok((client, connack))
}

/// Leaves out CONNACK properties until the packet fits in `max` bytes:
/// first those whose absence means the same (the `... Available = 1` flags),
/// then the Topic Alias Maximum (the client then sends no aliases). False
/// when the rest (limits the client must know, an assigned identifier)
/// still does not fit.
fn fit_connack(p: &mut Properties, max: u32) -> bool {
    let fits = |p: &Properties| {
        let ack = ConnAck {
            session_present: false,
            reason: ReasonCode::Success,
            properties: p.clone(),
        };
        midge_proto::encoded_len(&midge_proto::Packet::ConnAck(ack), Protocol::V5) <= max as usize
    };
    if fits(p) {
        return true;
    }
    p.shared_subscription_available = None;
    p.subscription_identifier_available = None;
    p.wildcard_subscription_available = None;
    if p.retain_available == Some(1) {
        p.retain_available = None;
    }
    if fits(p) {
        return true;
    }
    p.topic_alias_maximum = None;
    fits(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Properties {
        Properties {
            receive_maximum: Some(100),
            maximum_packet_size: Some(1 << 20),
            topic_alias_maximum: Some(10),
            retain_available: Some(1),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(1),
            shared_subscription_available: Some(1),
            ..Properties::default()
        }
    }

    fn len(p: &Properties) -> usize {
        let ack = ConnAck {
            session_present: false,
            reason: ReasonCode::Success,
            properties: p.clone(),
        };
        midge_proto::encoded_len(&midge_proto::Packet::ConnAck(ack), Protocol::V5)
    }

    #[test]
    fn connack_untouched_when_it_fits() {
        let mut p = full();
        assert!(fit_connack(&mut p, len(&full()) as u32));
        assert_eq!(p, full());
    }

    #[test]
    fn optional_properties_go_first_then_refusal() {
        // [MQTT-3.1.2-24]: what is left always fits, or the answer is no.
        let mut p = full();
        assert!(fit_connack(&mut p, 16));
        assert!(len(&p) <= 16);
        assert_eq!(p.receive_maximum, Some(100));
        assert_eq!(p.maximum_packet_size, Some(1 << 20));
        assert_eq!(p.wildcard_subscription_available, None);
        let mut p = full();
        p.retain_available = Some(0);
        assert!(fit_connack(&mut p, 20));
        assert_eq!(p.retain_available, Some(0), "Retain Available 0 is kept");
        let mut p = full();
        p.assigned_client_identifier = Some(ByteString::from("midge-0123456789abcdef"));
        assert!(!fit_connack(&mut p, 24));
    }
}
