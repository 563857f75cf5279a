//! The store writes of one connection's QoS exchanges with a stored
//! session: a message leaving the queue for the wire, acknowledged,
//! released, abandoned; an inbound QoS 2 id released. Nobody waits for
//! them (a crash before they land means a message sent again, which QoS 1
//! and 2 allow): they gather in the connection's batch and go to the store
//! once per turn of its loop ([`Client::flush_store`]).

use bytestring::ByteString;
use midge_proto::QoS;
use midge_store::{
    Batch, Commit, InflightRecord, InflightState, Op, SessionId, SubscriptionRecord,
};

use super::{convert, Granted, Persist};
use crate::client::Client;
use crate::session::outbound::Inflight;
use crate::session::{Outgoing, Session, Subscribed};

/// Notes in `ops` that `o` left the queue of `session` for the wire (QoS
/// 1/2 of a stored session): its queue entry becomes an in-flight one.
/// Called under the session's state lock, so it only builds ops.
///
/// Returns true for a QoS 2 message: its PUBLISH must not reach the client
/// before the move is durable. After a crash a message still queued is
/// sent with a new packet id, which a QoS 1 receiver may see twice (as QoS
/// 1 allows) but a QoS 2 receiver would take for a second message.
pub(crate) fn note_sent(
    persist: Option<&Persist>,
    session: &Session,
    o: &Outgoing,
    ops: &mut Batch,
) -> bool {
    let (Some(p), Outgoing::Publish { pkid, delivery, .. }) = (persist, o) else {
        return false;
    };
    if *pkid == 0 || delivery.qos == QoS::AtMostOnce || !session.is_persisted() {
        return false;
    }
    let msg = p.message(&delivery.msg);
    let id = SessionId(session.id);
    let seq = msg.id;
    ops.push(Op::Dequeue { session: id, seq });
    ops.push(Op::PutInflight(
        id,
        InflightRecord {
            pkid: *pkid,
            seq,
            state: InflightState::Publish(convert::delivery_record(delivery, msg)),
        },
    ));
    delivery.qos == QoS::ExactlyOnce
}

impl Client {
    fn stored(&self) -> Option<SessionId> {
        (self.broker.inner.persist.is_some() && self.session.is_persisted())
            .then_some(SessionId(self.session.id))
    }

    /// PUBACK from the client.
    pub(crate) fn puback_stored(&mut self, pkid: u16) {
        let done = self.session.state.lock().outbound.puback(pkid);
        if let (true, Some(session)) = (done, self.stored()) {
            self.store_ops.push(Op::DeleteInflight { session, pkid });
        }
    }

    /// PUBCOMP from the client.
    pub(crate) fn pubcomp_stored(&mut self, pkid: u16) {
        let done = self.session.state.lock().outbound.pubcomp(pkid);
        if let (true, Some(session)) = (done, self.stored()) {
            self.store_ops.push(Op::DeleteInflight { session, pkid });
        }
    }

    /// PUBREC from the client: whether PUBREL should be sent, and the
    /// commit it must wait for. The stored in-flight entry moves on to
    /// PUBREL (same place in the send order), or goes if the client refused
    /// the message.
    pub(crate) fn pubrec_stored(&mut self, pkid: u16, failed: bool) -> (bool, Option<Commit>) {
        let (send_rel, seq) = {
            let mut st = self.session.state.lock();
            // Only a PUBLISH moving on is news; a repeated PUBREC is not.
            let seq = match st.outbound.inflight_state(pkid) {
                Some(Inflight::Publish(d)) if d.qos == QoS::ExactlyOnce => {
                    d.msg.stored.get().map(|m| m.id)
                }
                _ => None,
            };
            (st.outbound.pubrec(pkid, failed), seq)
        };
        let (Some(seq), Some(session)) = (seq, self.stored()) else {
            return (send_rel, None);
        };
        if !send_rel {
            self.store_ops.push(Op::DeleteInflight { session, pkid });
            return (false, None);
        }
        self.store_ops.push(Op::PutInflight(
            session,
            InflightRecord {
                pkid,
                seq,
                state: InflightState::PubRel,
            },
        ));
        (true, self.submit_store())
    }

    /// PUBREL from the client: whether the id was pending, and the commit
    /// of forgetting it (stored sessions) that PUBCOMP must wait for: once
    /// the client has PUBCOMP it may reuse the id for a new message, which
    /// a stale stored id would swallow as a duplicate after a crash.
    pub(crate) fn pubrel_stored(&mut self, pkid: u16) -> (bool, Option<Commit>) {
        let known = self.session.state.lock().inbound.release(pkid);
        match (known, self.stored()) {
            (true, Some(session)) => {
                self.store_ops.push(Op::DeleteIncoming { session, pkid });
                (known, self.submit_store())
            }
            _ => (known, None),
        }
    }

    /// An in-flight message that cannot be sent after all.
    pub(crate) fn abandon_stored(&mut self, pkid: u16) {
        self.session.state.lock().outbound.abandon(pkid);
        if let Some(session) = self.stored() {
            self.store_ops.push(Op::DeleteInflight { session, pkid });
        }
    }

    /// The granted subscriptions of a stored session, written in one batch
    /// (after this connection's pending writes); the commit the SUBACK
    /// waits for.
    pub(crate) fn store_subscriptions(&mut self, granted: &[Granted]) -> Option<Commit> {
        let session = self.stored()?;
        if granted.is_empty() {
            return None;
        }
        for g in granted {
            self.store_ops.push(Op::Subscribe(
                session,
                SubscriptionRecord {
                    filter: g.filter.clone(),
                    options: g.options,
                    id: g.id,
                },
            ));
        }
        self.submit_store()
    }

    /// The removed subscriptions of a stored session; the commit the
    /// UNSUBACK waits for.
    pub(crate) fn store_unsubscriptions(
        &mut self,
        removed: &[(ByteString, Subscribed)],
    ) -> Option<Commit> {
        let session = self.stored()?;
        if removed.is_empty() {
            return None;
        }
        for (f, _) in removed {
            self.store_ops.push(Op::Unsubscribe(session, f.clone()));
        }
        self.submit_store()
    }

    pub(crate) fn submit_store(&mut self) -> Option<Commit> {
        let ops = std::mem::take(&mut self.store_ops);
        let p = self.broker.inner.persist.as_ref()?;
        Some(p.store.submit(ops))
    }

    /// Submits the writes gathered since the last call (one batch).
    pub(crate) fn flush_store(&mut self) {
        if self.store_ops.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.store_ops);
        if let Some(p) = &self.broker.inner.persist {
            p.store.submit_detached(ops);
        }
    }
}
