//! Session lifecycle: attach a connection to a (new or resumed) session
//! with takeover, detach it, end sessions (clean or expired), and wills
//! (immediate or delayed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_proto::{Protocol, ReasonCode};

use crate::broker::Inner;
use crate::event::DropReason;
use crate::message::Message;
use crate::session::{Outbound, Owner, Peer, Session, WillState};
use crate::timers::PendingWill;

/// What the new connection needs to know about the session it got.
#[derive(Debug)]
pub(crate) struct Opened {
    pub session: Arc<Session>,
    pub present: bool,
}

/// The connection-side facts [`Inner::open_session`] needs.
#[derive(Debug)]
pub(crate) struct Attach {
    pub client_id: Arc<str>,
    pub protocol: Protocol,
    pub clean_start: bool,
    pub expiry: u32,
    pub owner: Owner,
    pub will: Option<WillState>,
    pub username: Option<Arc<str>>,
    pub peer: Peer,
}

impl Inner {
    /// The connection attached to `client_id`'s session, if one is.
    fn attached_conn(&self, client_id: &str) -> Option<u64> {
        let reg = self.sessions.lock();
        let session = reg.get(client_id)?;
        let st = session.state.lock();
        st.owner.as_ref().map(|o| o.conn_id)
    }

    /// Takeover, first step: the connection attached to `client_id`'s
    /// session is told to go (Session taken over), handles what it has
    /// already received (a DISCONNECT that ends the session or changes its
    /// expiry, acknowledgements) and lets go of the session as any ending
    /// connection does. Waits for that, at most `limit`; `open_session`
    /// then attaches as after a reconnect, or takes the session by force
    /// if the old connection has not let go in time.
    pub async fn release_attached(&self, client_id: &str, limit: Duration) {
        let Some(old) = self.attached_conn(client_id) else {
            return;
        };
        let kick = self.conns.lock().get(&old).cloned();
        let Some(kick) = kick else {
            return;
        };
        let _ = kick.try_send(ReasonCode::SessionTakenOver);
        let until = tokio::time::Instant::now() + limit;
        loop {
            // Registered before looking, so that a release between the
            // look and the wait is not missed.
            let released = self.conn_done.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.attached_conn(client_id) != Some(old) {
                return;
            }
            if tokio::time::timeout_at(until, released).await.is_err() {
                tracing::debug!(client_id, "taken over before the old connection let go");
                return;
            }
        }
    }

    /// Attaches a connection to the session of its client id: resumes it
    /// (unless clean start), takes it over from a connection still attached
    /// (which is told to go with 0x8E), and settles wills the takeover or
    /// reconnect affects.
    pub fn open_session(&self, a: Attach) -> Opened {
        let mut kicked = None;
        let mut old_will = None;
        let mut ended = None;
        let (session, present) = {
            let mut reg = self.sessions.lock();
            let mut resumed = None;
            if let Some(old) = reg.get(&a.client_id).cloned() {
                let mut st = old.state.lock();
                if let Some(o) = st.owner.take() {
                    kicked = Some(o.conn_id);
                    old_will = st.will.take();
                }
                // A session whose interval is 0 ends with its connection,
                // which this takeover closes: it cannot be resumed (the old
                // connection's DISCONNECT may simply not be processed yet).
                let ends = a.clean_start || (kicked.is_some() && st.expiry_interval == 0);
                if ends {
                    st.ended = true;
                    drop(st);
                    old.set_online(false);
                    reg.remove(&a.client_id);
                    ended = Some(old);
                } else {
                    st.owner = Some(a.owner.clone());
                    st.will = a.will.clone().map(Box::new);
                    st.expiry_interval = a.expiry;
                    st.expires_at = None;
                    st.protocol = a.protocol;
                    st.peer = Some(a.peer.clone());
                    drop(st);
                    old.set_online(true);
                    resumed = Some(old);
                }
            }
            match resumed {
                Some(s) => (s, true),
                None => {
                    let s = Arc::new(Session::with_gauge(
                        self.next_id(),
                        a.client_id.clone(),
                        a.protocol,
                        self.config.max_queued_messages,
                        self.stored.clone(),
                    ));
                    {
                        let mut st = s.state.lock();
                        st.owner = Some(a.owner);
                        st.will = a.will.map(Box::new);
                        st.expiry_interval = a.expiry;
                        st.peer = Some(a.peer);
                    }
                    s.set_online(true);
                    reg.insert(a.client_id.clone(), s.clone());
                    (s, false)
                }
            }
        };
        session.set_username(a.username);
        if let Some(conn_id) = kicked {
            if let Some(tx) = self.conns.lock().get(&conn_id) {
                let _ = tx.try_send(ReasonCode::SessionTakenOver);
            }
        }
        let session_ended = ended.is_some();
        if let Some(old) = ended {
            self.end_session(&old);
        }
        self.persist_attached(&session);
        // The taken-over connection's will: a session that goes on within
        // the will delay cancels it [MQTT-3.1.3-9]; otherwise it goes now.
        if let Some(w) = old_will {
            if session_ended || w.delay == 0 {
                self.publish_will(w.msg);
            }
        }
        // A will still waiting from an earlier connection: cancelled by this
        // reconnect, or due now if the session it belonged to just ended.
        let pending = self.timers.lock().take_will(&a.client_id);
        if let Some(p) = pending {
            if session_ended {
                self.publish_will(p.msg);
            }
        }
        Opened { session, present }
    }

    /// Detaches connection `conn_id` from `session` when it ends. Does
    /// nothing if another connection took the session over. Ends a session
    /// whose expiry interval is 0 (one already ended by an administrative
    /// discard is over too), and publishes or schedules the will when
    /// `publish_will` (no DISCONNECT, or DISCONNECT 0x04).
    pub fn connection_closed(
        &self,
        session: &Arc<Session>,
        conn_id: u64,
        publish_will: bool,
        now: Instant,
    ) {
        let (will, ended, expiry, qos0_dropped) = {
            let mut reg = self.sessions.lock();
            let mut st = session.state.lock();
            if st.owner.as_ref().map(|o| o.conn_id) != Some(conn_id) {
                return;
            }
            st.owner = None;
            session.set_online(false);
            let will = st.will.take();
            let expiry = st.expiry_interval;
            let ended = expiry == 0 || st.ended;
            let mut qos0_dropped = 0;
            if ended {
                st.ended = true;
                drop(st);
                if reg
                    .get(&session.client_id)
                    .is_some_and(|s| s.id == session.id)
                {
                    reg.remove(&session.client_id);
                }
            } else {
                // Offline sessions keep QoS 1/2 only.
                qos0_dropped = st.outbound.drop_queued_qos0();
                if expiry != u32::MAX {
                    let at = now + Duration::from_secs(u64::from(expiry));
                    st.expires_at = Some(at);
                    drop(st);
                    self.timers
                        .lock()
                        .schedule_expiry(at, session.id, session.client_id.clone());
                    self.timers_changed.notify_one();
                }
            }
            (will, ended, expiry, qos0_dropped)
        };
        self.note_drops(session, DropReason::Offline, qos0_dropped as u64);
        if ended {
            self.end_session(session);
        } else {
            let sent = will.as_ref().filter(|_| publish_will);
            self.persist_detached(session, sent.map(|w| (&**w, w.delay.min(expiry))));
        }
        let Some(w) = will.filter(|_| publish_will) else {
            return;
        };
        let delay = w.delay.min(expiry);
        if ended || delay == 0 {
            self.publish_will(w.msg);
            return;
        }
        let pending = PendingWill {
            due: now + Duration::from_secs(u64::from(delay)),
            msg: w.msg,
        };
        let replaced = self
            .timers
            .lock()
            .schedule_will(session.client_id.clone(), pending);
        self.timers_changed.notify_one();
        if let Some(r) = replaced {
            self.publish_will(r.msg);
        }
    }

    /// Cleans up after a session that is over: its subscriptions leave the
    /// index and unacknowledged shared-subscription messages go to other
    /// members.
    pub fn end_session(&self, session: &Session) {
        let (filters, shared) = {
            let mut st = session.state.lock();
            st.ended = true;
            let filters: Vec<_> = st.subscriptions.drain().map(|(f, _)| f).collect();
            let shared = st.outbound.take_shared();
            // What is left is discarded with the session (and leaves the
            // stored gauge); late deliveries are ignored once `ended`.
            st.outbound = Outbound::new(0);
            (filters, shared)
        };
        self.persist_ended(session);
        if !filters.is_empty() {
            let mut idx = self.index.write();
            for f in &filters {
                idx.unsubscribe(f, session.id);
            }
        }
        self.redeliver_shared(session, shared);
    }

    /// Publishes a will now; its expiry counts from now.
    pub fn publish_will(&self, mut msg: Message) {
        msg.received_at = Instant::now();
        let mut scratch = Vec::new();
        self.dispatch(msg, &mut scratch);
    }

    /// Publishes due wills and ends expired sessions.
    pub fn fire_timers(&self, now: Instant) {
        let (wills, expiries) = {
            let mut t = self.timers.lock();
            (t.due_wills(now), t.due_expiries(now))
        };
        for w in wills {
            self.persist_will_sent(w.msg.publisher.as_deref());
            self.publish_will(w.msg);
        }
        for (session_id, client_id) in expiries {
            let expired = {
                let mut reg = self.sessions.lock();
                let Some(s) = reg.get(&client_id).filter(|s| s.id == session_id).cloned() else {
                    continue;
                };
                let mut st = s.state.lock();
                match st.expires_at {
                    Some(at) if st.owner.is_none() && at <= now => {}
                    _ => continue,
                }
                st.ended = true;
                drop(st);
                reg.remove(&client_id);
                s
            };
            self.end_session(&expired);
            // At the latest when the session ends, its will goes.
            let pending = self.timers.lock().take_will(&client_id);
            if let Some(p) = pending {
                self.publish_will(p.msg);
            }
        }
    }

    /// The earliest timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.lock().next_deadline()
    }
}
