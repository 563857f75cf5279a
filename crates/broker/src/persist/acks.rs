//! Acknowledgements that wait for the store: PUBACK/PUBREC of a publish
//! whose writes are not durable yet, SUBACK/UNSUBACK of stored
//! subscriptions. They wait in one FIFO per connection, because MQTT wants
//! PUBACKs in the order the PUBLISHes came [MQTT-4.6.0-2]: an acknowledgement
//! that needs no commit still goes after those waiting before it. The
//! connection polls the head's commit and writes what is ready; past
//! [`MAX_DEFERRED`] waiting it stops reading the client (back pressure from
//! the disk).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use midge_proto::{Packet, PubResp, ReasonCode, SubAck, SubscriptionOptions, UnsubAck};
use midge_store::{Commit, CommitError};

use super::{Later, Pending};
use crate::client::{Client, Exit};
use crate::session::Subscribed;

/// Acknowledgements waiting per connection before it stops reading.
pub(crate) const MAX_DEFERRED: usize = 1024;

/// A subscription granted by a SUBSCRIBE whose SUBACK waits: its retained
/// messages follow the SUBACK.
#[derive(Debug)]
pub(crate) struct Granted {
    pub filter: ByteString,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
    pub is_new: bool,
    /// The subscription this one replaced: restored if the store refuses.
    pub previous: Option<Subscribed>,
}

/// What to send once the commit is in.
#[derive(Debug)]
pub(crate) enum Action {
    /// PUBACK (QoS 1) or PUBREC (QoS 2) with `reason` when the writes are
    /// durable.
    Publish {
        pkid: u16,
        qos2: bool,
        reason: ReasonCode,
        /// Its deliveries to stored sessions, queued once it is durable.
        later: Later,
    },
    Subscribe {
        ack: SubAck,
        granted: Vec<Granted>,
    },
    Unsubscribe {
        ack: UnsubAck,
        /// The subscriptions removed, with their options: put back if the
        /// store refuses to remove them.
        removed: Vec<(ByteString, Subscribed)>,
    },
    /// PUBCOMP once a stored inbound QoS 2 id is durably gone; PUBREL once
    /// a stored outbound message's PUBREL state is durable.
    Release(Packet),
    /// Encoded PUBLISH packets, among them QoS 2 ones of a stored session,
    /// once their move to in flight is durable (`note_sent`). The session
    /// queue is not drained meanwhile, so later messages stay behind them.
    Deliver(Bytes),
}

#[derive(Debug)]
struct Entry {
    commit: Option<Commit>,
    result: Result<(), CommitError>,
    action: Action,
}

/// The FIFO of acknowledgements waiting.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    // Boxed, created on first use: only connections of stored sessions
    // ever wait for the store, and this lives in every connection task
    // (8 bytes instead of a 40-byte `Waiting` in each idle connection).
    waiting: Option<Box<Waiting>>,
}

#[derive(Debug, Default)]
struct Waiting {
    entries: VecDeque<Entry>,
    /// How many of them are [`Action::Deliver`].
    deliveries: usize,
}

impl Waiting {
    fn popped(&mut self, e: &Entry) {
        if matches!(e.action, Action::Deliver(_)) {
            self.deliveries -= 1;
        }
    }
}

impl Deferred {
    pub fn len(&self) -> usize {
        self.waiting.as_ref().map_or(0, |w| w.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether deliveries wait in the queue (then no more may be drained).
    pub fn holds_deliveries(&self) -> bool {
        self.waiting.as_ref().is_some_and(|w| w.deliveries > 0)
    }

    pub fn push(&mut self, commit: Option<Commit>, action: Action) {
        let w = self.waiting.get_or_insert_default();
        if matches!(action, Action::Deliver(_)) {
            w.deliveries += 1;
        }
        w.entries.push_back(Entry {
            commit,
            result: Ok(()),
            action,
        });
    }

    /// Ready when the head may be sent (its commit resolved, or it had
    /// none); registers for the wake-up otherwise.
    pub fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(head) = self.waiting.as_mut().and_then(|w| w.entries.front_mut()) else {
            return Poll::Pending;
        };
        let Some(commit) = &mut head.commit else {
            return Poll::Ready(());
        };
        match Pin::new(commit).poll(cx) {
            Poll::Ready(r) => {
                head.result = r;
                head.commit = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Everything waiting, whatever its commit.
    fn drain(&mut self) -> impl Iterator<Item = Action> + '_ {
        self.waiting
            .iter_mut()
            .flat_map(|w| {
                w.deliveries = 0;
                w.entries.drain(..)
            })
            .map(|e| e.action)
    }

    /// The head, if it may be sent, with its commit's outcome.
    fn pop_ready(&mut self) -> Option<(Result<(), CommitError>, Action)> {
        let w = self.waiting.as_mut()?;
        let head = w.entries.front_mut()?;
        if let Some(commit) = &mut head.commit {
            head.result = commit.try_result()?;
            head.commit = None;
        }
        let e = w.entries.pop_front()?;
        w.popped(&e);
        Some((e.result, e.action))
    }
}

impl Client {
    /// Sends `action` once `commit` is durable and everything before it
    /// went; at once when there is nothing to wait for.
    pub(crate) fn after_commit(
        &mut self,
        commit: Option<Commit>,
        action: Action,
        out: &mut BytesMut,
    ) -> Result<(), Exit> {
        if commit.is_none() && self.deferred.is_empty() {
            return self.acknowledge(Ok(()), action, out);
        }
        self.deferred.push(commit, action);
        Ok(())
    }

    /// PUBACK (QoS 1) or PUBREC (QoS 2) with `reason`, once `pending` (the
    /// message's store writes, if any) is durable; its deliveries to stored
    /// sessions are queued then.
    pub(crate) fn acknowledge_publish(
        &mut self,
        pending: Option<Pending>,
        pkid: u16,
        qos2: bool,
        reason: ReasonCode,
        out: &mut BytesMut,
    ) -> Result<(), Exit> {
        let (commit, later) = match pending {
            Some(p) => (Some(p.commit), p.later),
            None => (None, Vec::new()),
        };
        let action = Action::Publish {
            pkid,
            qos2,
            reason,
            later,
        };
        self.after_commit(commit, action, out)
    }

    /// Ready when an acknowledgement can be written ([`Client::flush_deferred`]).
    pub(crate) fn poll_deferred(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.deferred.poll_head(cx)
    }

    /// Writes the acknowledgements whose commits are in, in order.
    pub(crate) fn flush_deferred(&mut self, out: &mut BytesMut) -> Result<(), Exit> {
        while let Some((result, action)) = self.deferred.pop_ready() {
            self.acknowledge(result, action, out)?;
        }
        Ok(())
    }

    /// At the end of the connection: waits up to `limit` for the commits
    /// still pending, so that their deliveries reach the stored sessions
    /// and their acknowledgements go with the last write. If the store does
    /// not answer in time, the deliveries are queued anyway (a message
    /// twice rather than lost) and the acknowledgements dropped.
    pub(crate) async fn settle_deferred(&mut self, out: &mut BytesMut, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while !self.deferred.is_empty() {
            let head = std::future::poll_fn(|cx| self.deferred.poll_head(cx));
            if tokio::time::timeout_at(until, head).await.is_err() {
                tracing::warn!(
                    client_id = &*self.client_id,
                    waiting = self.deferred.len(),
                    "store commits still pending at disconnect"
                );
                for action in self.deferred.drain() {
                    if let Action::Publish { later, .. } = action {
                        self.broker.inner.queue_later(later);
                    }
                }
                return;
            }
            // A refusal that would close the connection: it closes anyway.
            let _ = self.flush_deferred(out);
        }
    }

    /// Whether the client may be read: not too many acknowledgements wait
    /// for the disk.
    pub(crate) fn may_read(&self) -> bool {
        self.deferred.len() < MAX_DEFERRED
    }

    fn acknowledge(
        &mut self,
        result: Result<(), CommitError>,
        action: Action,
        out: &mut BytesMut,
    ) -> Result<(), Exit> {
        match action {
            Action::Publish {
                pkid,
                qos2,
                reason,
                later,
            } => {
                let reason = match result {
                    Ok(()) => {
                        self.broker.inner.queue_later(later);
                        reason
                    }
                    // Refused: no stored session gets it.
                    Err(e) => self.publish_refused(&e, pkid, qos2)?,
                };
                let mut ack = PubResp::new(pkid);
                ack.reason = reason;
                let p = if qos2 {
                    Packet::PubRec(ack)
                } else {
                    Packet::PubAck(ack)
                };
                self.send(&p, out)
            }
            Action::Subscribe { mut ack, granted } => {
                if let Err(e) = result {
                    // Not durable: not granted either (3.x: 0x80 Failure).
                    let code = self.refused(&e, "SUBSCRIBE");
                    let code = if self.protocol.is_v5() {
                        code
                    } else {
                        ReasonCode::UnspecifiedError
                    };
                    for r in ack.reasons.iter_mut().filter(|r| !r.is_error()) {
                        *r = code;
                    }
                    // The store keeps what it had: memory goes back to it.
                    for g in &granted {
                        self.restore_subscription(&g.filter, g.previous);
                    }
                    return self.send(&Packet::SubAck(ack), out);
                }
                self.send(&Packet::SubAck(ack), out)?;
                // Retained messages follow the SUBACK through the session
                // queue, so flow control and ordering apply to them too.
                for g in granted {
                    self.broker.inner.send_retained(
                        &self.session,
                        &g.filter,
                        g.options,
                        g.id,
                        g.is_new,
                    );
                }
                Ok(())
            }
            Action::Deliver(bytes) => {
                if let Err(e) = result {
                    // Sent all the same: held back, the client would wait
                    // for them until it reconnects. A crash before the
                    // store recovers may then deliver them twice.
                    self.refused(&e, "QoS 2 delivery");
                }
                out.extend_from_slice(&bytes);
                Ok(())
            }
            Action::Release(packet) => {
                if let Err(e) = result {
                    // The old state may come back after a restart; the
                    // exchange goes on all the same.
                    self.refused(&e, "QoS 2 release");
                }
                self.send(&packet, out)
            }
            Action::Unsubscribe { mut ack, removed } => {
                if let Err(e) = result {
                    // Still in the store: put back in memory as well, so
                    // that the session the client sees now is the one a
                    // restart brings back.
                    let code = self.refused(&e, "UNSUBSCRIBE");
                    for (filter, was) in &removed {
                        self.restore_subscription(filter, Some(*was));
                    }
                    if !self.protocol.is_v5() {
                        // A 3.x UNSUBACK cannot say no: closed without it,
                        // as for a refused PUBLISH.
                        return Err(Exit::refused_v3(code));
                    }
                    for r in ack.reasons.iter_mut() {
                        if *r == ReasonCode::Success {
                            *r = code;
                        }
                    }
                }
                self.send(&Packet::UnsubAck(ack), out)
            }
        }
    }

    /// A publish whose writes failed: 5.0 gets the reason code (0x97 store
    /// full, 0x80 write failure); 3.x has no way to say no, so the
    /// connection closes without acknowledging and the client sends again.
    fn publish_refused(
        &mut self,
        e: &CommitError,
        pkid: u16,
        qos2: bool,
    ) -> Result<ReasonCode, Exit> {
        let code = self.refused(e, "PUBLISH");
        if qos2 {
            // Not received after all: the client's retry is a new message.
            self.session.state.lock().inbound.release(pkid);
        }
        if self.protocol.is_v5() {
            Ok(code)
        } else {
            Err(Exit::refused_v3(code))
        }
    }

    /// Puts `filter` back as the store still has it after a refused
    /// SUBSCRIBE or UNSUBSCRIBE: subscribed as `was`, or not at all.
    fn restore_subscription(&self, filter: &ByteString, was: Option<Subscribed>) {
        let inner = &self.broker.inner;
        match was {
            Some(was) => {
                inner.subscribe(&self.session, filter, was.options, was.id);
            }
            None => {
                inner.unsubscribe(&self.session, filter);
            }
        }
    }

    fn refused(&self, e: &CommitError, what: &str) -> ReasonCode {
        match &self.broker.inner.persist {
            Some(p) => p.refused(e, &self.client_id, what),
            None => ReasonCode::UnspecifiedError,
        }
    }
}
