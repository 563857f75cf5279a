//! The broker rebuilt from the store at start: every stored session comes
//! back offline (subscriptions in the index, queue, in-flight messages to
//! resend with DUP, inbound QoS 2 ids), with its expiry deadline counted
//! from when it was last connected; retained messages come back; wills are
//! published now or scheduled for what remains of their delay. A session
//! that was online when midge stopped lost its connection without a
//! DISCONNECT: its will goes too, after its delay. Wills of sessions that
//! expired while midge was down are published now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_store::{Batch, InflightState, Op, Recovered, StoredMessage};

use super::convert;
use crate::broker::Inner;
use crate::index::SubInfo;
use crate::message::Message;
use crate::session::outbound::Inflight;
use crate::session::{Push, Session, Subscribed};
use crate::timers::PendingWill;

/// What was rebuilt, for the start-up log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Restored {
    pub sessions: usize,
    pub queued: usize,
    pub inflight: usize,
    pub retained: usize,
    pub wills_sent: usize,
    /// Queued messages past `max_queued_messages`, dropped.
    pub dropped: usize,
}

impl Inner {
    /// Rebuilds sessions, subscriptions, queues, retained messages and
    /// wills from `r` (the store's `load`). Call once, before any client
    /// connects.
    pub(crate) fn restore(&self, r: Recovered) -> Restored {
        let mut out = Restored::default();
        let Some(p) = &self.persist else {
            return out;
        };
        let now = Instant::now();
        let now_ms = midge_store::time::now_ms();
        let now_s = now_ms / 1000;
        // One message for every reference to a stored body, as before.
        let mut messages: HashMap<u64, Arc<Message>> = HashMap::new();
        let mut message = |m: &Arc<StoredMessage>| {
            messages
                .entry(m.id)
                .or_insert_with(|| Arc::new(convert::message_from(m, now_ms)))
                .clone()
        };
        let mut wills_now = Vec::new();
        let mut cleanup = Batch::new();
        let mut max_id = 0;
        for rs in r.sessions {
            max_id = max_id.max(rs.id.0);
            let rec = &rs.record;
            let client_id: Arc<str> = Arc::from(&*rec.client_id);
            let session = Arc::new(Session::with_gauge(
                rs.id.0,
                client_id.clone(),
                rec.protocol,
                self.config.max_queued_messages,
                self.stored.clone(),
            ));
            session.set_username(rec.username.as_deref().map(Arc::from));
            session.set_persisted(true);
            let expiry = rec.expiry_interval;
            let since = rec.disconnected_at.unwrap_or(now_s);
            {
                let mut st = session.state.lock();
                st.expiry_interval = expiry;
                for q in &rs.queue {
                    let d = convert::delivery_from(&q.delivery, message(&q.delivery.msg));
                    if st.outbound.push(d) == Push::Queued {
                        out.queued += 1;
                    } else {
                        out.dropped += 1;
                        cleanup.push(Op::Dequeue {
                            session: rs.id,
                            seq: q.seq,
                        });
                    }
                }
                for i in &rs.inflight {
                    let state = match &i.state {
                        InflightState::Publish(d) => {
                            Inflight::Publish(convert::delivery_from(d, message(&d.msg)))
                        }
                        InflightState::PubRel => Inflight::PubRel,
                    };
                    st.outbound.restore_inflight(i.pkid, state);
                    out.inflight += 1;
                }
                for pkid in &rs.incoming {
                    st.inbound.publish(*pkid, u16::MAX);
                }
                for sub in &rs.subscriptions {
                    st.subscriptions.insert(
                        sub.filter.clone(),
                        Subscribed {
                            options: sub.options,
                            id: sub.id,
                        },
                    );
                }
                if expiry != u32::MAX {
                    let end = since.saturating_add(u64::from(expiry));
                    let at = now + Duration::from_secs(end.saturating_sub(now_s));
                    st.expires_at = Some(at);
                    self.timers
                        .lock()
                        .schedule_expiry(at, session.id, client_id.clone());
                }
            }
            {
                let mut idx = self.index.write();
                for sub in &rs.subscriptions {
                    let info = SubInfo {
                        qos: sub.options.qos,
                        no_local: sub.options.no_local,
                        retain_as_published: sub.options.retain_as_published,
                        id: sub.id,
                    };
                    idx.subscribe(&sub.filter, session.id, session.clone(), info);
                }
            }
            if let Some(w) = &rs.will {
                // Armed when midge stopped: the connection ended then.
                let delay = w.delay.min(expiry);
                let due_ms = w
                    .due_at_ms
                    .unwrap_or_else(|| since * 1000 + u64::from(delay) * 1000);
                let msg = convert::will_message(w);
                if due_ms <= now_ms {
                    wills_now.push(msg);
                    cleanup.push(Op::DeleteWill(rs.id));
                } else {
                    let due = now + Duration::from_millis(due_ms - now_ms);
                    self.timers
                        .lock()
                        .schedule_will(client_id.clone(), PendingWill { due, msg });
                    if w.due_at_ms.is_none() {
                        // Now waiting, no longer armed.
                        cleanup.push(Op::PutWill(
                            rs.id,
                            Box::new(midge_store::WillRecord {
                                due_at_ms: Some(due_ms),
                                ..w.clone()
                            }),
                        ));
                    }
                }
            }
            // A session that was online has just been given its disconnect
            // time (the last commit): written down, so that another restart
            // does not move it.
            cleanup.push(Op::PutSession(rs.id, rec.clone()));
            self.sessions.lock().insert(client_id, session);
            out.sessions += 1;
        }
        {
            let mut retained = self.retained.write();
            for m in &r.retained {
                retained.set(message(m));
                out.retained += 1;
            }
        }
        self.ids_above(max_id);
        if !cleanup.is_empty() {
            p.store.submit_detached(cleanup);
        }
        self.timers_changed.notify_one();
        // Last, so that recovered subscribers get them.
        for w in r.due_wills {
            wills_now.push(convert::will_message(&w));
        }
        out.wills_sent = wills_now.len();
        for msg in wills_now {
            self.publish_will(msg);
        }
        out
    }
}
