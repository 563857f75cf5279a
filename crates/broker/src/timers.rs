//! Deadlines kept by the broker, sans-IO: delayed wills and offline session
//! expiry. The background task asks what is due at `now`; reconnects cancel.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::message::Message;

/// A will waiting for its Will Delay Interval.
#[derive(Debug, Clone)]
pub struct PendingWill {
    pub due: Instant,
    pub msg: Message,
}

/// Delayed wills (by client id) and session expiry deadlines.
#[derive(Debug, Default)]
pub struct Timers {
    wills: HashMap<Arc<str>, PendingWill, ahash::RandomState>,
    /// (deadline, session id, client id); entries are checked against the
    /// registry when due, so a reconnect needs no removal here.
    expiries: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
}

impl Timers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules a will; a newer one for the same client replaces it and
    /// the replaced one is returned (to be published: its connection's
    /// session can no longer be resumed by that connection).
    pub fn schedule_will(&mut self, client_id: Arc<str>, will: PendingWill) -> Option<PendingWill> {
        self.wills.insert(client_id, will)
    }

    /// Takes the pending will of `client_id` (a reconnect: the caller
    /// discards it if the session continues, publishes it if it ended).
    pub fn take_will(&mut self, client_id: &str) -> Option<PendingWill> {
        self.wills.remove(client_id)
    }

    /// Wills whose delay has passed at `now`.
    pub fn due_wills(&mut self, now: Instant) -> Vec<PendingWill> {
        if self.wills.values().all(|w| w.due > now) {
            return Vec::new();
        }
        let due: Vec<Arc<str>> = self
            .wills
            .iter()
            .filter(|(_, w)| w.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.iter().filter_map(|k| self.wills.remove(k)).collect()
    }

    pub fn schedule_expiry(&mut self, at: Instant, session_id: u64, client_id: Arc<str>) {
        self.expiries.push(Reverse((at, session_id, client_id)));
    }

    /// Sessions whose expiry deadline has passed at `now`, as (session id,
    /// client id); the caller checks each is still the offline session.
    pub fn due_expiries(&mut self, now: Instant) -> Vec<(u64, Arc<str>)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, _, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, id, cid))) = self.expiries.pop() {
                out.push((id, cid));
            }
        }
        out
    }

    /// The earliest deadline, for sleeping until it.
    pub fn next_deadline(&self) -> Option<Instant> {
        let will = self.wills.values().map(|w| w.due).min();
        let exp = self.expiries.peek().map(|Reverse((at, _, _))| *at);
        match (will, exp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use midge_proto::QoS;
    use std::time::Duration;

    fn will(due: Instant) -> PendingWill {
        PendingWill {
            due,
            msg: Message::new("w", Bytes::from_static(b"bye"), QoS::AtMostOnce, false),
        }
    }

    #[test]
    fn will_delay_fires_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.schedule_will(Arc::from("c"), will(t0 + Duration::from_secs(5)));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(t.due_wills(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(t.due_wills(t0 + Duration::from_secs(5)).len(), 1);
        assert!(t.due_wills(t0 + Duration::from_secs(6)).is_empty());
    }

    #[test]
    fn will_delay_cancelled_by_reconnect() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.schedule_will(Arc::from("c"), will(t0 + Duration::from_secs(5)));
        assert!(t.take_will("c").is_some(), "reconnect takes it");
        assert!(t.due_wills(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn expiries_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.schedule_expiry(t0 + Duration::from_secs(3), 2, Arc::from("b"));
        t.schedule_expiry(t0 + Duration::from_secs(1), 1, Arc::from("a"));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let due = t.due_expiries(t0 + Duration::from_secs(2));
        assert_eq!(due, vec![(1, Arc::from("a"))]);
        assert_eq!(t.due_expiries(t0 + Duration::from_secs(3)).len(), 1);
    }
}
