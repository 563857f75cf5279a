//! Session lifecycle in the store: a persistent session is written when a
//! connection attaches (with that connection's will, armed) and when it
//! leaves (with its disconnect time and the will's due time); it is
//! removed, with everything it holds, when it ends. Nobody waits for these
//! writes: the store applies batches in submission order, so later writes
//! about the session (subscriptions, queue entries) come after them.

use midge_store::{Batch, Op, SessionId};

use super::convert;
use crate::broker::Inner;
use crate::session::{Session, WillState};

impl Inner {
    /// After a connection attached to `session`: stores it (online, with
    /// its connection's will) if its expiry interval is above 0; removes it
    /// if it was stored and no longer is persistent.
    pub(crate) fn persist_attached(&self, session: &Session) {
        let Some(p) = &self.persist else {
            return;
        };
        let id = SessionId(session.id);
        let batch = {
            let st = session.state.lock();
            if st.ended {
                return;
            }
            if st.expiry_interval > 0 {
                session.set_persisted(true);
                let will = match &st.will {
                    Some(w) => Op::PutWill(id, Box::new(convert::will_record(w, None))),
                    None => Op::DeleteWill(id),
                };
                Batch::from(vec![
                    Op::PutSession(id, convert::session_record(session, &st, None)),
                    will,
                ])
            } else if session.set_persisted(false) {
                Batch::from(Op::DeleteSession(id))
            } else {
                return;
            }
        };
        p.store.submit_detached(batch);
    }

    /// After the connection of a session that goes on left: its disconnect
    /// time (expiry counts from there, downtime included) and its will,
    /// waiting for `delay` seconds (`will`: the will that was published or
    /// scheduled, if any).
    pub(crate) fn persist_detached(&self, session: &Session, will: Option<(&WillState, u32)>) {
        let Some(p) = &self.persist else {
            return;
        };
        if !session.is_persisted() {
            return;
        }
        let now_ms = midge_store::time::now_ms();
        let id = SessionId(session.id);
        let record = {
            let st = session.state.lock();
            convert::session_record(session, &st, Some(now_ms / 1000))
        };
        let will = match will {
            // A will sent at once has nothing left to wait for.
            Some((w, delay)) if delay > 0 => Op::PutWill(
                id,
                Box::new(convert::will_record(
                    w,
                    Some(now_ms + u64::from(delay) * 1000),
                )),
            ),
            _ => Op::DeleteWill(id),
        };
        p.store
            .submit_detached(Batch::from(vec![Op::PutSession(id, record), will]));
    }

    /// A session that is over: the store forgets it and all it held.
    pub(crate) fn persist_ended(&self, session: &Session) {
        if let Some(p) = &self.persist {
            if session.set_persisted(false) {
                p.store
                    .submit_detached(Batch::from(Op::DeleteSession(SessionId(session.id))));
            }
        }
    }

    /// Expired queued and retained messages leave the store too (now and
    /// then: it scans the stored messages).
    pub(crate) fn persist_purge(&self) {
        if let Some(p) = &self.persist {
            p.store.submit_detached(Batch::from(Op::PurgeExpired {
                now_ms: midge_store::time::now_ms(),
            }));
        }
    }

    /// A delayed will was published: its session (still waiting for its
    /// client) no longer has one.
    pub(crate) fn persist_will_sent(&self, client_id: Option<&str>) {
        let (Some(p), Some(client_id)) = (&self.persist, client_id) else {
            return;
        };
        let session = self.sessions.lock().get(client_id).cloned();
        if let Some(s) = session.filter(|s| s.is_persisted()) {
            p.store
                .submit_detached(Batch::from(Op::DeleteWill(SessionId(s.id))));
        }
    }
}
