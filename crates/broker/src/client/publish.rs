//! Inbound PUBLISH: topic alias, topic and QoS checks, authorization,
//! the QoS 1/2 acknowledgements and routing.

use std::cell::Cell;
use std::time::Instant;

use bytes::BytesMut;
use midge_proto::{topic, Publish, QoS, ReasonCode};

use super::{Client, Exit};
use crate::message::Message;
use crate::persist::{Durable, Pending};
use crate::routing::Scratch;
use crate::session::Qos2Publish;

thread_local! {
    /// The routing scratch (matched subscriptions of one publish), reused by
    /// every client on this thread rather than kept by each (24 bytes of
    /// every idle connection). Taken and put back, so a nested dispatch
    /// gets an empty one instead of a borrow error.
    static SCRATCH: Cell<Scratch> = const { Cell::new(Vec::new()) };
}

impl Client {
    pub(super) fn on_publish(&mut self, p: Publish, out: &mut BytesMut) -> Result<(), Exit> {
        self.tally.publish_received += 1;
        let cfg = self.broker.config();
        if !p.properties.subscription_identifiers.is_empty() {
            // Only the server sends those [MQTT-3.3.4-6].
            return Err(Exit::error(ReasonCode::ProtocolError));
        }
        let topic = if self.v5() {
            self.aliases
                .resolve(&p.topic, p.properties.topic_alias)
                .map_err(Exit::error)?
        } else {
            p.topic.clone()
        };
        if topic::validate_name_with_limit(&topic, cfg.max_topic_levels).is_err() {
            return Err(Exit::error(ReasonCode::TopicNameInvalid));
        }
        if p.qos > cfg.maximum_qos {
            return Err(Exit::error(ReasonCode::QoSNotSupported));
        }
        if p.retain && !cfg.retain_available {
            return Err(Exit::error(ReasonCode::RetainNotSupported));
        }
        let mut allowed = self
            .broker
            .inner
            .hooks
            .authorize_publish(&self.client_ref(), &topic);
        let mut denied = if self.v5() {
            ReasonCode::NotAuthorized
        } else {
            ReasonCode::Success
        };
        if allowed
            && p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            // The publisher promised UTF-8 and broke it: not forwarded
            // [MQTT-3.3.2-4], answered 0x99 (QoS 1/2).
            allowed = false;
            denied = ReasonCode::PayloadFormatInvalid;
        }
        match p.qos {
            QoS::AtMostOnce => {
                if allowed {
                    // Nothing waits: a retained QoS 0 message is written
                    // detached.
                    let _ = self.route(p, topic, None);
                }
                Ok(())
            }
            // The acknowledgement goes once the writes of the message (if
            // any) are durable: see `persist/acks.rs`.
            QoS::AtLeastOnce => {
                let pkid = p.pkid;
                let (pending, reason) = if allowed {
                    (self.route(p, topic, None), ReasonCode::Success)
                } else {
                    (None, denied)
                };
                self.acknowledge_publish(pending, pkid, false, reason, out)
            }
            QoS::ExactlyOnce => {
                let pkid = p.pkid;
                if !allowed {
                    return self.acknowledge_publish(None, pkid, true, denied, out);
                }
                let state = self
                    .session
                    .state
                    .lock()
                    .inbound
                    .publish(pkid, cfg.receive_maximum.max(1));
                let pending = match state {
                    Qos2Publish::New => self.route(p, topic, Some(pkid)),
                    Qos2Publish::Duplicate => None,
                    Qos2Publish::ReceiveMaximumExceeded => {
                        return Err(Exit::error(ReasonCode::ReceiveMaximumExceeded))
                    }
                };
                self.acknowledge_publish(pending, pkid, true, ReasonCode::Success, out)
            }
        }
    }

    /// Routes the message; returns its store writes to wait for (QoS 1/2,
    /// when any). `incoming`: the QoS 2 id to keep until PUBREL.
    fn route(
        &mut self,
        p: Publish,
        topic: bytestring::ByteString,
        incoming: Option<u16>,
    ) -> Option<Pending> {
        let mut properties = p.properties;
        properties.topic_alias = None;
        let msg = Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            publisher: Some(self.client_id.clone()),
            received_at: Instant::now(),
            stored: Default::default(),
        };
        let mut durable = Durable::default();
        if let Some(pkid) = incoming {
            self.broker
                .inner
                .persist_incoming(&self.session, pkid, &mut durable);
        }
        let wait = msg.qos != QoS::AtMostOnce;
        let inner = &self.broker.inner;
        let mut scratch = SCRATCH.take();
        inner.dispatch_from(msg, &mut scratch, &mut self.tally, &mut durable);
        SCRATCH.set(scratch);
        inner.submit_durable(durable, wait)
    }
}
