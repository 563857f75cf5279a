//! Outbound: messages the session queued for this client become PUBLISH
//! packets (in-flight window, expiry, the client's Maximum Packet Size,
//! outbound topic aliases), and what was in flight is sent again after a
//! reconnect.

use std::cell::Cell;
use std::time::Instant;

use bytes::BytesMut;
use bytestring::ByteString;
use midge_proto::{encoded_len, Packet, Properties, PubResp, Publish};

use super::{Client, Exit};
use crate::alias::OutAlias;
use crate::event::DropReason;
use crate::outgoing::{encode_plain, Encoded};
use crate::persist::{note_sent, Action};
use crate::session::{Delivery, Outgoing};

/// Most queued messages taken per session lock.
const DRAIN_BATCH: usize = 64;

thread_local! {
    /// The batch being written, reused by every connection drained on this
    /// thread (a `Vec` in each client would be 24 bytes of every idle
    /// connection). Taken and put back, never borrowed across a call.
    static PENDING: Cell<Vec<Outgoing>> = const { Cell::new(Vec::new()) };
}

impl Client {
    /// Whether this connection still owns its session (not taken over).
    fn owns(&self, s: &crate::session::SessionState) -> bool {
        s.owner.as_ref().is_some_and(|o| o.conn_id == self.conn_id)
    }

    /// Sends again what was in flight when the session was last connected
    /// (PUBLISH with DUP, PUBREL), right after CONNACK.
    pub fn resend_inflight(&mut self, now: Instant, out: &mut BytesMut) -> Result<(), Exit> {
        let mut again = {
            let st = self.session.state.lock();
            if !self.owns(&st) {
                return Ok(());
            }
            st.outbound.resend()
        };
        self.write_pending(now, &mut again, out)
    }

    /// Moves queued messages the in-flight window allows into `out`, up to
    /// `limit` bytes. Returns true if more may be ready.
    pub fn drain(&mut self, now: Instant, out: &mut BytesMut, limit: usize) -> Result<bool, Exit> {
        let mut pending = PENDING.take();
        let r = self.drain_into(now, out, limit, &mut pending);
        pending.clear();
        PENDING.set(pending);
        r
    }

    fn drain_into(
        &mut self,
        now: Instant,
        out: &mut BytesMut,
        limit: usize,
        pending: &mut Vec<Outgoing>,
    ) -> Result<bool, Exit> {
        let mut more = false;
        // Deliveries waiting for the store go first (see `note_sent`).
        if self.deferred.holds_deliveries() {
            return Ok(false);
        }
        while out.len() < limit {
            let mut exactly_once = false;
            let expired = {
                let mut st = self.session.state.lock();
                if !self.owns(&st) {
                    return Ok(false);
                }
                for _ in 0..DRAIN_BATCH {
                    match st.outbound.next(self.quota, now) {
                        Some(o) => {
                            // A stored session's message goes in flight.
                            exactly_once |= note_sent(
                                self.broker.inner.persist.as_ref(),
                                &self.session,
                                &o,
                                &mut self.store_ops,
                            );
                            pending.push(o);
                        }
                        None => break,
                    }
                }
                std::mem::take(&mut st.outbound.expired)
            };
            self.broker
                .inner
                .note_drops(&self.session, DropReason::Expired, u64::from(expired));
            let got = pending.len();
            if exactly_once {
                // This batch waits for its store writes, and the queue for it.
                let start = out.len();
                self.write_pending(now, pending, out)?;
                let held = out.split_off(start).freeze();
                let commit = self.submit_store();
                self.deferred.push(commit, Action::Deliver(held));
                return Ok(false);
            }
            self.write_pending(now, pending, out)?;
            if got < DRAIN_BATCH {
                return Ok(false);
            }
            more = true;
        }
        Ok(more)
    }

    /// Writes `pending` into `out` and empties it (left as it is on error).
    fn write_pending(
        &mut self,
        now: Instant,
        pending: &mut Vec<Outgoing>,
        out: &mut BytesMut,
    ) -> Result<(), Exit> {
        for o in pending.iter() {
            match o {
                Outgoing::PubRel(pkid) => self.send(&Packet::PubRel(PubResp::new(*pkid)), out)?,
                Outgoing::Publish {
                    pkid,
                    dup,
                    delivery,
                } => {
                    // The common shape is written straight from the shared
                    // message (see `outgoing`); a topic alias, properties or
                    // subscription ids take the full encoder below.
                    if !self.v5() || self.out_aliases.plan(&delivery.msg.topic) == OutAlias::None {
                        match encode_plain(out, self.protocol, delivery, *pkid, *dup, self.max_out)
                        {
                            Encoded::Written(n) => {
                                self.tally.messages_sent += 1;
                                self.tally.bytes_sent += n as u64;
                                self.tally.publish_sent += 1;
                                continue;
                            }
                            Encoded::TooLarge => {
                                self.drop_too_large(*pkid);
                                continue;
                            }
                            Encoded::NotPlain => {}
                        }
                    }
                    let (p, alias) = self.publish_packet(delivery, *pkid, *dup, now);
                    if self.max_out != usize::MAX && encoded_len(&p, self.protocol) > self.max_out {
                        self.drop_too_large(*pkid);
                        continue;
                    }
                    self.send(&p, out)?;
                    self.out_aliases.commit(&delivery.msg.topic, alias);
                    self.tally.publish_sent += 1;
                }
            }
        }
        pending.clear();
        Ok(())
    }

    /// A message too large for this client [MQTT-3.1.2-25] is dropped.
    fn drop_too_large(&mut self, pkid: u16) {
        if pkid != 0 {
            self.abandon_stored(pkid);
        }
        self.broker
            .inner
            .note_drops(&self.session, DropReason::TooLarge, 1);
    }

    /// The PUBLISH for `d`, with the outbound topic alias it uses (to be
    /// committed once it is sent).
    fn publish_packet(
        &self,
        d: &Delivery,
        pkid: u16,
        dup: bool,
        now: Instant,
    ) -> (Packet, OutAlias) {
        let mut alias = OutAlias::None;
        let mut topic = d.msg.topic.clone();
        let properties = if self.v5() {
            let mut p = d.msg.properties.clone();
            p.subscription_identifiers.clone_from(&d.sub_ids);
            p.message_expiry_interval = d.msg.remaining_expiry(now);
            alias = self.out_aliases.plan(&topic);
            match alias {
                OutAlias::None => {}
                OutAlias::Bind(a) => p.topic_alias = Some(a),
                OutAlias::Use(a) => {
                    p.topic_alias = Some(a);
                    topic = ByteString::new();
                }
            }
            p
        } else {
            Properties::default()
        };
        let packet = Packet::Publish(Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            pkid,
            payload: d.msg.payload.clone(),
            properties,
        });
        (packet, alias)
    }
}
