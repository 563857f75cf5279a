//! Flow control for publishers: the closed-loop window and rate pacing.
//!
//! A [`Window`] caps how many messages may be sent but not yet delivered.
//! Publishers behind one window reserve sends from it; the subscribers that
//! receive exactly that stream count deliveries; the window stays open while
//! `reserved - min(delivered) < limit`. Fan-in shares one window between all
//! publishers (one subscriber), fan-out watches the slowest of its
//! subscribers, pairs have a window each.
//!
//! A message lost by the broker (QoS 0 under pressure) would close the
//! window forever, so a window that stays closed with no delivery progress
//! for `stall_after` writes the outstanding messages off, counts a stall and
//! opens again. Loss itself is still counted by sequence numbers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A shared cap on sent-but-undelivered messages.
#[derive(Debug)]
pub struct Window {
    limit: u64,
    reserved: AtomicU64,
    written_off: AtomicU64,
    stalls: AtomicU64,
    delivered: Vec<Arc<AtomicU64>>,
    progress: Notify,
    stall_after: Duration,
}

impl Window {
    /// A window of `limit` messages over the given subscribers' delivery
    /// counters.
    pub fn new(limit: u64, delivered: Vec<Arc<AtomicU64>>, stall_after: Duration) -> Self {
        Window {
            limit: limit.max(1),
            reserved: AtomicU64::new(0),
            written_off: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            delivered,
            progress: Notify::new(),
            stall_after,
        }
    }

    fn min_delivered(&self) -> u64 {
        self.delivered
            .iter()
            .map(|d| d.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// Messages sent and neither delivered nor written off.
    pub fn outstanding(&self) -> u64 {
        let done = self.min_delivered() + self.written_off.load(Ordering::Acquire);
        self.reserved.load(Ordering::Acquire).saturating_sub(done)
    }

    /// Reserves up to `want` sends; returns how many were granted (0 when
    /// the window is full). The caller must then send exactly that many.
    pub fn reserve(&self, want: u64) -> u64 {
        loop {
            let reserved = self.reserved.load(Ordering::Acquire);
            let done = self.min_delivered() + self.written_off.load(Ordering::Acquire);
            let outstanding = reserved.saturating_sub(done);
            if outstanding >= self.limit {
                return 0;
            }
            let grant = want.min(self.limit - outstanding);
            // Several publishers share a window: the compare-exchange makes
            // the check and the reservation one step, so they cannot
            // together overshoot the limit.
            if self
                .reserved
                .compare_exchange_weak(
                    reserved,
                    reserved + grant,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return grant;
            }
        }
    }

    /// Called by a subscriber after counting deliveries.
    pub fn notify_progress(&self) {
        self.progress.notify_waiters();
    }

    /// Waits until the window may have room: a delivery was counted, or
    /// nothing was delivered for `stall_after` (then the outstanding
    /// messages are written off). Cancel-safe.
    pub async fn wait(&self) {
        let baseline = self.min_delivered();
        let deadline = Instant::now() + self.stall_after;
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            // Register before checking, so a notification between the
            // check and the await is not missed.
            notified.as_mut().enable();
            if self.outstanding() < self.limit {
                return;
            }
            tokio::select! {
                _ = &mut notified => {
                    if self.min_delivered() != baseline {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.write_off_stalled(baseline);
                    return;
                }
            }
        }
    }

    fn write_off_stalled(&self, baseline: u64) {
        let delivered = self.min_delivered();
        if delivered != baseline {
            return;
        }
        let gap = self
            .reserved
            .load(Ordering::Acquire)
            .saturating_sub(delivered);
        // Several waiters may time out together: fetch_max keeps it one
        // write-off, and only the one that raised it counts the stall.
        let before = self.written_off.fetch_max(gap, Ordering::AcqRel);
        if gap > before {
            self.stalls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many times the window was forced open after a stall.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }
}

/// Paces one publisher at a fixed rate from a start instant.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    per_sec: f64,
}

impl Pacer {
    pub fn new(start: Instant, per_sec: f64) -> Self {
        Pacer {
            start,
            per_sec: per_sec.max(f64::MIN_POSITIVE),
        }
    }

    /// Messages due at `now` beyond the `sent` already sent. A publisher
    /// that fell behind catches up (a burst), as an open-loop load should.
    pub fn due(&self, now: Instant, sent: u64) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let target = (elapsed * self.per_sec).floor() as u64 + 1;
        target.saturating_sub(sent)
    }

    /// When message number `sent` (0-based) is due.
    pub fn next_at(&self, sent: u64) -> Instant {
        self.start + Duration::from_secs_f64(sent as f64 / self.per_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(n: usize) -> Vec<Arc<AtomicU64>> {
        (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect()
    }

    #[test]
    fn window_grants_up_to_the_limit_of_the_slowest() {
        let subs = counters(2);
        let w = Window::new(100, subs.clone(), Duration::from_secs(1));
        assert_eq!(w.reserve(64), 64);
        assert_eq!(w.reserve(64), 36);
        assert_eq!(w.reserve(1), 0);
        subs[0].store(100, Ordering::Release);
        // The other subscriber still has all 100 outstanding.
        assert_eq!(w.reserve(10), 0);
        subs[1].store(30, Ordering::Release);
        assert_eq!(w.outstanding(), 70);
        assert_eq!(w.reserve(64), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_window_is_written_off_once() {
        let subs = counters(1);
        let w = Arc::new(Window::new(10, subs.clone(), Duration::from_millis(500)));
        assert_eq!(w.reserve(10), 10);
        subs[0].store(4, Ordering::Release);
        assert_eq!(w.reserve(10), 4);
        // 10 are never delivered: after the stall time the window reopens.
        let (a, b) = (w.clone(), w.clone());
        tokio::join!(a.wait(), b.wait());
        assert_eq!(w.stalls(), 1);
        assert_eq!(w.outstanding(), 0);
        assert_eq!(w.reserve(20), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn delivery_progress_wakes_a_waiter() {
        let subs = counters(1);
        let w = Arc::new(Window::new(5, subs.clone(), Duration::from_secs(3600)));
        assert_eq!(w.reserve(5), 5);
        let waiter = tokio::spawn({
            let w = w.clone();
            async move { w.wait().await }
        });
        tokio::task::yield_now().await;
        subs[0].store(2, Ordering::Release);
        w.notify_progress();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("waiter woke")
            .expect("task ok");
        assert_eq!(w.stalls(), 0);
        assert_eq!(w.reserve(5), 2);
    }

    #[test]
    fn pacer_releases_messages_on_schedule() {
        let start = Instant::now();
        let p = Pacer::new(start, 1000.0);
        assert_eq!(p.due(start, 0), 1);
        assert_eq!(p.due(start + Duration::from_millis(10), 0), 11);
        assert_eq!(p.due(start + Duration::from_millis(10), 11), 0);
        let at = p.next_at(11).duration_since(start);
        let want = Duration::from_millis(11);
        assert!(at.max(want) - at.min(want) < Duration::from_micros(1));
    }
}
