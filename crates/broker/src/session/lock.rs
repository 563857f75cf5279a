//! The lock around a session's state. Its guard keeps a broker-wide gauge
//! of stored messages (queued plus in flight, over all sessions) right: it
//! notes the session's count when taken and applies the difference when
//! released, so `Broker::stats` reads one atomic instead of locking every
//! session, and no code path that changes a queue can forget to count.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::SessionState;

/// A `parking_lot::Mutex<SessionState>` that counts stored messages into a
/// shared gauge.
#[derive(Debug)]
pub struct StateLock {
    // parking_lot: sections are short (push/pop a queue entry) and never
    // held across an await.
    inner: Mutex<SessionState>,
    gauge: Arc<AtomicUsize>,
}

impl StateLock {
    pub fn new(state: SessionState, gauge: Arc<AtomicUsize>) -> Self {
        StateLock {
            inner: Mutex::new(state),
            gauge,
        }
    }

    pub fn lock(&self) -> StateGuard<'_> {
        let guard = self.inner.lock();
        let before = stored(&guard);
        StateGuard {
            guard,
            gauge: &self.gauge,
            before,
        }
    }
}

fn stored(st: &SessionState) -> usize {
    st.outbound.queued() + st.outbound.inflight()
}

/// Access to the session state; on release, the change in stored messages
/// goes to the gauge.
pub struct StateGuard<'a> {
    guard: MutexGuard<'a, SessionState>,
    gauge: &'a AtomicUsize,
    before: usize,
}

impl std::fmt::Debug for StateGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.guard.fmt(f)
    }
}

impl Deref for StateGuard<'_> {
    type Target = SessionState;
    fn deref(&self) -> &SessionState {
        &self.guard
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut SessionState {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let after = stored(&self.guard);
        // Relaxed: a statistic, not synchronisation.
        if after > self.before {
            self.gauge.fetch_add(after - self.before, Ordering::Relaxed);
        } else if after < self.before {
            self.gauge.fetch_sub(self.before - after, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{attach, delivery};
    use super::super::Session;
    use super::*;
    use midge_proto::{Protocol, QoS};
    use std::time::Instant;

    #[test]
    fn gauge_follows_queue_and_inflight_of_all_sessions() {
        let gauge = Arc::new(AtomicUsize::new(0));
        let a = Session::with_gauge(1, Arc::from("a"), Protocol::V5, 10, gauge.clone());
        let b = Session::with_gauge(2, Arc::from("b"), Protocol::V5, 1, gauge.clone());
        for s in [&a, &b] {
            attach(s, s.id);
        }
        let count = || gauge.load(Ordering::Relaxed);
        assert_eq!(a.deliver(delivery(QoS::AtLeastOnce)), Ok(()));
        assert_eq!(a.deliver(delivery(QoS::AtMostOnce)), Ok(()));
        assert_eq!(b.deliver(delivery(QoS::AtLeastOnce)), Ok(()));
        assert!(b.deliver(delivery(QoS::AtLeastOnce)).is_err(), "b is full");
        assert_eq!(count(), 3);
        let now = Instant::now();
        // Queued -> in flight: still stored. QoS 0 sent: gone.
        let first = a.state.lock().outbound.next(10, now);
        let Some(super::super::Outgoing::Publish { pkid, .. }) = first else {
            panic!("expected a publish, got {first:?}")
        };
        assert_eq!(count(), 3);
        assert!(a.state.lock().outbound.next(10, now).is_some());
        assert_eq!(count(), 2);
        assert!(a.state.lock().outbound.puback(pkid));
        assert_eq!(count(), 1);
        // Read-only locks change nothing.
        assert_eq!(b.state.lock().outbound.queued(), 1);
        assert_eq!(count(), 1);
    }
}
