//! Outbound delivery state of one session, sans-IO: the bounded queue of
//! messages waiting to be sent, the QoS 1/2 messages in flight, and packet
//! identifier allocation. Time comes in as an argument (message expiry).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Instant;

use midge_proto::QoS;

use crate::message::Message;

/// One message on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// min(published QoS, granted QoS).
    pub qos: QoS,
    /// The RETAIN flag to send.
    pub retain: bool,
    /// 5.0 Subscription Identifiers of the matching subscriptions.
    pub sub_ids: Vec<u32>,
    /// Set when it came through a shared subscription (`$share/g/f`), so that
    /// it can go to another member if this one never acknowledges it.
    pub share: Option<Arc<str>>,
}

/// Where an in-flight QoS 1/2 message stands.
#[derive(Debug, Clone)]
pub enum Inflight {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish(Delivery),
    /// PUBREL sent, waiting for PUBCOMP.
    PubRel,
}

#[derive(Debug, Clone)]
struct InflightEntry {
    /// Send order, to resend in the original order after a reconnect.
    seq: u64,
    state: Inflight,
}

/// What to send next.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// `pkid` is 0 for QoS 0.
    Publish {
        pkid: u16,
        dup: bool,
        delivery: Delivery,
    },
    PubRel(u16),
}

/// Result of [`Outbound::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue was full: the new message was dropped.
    DroppedNew,
    /// The queue was full: the oldest queued QoS 0 message made room.
    DroppedQos0,
}

/// Queue, in-flight window and packet ids of one session.
#[derive(Debug)]
pub struct Outbound {
    queue: VecDeque<Delivery>,
    // u32 counters (the queue is bounded far below 4 billion): every session
    // keeps this struct, online or not.
    qos0_queued: u32,
    // Keys are packet ids the broker picks itself, so a fixed-key hasher
    // is safe here; it takes no room (a random one is 32 bytes of every
    // session, and a call to the random source when a session is made).
    inflight: HashMap<u16, InflightEntry, BuildHasherDefault<ahash::AHasher>>,
    next_pkid: u16,
    next_seq: u64,
    limit: u32,
    /// Messages dropped by [`Outbound::next`] because they expired; the
    /// caller takes and counts them.
    pub expired: u32,
}

impl Outbound {
    pub fn new(limit: usize) -> Self {
        Outbound {
            queue: VecDeque::new(),
            qos0_queued: 0,
            inflight: HashMap::default(),
            next_pkid: 1,
            next_seq: 0,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            expired: 0,
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.inflight.is_empty()
    }

    /// Queues a message; when the queue is full, QoS 0 goes first.
    pub fn push(&mut self, d: Delivery) -> Push {
        if self.queue.len() >= self.limit as usize {
            if d.qos == QoS::AtMostOnce {
                return Push::DroppedNew;
            }
            if self.qos0_queued == 0 {
                return Push::DroppedNew;
            }
            if let Some(pos) = self.queue.iter().position(|q| q.qos == QoS::AtMostOnce) {
                self.queue.remove(pos);
                self.qos0_queued -= 1;
            }
            self.queue.push_back(d);
            return Push::DroppedQos0;
        }
        if d.qos == QoS::AtMostOnce {
            self.qos0_queued += 1;
        }
        self.queue.push_back(d);
        Push::Queued
    }

    /// Drops queued QoS 0 messages (a session going offline keeps only
    /// QoS 1/2). Returns how many.
    pub fn drop_queued_qos0(&mut self) -> usize {
        let before = self.queue.len();
        self.queue.retain(|d| d.qos != QoS::AtMostOnce);
        self.qos0_queued = 0;
        before - self.queue.len()
    }

    /// Pops the next message to send if the in-flight window (`quota`) has
    /// room for it, allocating its packet id. Expired messages are dropped
    /// (counted in `expired`). Order is kept: a QoS 1/2 message at the head
    /// waiting for room also holds back the QoS 0 ones behind it.
    pub fn next(&mut self, quota: usize, now: Instant) -> Option<Outgoing> {
        loop {
            let head = self.queue.front()?;
            if head.msg.is_expired(now) {
                if let Some(d) = self.queue.pop_front() {
                    if d.qos == QoS::AtMostOnce {
                        self.qos0_queued -= 1;
                    }
                }
                self.expired += 1;
                continue;
            }
            if head.qos == QoS::AtMostOnce {
                self.qos0_queued -= 1;
                let delivery = self.queue.pop_front()?;
                return Some(Outgoing::Publish {
                    pkid: 0,
                    dup: false,
                    delivery,
                });
            }
            if self.inflight.len() >= quota.min(usize::from(u16::MAX)) {
                return None;
            }
            let pkid = self.alloc_pkid()?;
            let delivery = self.queue.pop_front()?;
            self.insert(pkid, Inflight::Publish(delivery.clone()));
            return Some(Outgoing::Publish {
                pkid,
                dup: false,
                delivery,
            });
        }
    }

    fn insert(&mut self, pkid: u16, state: Inflight) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.inflight.insert(pkid, InflightEntry { seq, state });
    }

    /// The next packet id not in flight; never 0.
    fn alloc_pkid(&mut self) -> Option<u16> {
        if self.inflight.len() >= usize::from(u16::MAX) {
            return None;
        }
        // At most `inflight.len() + 1` candidates are tried.
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.contains_key(&id) {
                return Some(id);
            }
        }
    }

    /// PUBACK for a QoS 1 message: true if it was in flight.
    pub fn puback(&mut self, pkid: u16) -> bool {
        match self.inflight.get(&pkid) {
            Some(InflightEntry {
                state: Inflight::Publish(d),
                ..
            }) if d.qos == QoS::AtLeastOnce => {
                self.inflight.remove(&pkid);
                true
            }
            _ => false,
        }
    }

    /// PUBREC for a QoS 2 message: true if PUBREL should be sent (the
    /// message was in flight, or already released: PUBREC repeated).
    /// With `failed` (5.0 reason >= 0x80) the message is abandoned.
    pub fn pubrec(&mut self, pkid: u16, failed: bool) -> bool {
        let Some(entry) = self.inflight.get_mut(&pkid) else {
            return false;
        };
        match &entry.state {
            Inflight::Publish(d) if d.qos == QoS::ExactlyOnce => {
                if failed {
                    self.inflight.remove(&pkid);
                    return false;
                }
                entry.state = Inflight::PubRel;
                true
            }
            Inflight::PubRel => !failed,
            Inflight::Publish(_) => false,
        }
    }

    /// PUBCOMP: true if a PUBREL was outstanding.
    pub fn pubcomp(&mut self, pkid: u16) -> bool {
        if matches!(
            self.inflight.get(&pkid),
            Some(InflightEntry {
                state: Inflight::PubRel,
                ..
            })
        ) {
            self.inflight.remove(&pkid);
            return true;
        }
        false
    }

    /// The in-flight state of `pkid`, if any.
    pub fn inflight_state(&self, pkid: u16) -> Option<&Inflight> {
        self.inflight.get(&pkid).map(|e| &e.state)
    }

    /// Puts back an in-flight message recovered from the durable store,
    /// after those restored before it in send order. Its packet id is not
    /// handed out again while it is in flight.
    pub fn restore_inflight(&mut self, pkid: u16, state: Inflight) {
        if pkid != 0 {
            self.insert(pkid, state);
        }
    }

    /// Removes an in-flight message that cannot be sent after all (too large
    /// for the client).
    pub fn abandon(&mut self, pkid: u16) {
        self.inflight.remove(&pkid);
    }

    /// Everything in flight, in send order, to send again on a new
    /// connection: PUBLISH with DUP=1, or PUBREL.
    pub fn resend(&self) -> Vec<Outgoing> {
        let mut entries: Vec<(&u16, &InflightEntry)> = self.inflight.iter().collect();
        entries.sort_by_key(|(_, e)| e.seq);
        entries
            .into_iter()
            .map(|(pkid, e)| match &e.state {
                Inflight::Publish(d) => Outgoing::Publish {
                    pkid: *pkid,
                    dup: true,
                    delivery: d.clone(),
                },
                Inflight::PubRel => Outgoing::PubRel(*pkid),
            })
            .collect()
    }

    /// Takes the messages that came through shared subscriptions and can go
    /// to another member of their group when this session ends: QoS 1 ones
    /// in flight (never acknowledged) and QoS 1/2 ones still queued. A QoS 2
    /// PUBLISH already sent stays: it must not reach another member
    /// [MQTT-4.8.2-5], so it ends with this session.
    pub fn take_shared(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        let mut entries: Vec<(u16, u64)> = self
            .inflight
            .iter()
            .filter(|(_, e)| {
                matches!(&e.state, Inflight::Publish(d)
                    if d.share.is_some() && d.qos == QoS::AtLeastOnce)
            })
            .map(|(k, e)| (*k, e.seq))
            .collect();
        entries.sort_by_key(|(_, seq)| *seq);
        for (pkid, _) in entries {
            if let Some(InflightEntry {
                state: Inflight::Publish(d),
                ..
            }) = self.inflight.remove(&pkid)
            {
                out.push(d);
            }
        }
        let queue = std::mem::take(&mut self.queue);
        for d in queue {
            if d.share.is_some() && d.qos != QoS::AtMostOnce {
                out.push(d);
            } else {
                self.queue.push_back(d);
            }
        }
        let qos0 = self
            .queue
            .iter()
            .filter(|d| d.qos == QoS::AtMostOnce)
            .count();
        self.qos0_queued = u32::try_from(qos0).unwrap_or(u32::MAX);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::testing::delivery as d;
    use bytes::Bytes;
    use std::collections::HashSet;
    use std::time::Duration;

    fn pkid(o: Option<Outgoing>) -> u16 {
        match o {
            Some(Outgoing::Publish { pkid, .. }) => pkid,
            other => panic!("expected publish, got {other:?}"),
        }
    }

    #[test]
    fn window_limits_inflight_and_keeps_order() {
        let now = Instant::now();
        let mut o = Outbound::new(100);
        for _ in 0..3 {
            o.push(d(QoS::AtLeastOnce));
        }
        o.push(d(QoS::AtMostOnce));
        assert_eq!(pkid(o.next(2, now)), 1);
        assert_eq!(pkid(o.next(2, now)), 2);
        assert!(o.next(2, now).is_none(), "window of 2 is full");
        assert!(o.puback(1));
        assert!(!o.puback(1), "second PUBACK is unknown");
        assert_eq!(pkid(o.next(2, now)), 3);
        assert_eq!(pkid(o.next(2, now)), 0, "QoS 0 behind it follows");
        assert!(o.next(2, now).is_none());
    }

    #[test]
    fn pkids_never_reuse_inflight() {
        let now = Instant::now();
        let mut o = Outbound::new(200_000);
        let mut inflight = HashSet::new();
        // Keep id 1..=10 in flight, cycle the rest through the whole range
        // more than once.
        for _ in 0..10 {
            inflight.insert(pkid({
                o.push(d(QoS::AtLeastOnce));
                o.next(100, now)
            }));
        }
        for _ in 0..140_000 {
            o.push(d(QoS::AtLeastOnce));
            let id = pkid(o.next(100, now));
            assert_ne!(id, 0);
            assert!(!inflight.contains(&id), "id {id} reused while in flight");
            assert!(o.puback(id));
        }
        assert_eq!(o.inflight(), 10);
    }

    #[test]
    fn qos2_flow_and_resend_order() {
        let now = Instant::now();
        let mut o = Outbound::new(10);
        o.push(d(QoS::ExactlyOnce));
        o.push(d(QoS::AtLeastOnce));
        let a = pkid(o.next(10, now));
        let b = pkid(o.next(10, now));
        assert!(!o.puback(a), "PUBACK does not complete QoS 2");
        assert!(o.pubrec(a, false));
        assert!(o.pubrec(a, false), "repeated PUBREC gets PUBREL again");
        let again = o.resend();
        assert!(matches!(again[0], Outgoing::PubRel(p) if p == a));
        assert!(matches!(again[1], Outgoing::Publish { pkid, dup: true, .. } if pkid == b));
        assert!(o.pubcomp(a));
        assert!(!o.pubcomp(a));
        assert!(o.puback(b));
        assert!(o.is_idle());
    }

    #[test]
    fn full_queue_drops_qos0_first() {
        let mut o = Outbound::new(2);
        assert_eq!(o.push(d(QoS::AtMostOnce)), Push::Queued);
        assert_eq!(o.push(d(QoS::AtLeastOnce)), Push::Queued);
        assert_eq!(o.push(d(QoS::AtMostOnce)), Push::DroppedNew);
        assert_eq!(o.push(d(QoS::AtLeastOnce)), Push::DroppedQos0);
        assert_eq!(o.push(d(QoS::AtLeastOnce)), Push::DroppedNew);
        assert_eq!(o.queued(), 2);
    }

    #[test]
    fn expired_messages_are_not_sent() {
        let mut o = Outbound::new(10);
        let mut m = Message::new("t", Bytes::new(), QoS::AtLeastOnce, false);
        m.properties.message_expiry_interval = Some(5);
        let t0 = m.received_at;
        let mut del = d(QoS::AtLeastOnce);
        del.msg = Arc::new(m);
        o.push(del);
        o.push(d(QoS::AtLeastOnce));
        let _ = pkid(o.next(10, t0 + Duration::from_secs(6)));
        assert_eq!(o.expired, 1);
        assert_eq!(o.inflight(), 1);
    }

    #[test]
    fn shared_unacked_are_taken() {
        let now = Instant::now();
        let mut o = Outbound::new(10);
        let mut s = d(QoS::AtLeastOnce);
        s.share = Some(Arc::from("$share/g/t"));
        o.push(s.clone());
        o.push(d(QoS::AtLeastOnce));
        o.push(s);
        let _ = o.next(1, now);
        let taken = o.take_shared();
        assert_eq!(taken.len(), 2);
        assert_eq!(o.inflight(), 0);
        assert_eq!(o.queued(), 1);
    }

    #[test]
    fn shared_qos2_sent_is_not_taken() {
        // [MQTT-4.8.2-5]: a QoS 2 PUBLISH on its way to one member never goes
        // to another; a queued one (not sent yet) may.
        let now = Instant::now();
        let mut o = Outbound::new(10);
        let mut s = d(QoS::ExactlyOnce);
        s.share = Some(Arc::from("$share/g/t"));
        o.push(s.clone());
        o.push(s);
        let _ = o.next(1, now);
        let taken = o.take_shared();
        assert_eq!(taken.len(), 1);
        assert_eq!(o.inflight(), 1);
        assert_eq!(o.queued(), 0);
    }
}
