//! The publish path's writes. Routing a QoS 1/2 message gathers one batch:
//! a queue entry for every persistent session it goes to, the retained
//! topic, the publisher's inbound QoS 2 id. Sessions that are not stored
//! get their delivery at once, as without a store. Stored sessions get it
//! only once the batch is durable (a client's publish: with its PUBACK,
//! see `acks.rs`; nobody waits for an internal publish: right after the
//! submission). So a message the store refused reaches no stored session,
//! and the store always has a queue entry before the session's own writes
//! about it (sent, acknowledged): batches apply in submission order.

use std::sync::Arc;

use midge_proto::QoS;
use midge_store::{Batch, Commit, Op, SessionId};

use super::convert;
use crate::broker::Inner;
use crate::event::DropReason;
use crate::hooks::ClientRef;
use crate::message::Message;
use crate::session::{Delivery, Session};

/// Deliveries to stored sessions, waiting for their queue entries.
pub(crate) type Later = Vec<(Arc<Session>, Delivery)>;

/// The store writes of one publish, gathered while it is routed.
#[derive(Debug, Default)]
pub(crate) struct Durable {
    batch: Batch,
    later: Later,
}

/// A publish whose writes were submitted: the commit to wait for, and the
/// deliveries to queue once it is in.
#[derive(Debug)]
pub(crate) struct Pending {
    pub commit: Commit,
    pub later: Later,
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

    /// Submits the writes of a publish. With `wait`, returns the commit to
    /// wait for before acknowledging, with the deliveries to queue then
    /// ([`Inner::queue_later`]); without, queues them now. `None`: nothing
    /// to write.
    pub(crate) fn submit_durable(&self, durable: Durable, wait: bool) -> Option<Pending> {
        let Durable { batch, later } = durable;
        let Some(p) = self.persist.as_ref().filter(|_| !batch.is_empty()) else {
            // Nothing to write means nothing waits (`later` is empty).
            self.queue_later(later);
            return None;
        };
        if wait {
            return Some(Pending {
                commit: p.store.submit(batch),
                later,
            });
        }
        p.store.submit_detached(batch);
        self.queue_later(later);
        None
    }

    /// Queues deliveries whose queue entries are in the store.
    pub(crate) fn queue_later(&self, later: Later) {
        for (session, d) in later {
            self.queue_stored(&session, d);
        }
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
