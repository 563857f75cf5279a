//! The publish path's writes. Routing a QoS 1/2 message gathers one batch:
//! a queue entry for every persistent session it goes to, the retained
//! topic, the publisher's inbound QoS 2 id. The batch is submitted before
//! those sessions see the message, so that the store always gets a queue
//! entry before the session's own writes about it (sent, acknowledged):
//! store batches apply in submission order. Sessions that are not stored
//! get their delivery at once, as without a store.

use std::sync::Arc;

use midge_proto::QoS;
use midge_store::{Batch, Commit, Op, SessionId};

use super::convert;
use crate::broker::Inner;
use crate::event::DropReason;
use crate::hooks::ClientRef;
use crate::message::Message;
use crate::session::{Delivery, Session};

/// The store writes of one publish, gathered while it is routed.
#[derive(Debug, Default)]
pub(crate) struct Durable {
    batch: Batch,
    /// Deliveries to persistent sessions, queued once the batch with their
    /// queue entries is submitted.
    later: Vec<(Arc<Session>, Delivery)>,
}

impl Durable {
    pub fn push(&mut self, op: Op) {
        self.batch.push(op);
    }
}

impl Inner {
    /// Routes one delivery: one for a persistent session (QoS 1/2, with a
    /// store) gets its queue entry in `durable` and waits there; any other
    /// is queued now.
    pub(crate) fn deliver_routed(
        &self,
        session: &Arc<Session>,
        d: Delivery,
        durable: &mut Durable,
    ) -> bool {
        if let Some(p) = &self.persist {
            if d.qos != QoS::AtMostOnce && session.is_persisted() {
                if !self.may_deliver(session, &d) {
                    return false;
                }
                let msg = p.message(&d.msg);
                durable.batch.push(Op::Enqueue {
                    session: SessionId(session.id),
                    seq: msg.id,
                    delivery: convert::delivery_record(&d, msg),
                });
                durable.later.push((session.clone(), d));
                return true;
            }
        }
        self.deliver(session, d)
    }

    /// One delivery outside a publish (retained on subscribe, shared
    /// redelivery): written first when the session is stored.
    pub(crate) fn deliver_stored(&self, session: &Session, d: Delivery) -> bool {
        if let Some(p) = &self.persist {
            if d.qos != QoS::AtMostOnce && session.is_persisted() {
                if !self.may_deliver(session, &d) {
                    return false;
                }
                let msg = p.message(&d.msg);
                p.store.submit_detached(Batch::from(Op::Enqueue {
                    session: SessionId(session.id),
                    seq: msg.id,
                    delivery: convert::delivery_record(&d, msg),
                }));
                return self.queue_stored(session, d);
            }
        }
        self.deliver(session, d)
    }

    /// The retained topic's write (set, or cleared by an empty payload).
    pub(crate) fn persist_retained(&self, msg: &Arc<Message>, durable: &mut Durable) {
        let Some(p) = &self.persist else {
            return;
        };
        // The broker's own status is published again at start.
        if msg.topic.starts_with("$SYS/") {
            return;
        }
        if msg.payload.is_empty() {
            durable.push(Op::DeleteRetained(msg.topic.clone()));
        } else {
            durable.push(Op::SetRetained(p.message(msg)));
        }
    }

    /// An inbound QoS 2 id of a stored publisher, written with its message.
    pub(crate) fn persist_incoming(&self, session: &Session, pkid: u16, durable: &mut Durable) {
        if self.persist.is_some() && session.is_persisted() {
            durable.push(Op::PutIncoming {
                session: SessionId(session.id),
                pkid,
            });
        }
    }

    /// Submits the writes of a publish, then queues the deliveries that
    /// waited for them. With `wait`, returns the commit to wait for before
    /// acknowledging (`None`: nothing was written).
    pub(crate) fn submit_durable(&self, durable: Durable, wait: bool) -> Option<Commit> {
        let Durable { batch, later } = durable;
        let mut commit = None;
        if let Some(p) = &self.persist {
            if !batch.is_empty() {
                if wait {
                    commit = Some(p.store.submit(batch));
                } else {
                    p.store.submit_detached(batch);
                }
            }
        }
        for (session, d) in later {
            self.queue_stored(&session, d);
        }
        commit
    }

    /// Queues a delivery whose queue entry was submitted; if the session
    /// does not take it (queue full), the entry goes again.
    fn queue_stored(&self, session: &Session, d: Delivery) -> bool {
        let seq = d.msg.stored.get().map(|m| m.id);
        let queued = match session.deliver(d) {
            Ok(()) => true,
            Err(DropReason::Offline) => false,
            Err(reason) => {
                self.note_drops(session, reason, 1);
                false
            }
        };
        if let (false, Some(p), Some(seq)) = (queued, &self.persist, seq) {
            p.store.submit_detached(Batch::from(Op::Dequeue {
                session: SessionId(session.id),
                seq,
            }));
        }
        queued
    }

    /// `Hooks::authorize_deliver` for `d` to `session`.
    fn may_deliver(&self, session: &Session, d: &Delivery) -> bool {
        let username = session.username();
        let client = ClientRef {
            client_id: &session.client_id,
            username: username.as_deref(),
        };
        self.hooks.authorize_deliver(&client, &d.msg.topic)
    }
}
