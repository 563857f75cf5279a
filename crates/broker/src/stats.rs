//! Broker-wide counters, counted once here and read by `$SYS`, metrics and
//! the dashboard alike. Relaxed atomics: they are statistics, not
//! synchronisation.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use midge_proto::QoS;

use crate::event::DropReason;

/// Live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub clients_connected: AtomicUsize,
    pub clients_maximum: AtomicUsize,
    pub connections: AtomicUsize,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub publish_received: AtomicU64,
    pub publish_sent: AtomicU64,
    pub publish_dropped: AtomicU64,
    pub connections_total: AtomicU64,
    /// Messages routed (from clients and from inside midge, `$SYS` aside)
    /// and their payload bytes, by QoS.
    pub published: [AtomicU64; 3],
    pub published_bytes: [AtomicU64; 3],
    /// `publish_dropped` by reason, indexed by [`reason_index`].
    pub dropped: [AtomicU64; DROP_REASONS],
}

/// Number of [`DropReason`]s.
const DROP_REASONS: usize = 5;

/// The slot of `r` in [`Counters::dropped`]; a match without a wildcard,
/// so that a new reason cannot be left uncounted.
fn reason_index(r: DropReason) -> usize {
    match r {
        DropReason::QueueFull => 0,
        DropReason::Offline => 1,
        DropReason::TooLarge => 2,
        DropReason::Expired => 3,
        DropReason::NotAuthorized => 4,
    }
}

impl Counters {
    pub fn client_connected(&self) {
        let now = self.clients_connected.fetch_add(1, Relaxed) + 1;
        self.clients_maximum.fetch_max(now, Relaxed);
    }

    pub fn client_disconnected(&self) {
        self.clients_connected.fetch_sub(1, Relaxed);
    }

    /// Counts `n` messages not delivered, in total and by reason.
    pub fn count_dropped(&self, reason: DropReason, n: u64) {
        self.publish_dropped.fetch_add(n, Relaxed);
        self.dropped[reason_index(reason)].fetch_add(n, Relaxed);
    }

    /// Counts one routed message published from inside midge (clients'
    /// messages go through their [`Tally`]).
    pub fn count_published(&self, qos: QoS, payload_len: usize) {
        self.published[qos as usize].fetch_add(1, Relaxed);
        self.published_bytes[qos as usize].fetch_add(payload_len as u64, Relaxed);
    }

    /// The drop counters, by reason.
    pub fn dropped_by_reason(&self) -> DroppedByReason {
        let n = |r| self.dropped[reason_index(r)].load(Relaxed);
        DroppedByReason {
            queue_full: n(DropReason::QueueFull),
            offline: n(DropReason::Offline),
            too_large: n(DropReason::TooLarge),
            expired: n(DropReason::Expired),
            not_authorized: n(DropReason::NotAuthorized),
        }
    }

    /// The published counters, by QoS: (messages, payload bytes).
    pub fn published_by_qos(&self) -> ([u64; 3], [u64; 3]) {
        (
            self.published.each_ref().map(|c| c.load(Relaxed)),
            self.published_bytes.each_ref().map(|c| c.load(Relaxed)),
        )
    }
}

/// Messages not delivered, by [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedByReason {
    pub queue_full: u64,
    pub offline: u64,
    pub too_large: u64,
    pub expired: u64,
    pub not_authorized: u64,
}

impl DroppedByReason {
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::QueueFull => self.queue_full,
            DropReason::Offline => self.offline,
            DropReason::TooLarge => self.too_large,
            DropReason::Expired => self.expired,
            DropReason::NotAuthorized => self.not_authorized,
        }
    }
}

/// Per-connection tallies, added to the shared counters in batches so that
/// the hot path does not touch shared cache lines per packet. Flushed on
/// every turn of the connection's loop, so packet counts fit in `u32`
/// (a turn handles one read); bytes stay `u64`. The tally lives in every
/// connection task: 32 bytes saved here are 32 bytes of every connection.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub messages_received: u32,
    pub messages_sent: u32,
    pub publish_received: u32,
    pub publish_sent: u32,
    pub publish_dropped: u32,
    /// Messages this client published that were routed, by QoS, and their
    /// payload bytes (see [`Counters::published`]).
    pub published: [u32; 3],
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub published_bytes: [u64; 3],
}

impl Tally {
    /// Counts one routed message of this client.
    pub fn count_published(&mut self, qos: QoS, payload_len: usize) {
        self.published[qos as usize] += 1;
        self.published_bytes[qos as usize] += payload_len as u64;
    }

    pub fn flush(&mut self, c: &Counters) {
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        };
        add(&c.messages_received, self.messages_received.into());
        add(&c.messages_sent, self.messages_sent.into());
        add(&c.bytes_received, self.bytes_received);
        add(&c.bytes_sent, self.bytes_sent);
        add(&c.publish_received, self.publish_received.into());
        add(&c.publish_sent, self.publish_sent.into());
        add(&c.publish_dropped, self.publish_dropped.into());
        for q in 0..3 {
            if self.published[q] > 0 {
                c.published[q].fetch_add(self.published[q].into(), Relaxed);
                c.published_bytes[q].fetch_add(self.published_bytes[q], Relaxed);
            }
        }
        *self = Tally::default();
    }
}

/// A snapshot of the broker's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub uptime: Duration,
    /// Clients with an open, accepted connection.
    pub clients_connected: usize,
    /// Offline persistent sessions.
    pub clients_disconnected: usize,
    /// Connected plus offline persistent sessions.
    pub clients_total: usize,
    /// Most clients connected at once.
    pub clients_maximum: usize,
    /// Network connections, CONNECT received or not.
    pub connections: usize,
    pub connections_total: u64,
    /// Control packets received / sent.
    pub messages_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub publish_received: u64,
    pub publish_sent: u64,
    /// Messages not delivered to a subscriber (queue full, expired, too large).
    pub publish_dropped: u64,
    /// `publish_dropped` by reason.
    pub dropped_by_reason: DroppedByReason,
    /// Messages routed (published by clients or from inside midge; `$SYS`
    /// updates aside), by QoS (index 0, 1, 2), and their payload bytes.
    pub published_by_qos: [u64; 3],
    pub published_bytes_by_qos: [u64; 3],
    pub subscriptions: usize,
    pub retained: usize,
    /// Messages waiting in session queues plus in flight.
    pub messages_stored: usize,
}

/// Mosquitto-style load averages: exponentially decayed per-minute rates
/// over 1, 5 and 15 minutes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Load {
    pub avg: [f64; 3],
    last: Option<u64>,
}

impl Load {
    const WINDOWS: [f64; 3] = [60.0, 300.0, 900.0];

    /// Feeds the counter's current total after `interval`.
    pub fn update(&mut self, total: u64, interval: Duration) {
        let secs = interval.as_secs_f64();
        let Some(last) = self.last.replace(total) else {
            return;
        };
        if secs <= 0.0 {
            return;
        }
        let per_minute = total.saturating_sub(last) as f64 * 60.0 / secs;
        for (avg, window) in self.avg.iter_mut().zip(Self::WINDOWS) {
            let k = (-secs / window).exp();
            *avg = per_minute + k * (*avg - per_minute);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_converges_to_rate() {
        let mut l = Load::default();
        l.update(0, Duration::from_secs(10));
        assert_eq!(l.avg, [0.0; 3]);
        // 10 per second = 600 per minute, for an hour.
        for i in 1..=360u64 {
            l.update(i * 100, Duration::from_secs(10));
        }
        assert!((l.avg[0] - 600.0).abs() < 1.0, "{:?}", l.avg);
        assert!((l.avg[2] - 600.0).abs() < 20.0, "{:?}", l.avg);
        l.update(36_000, Duration::from_secs(60));
        assert!(l.avg[0] < 600.0 * 0.4, "decays when idle: {:?}", l.avg);
        assert!(l.avg[2] > l.avg[0]);
    }

    #[test]
    fn tally_flushes() {
        let c = Counters::default();
        let mut t = Tally {
            bytes_received: 5,
            publish_sent: 2,
            ..Tally::default()
        };
        t.count_published(QoS::AtLeastOnce, 10);
        t.flush(&c);
        t.flush(&c);
        assert_eq!(c.bytes_received.load(Relaxed), 5);
        assert_eq!(c.publish_sent.load(Relaxed), 2);
        c.count_published(QoS::AtLeastOnce, 5);
        assert_eq!(c.published_by_qos(), ([0, 2, 0], [0, 15, 0]));
    }

    #[test]
    fn drops_by_reason() {
        let c = Counters::default();
        c.count_dropped(DropReason::QueueFull, 3);
        c.count_dropped(DropReason::Expired, 1);
        assert_eq!(c.publish_dropped.load(Relaxed), 4);
        let d = c.dropped_by_reason();
        assert_eq!(d.get(DropReason::QueueFull), 3);
        assert_eq!(d.expired, 1);
        assert_eq!(d.offline + d.too_large + d.not_authorized, 0);
    }
}
