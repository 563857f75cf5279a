//! Per-connection PUBLISH rate limits, sans-IO: token buckets for packets
//! per second and payload bytes per second, each with a burst of one
//! second's worth. Time comes in as an argument.

use std::time::{Duration, Instant};

use crate::config::BrokerConfig;

const NANOS: i128 = 1_000_000_000;

/// A token bucket that refills `rate` tokens per second up to `rate`.
/// Tokens are kept in billionths (integer arithmetic, exact for tests). A
/// cost larger than the whole bucket is let through once the bucket is full
/// and leaves it in debt, so that one large message is delayed, not refused
/// forever, and still pays for all its bytes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second; also the capacity.
    rate: i128,
    /// Current tokens, in billionths; negative while in debt.
    tokens: i128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` must be > 0.
    pub fn new(rate: u64, now: Instant) -> Self {
        let rate = i128::from(rate.max(1));
        TokenBucket {
            rate,
            tokens: rate * NANOS,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        // Saturates far beyond the capacity, which caps it anyway.
        let added = i128::try_from(elapsed)
            .unwrap_or(i128::MAX / 2)
            .saturating_mul(self.rate);
        self.tokens = self.tokens.saturating_add(added).min(self.rate * NANOS);
    }

    /// `None` if `cost` can be taken at `now`, else the earliest instant
    /// it can. Takes nothing.
    pub fn ready_at(&mut self, cost: u64, now: Instant) -> Option<Instant> {
        self.refill(now);
        let need = i128::from(cost).min(self.rate) * NANOS;
        if self.tokens >= need {
            return None;
        }
        // Round up so that the bucket really holds `need` by then.
        let wait = (need - self.tokens + self.rate - 1) / self.rate;
        let wait = u64::try_from(wait).unwrap_or(u64::MAX);
        Some(now + Duration::from_nanos(wait))
    }

    /// Takes `cost` (after [`TokenBucket::ready_at`] said yes).
    pub fn take(&mut self, cost: u64) {
        self.tokens -= i128::from(cost) * NANOS;
    }
}

/// What a connection over its publish rate gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PublishRateAction {
    /// Stop reading its socket until tokens are available: TCP pushes back
    /// on the client, nothing is dropped.
    #[default]
    Throttle,
    /// Close it (5.0: DISCONNECT 0x96 Message rate too high first); the
    /// will is published.
    Disconnect,
}

/// The publish limits of one connection.
#[derive(Debug, Clone)]
pub struct PublishLimiter {
    packets: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

impl PublishLimiter {
    /// `None` when no publish rate limit is configured.
    pub fn new(cfg: &BrokerConfig, now: Instant) -> Option<Self> {
        let packets = (cfg.max_publish_rate > 0)
            .then(|| TokenBucket::new(u64::from(cfg.max_publish_rate), now));
        let bytes = (cfg.max_publish_bytes_rate > 0)
            .then(|| TokenBucket::new(cfg.max_publish_bytes_rate, now));
        (packets.is_some() || bytes.is_some()).then_some(PublishLimiter { packets, bytes })
    }

    /// Admits one PUBLISH with `payload_len` bytes at `now` (taking its
    /// tokens from both buckets), or says when both can pay for it (taking
    /// nothing).
    pub fn admit(&mut self, payload_len: usize, now: Instant) -> Result<(), Instant> {
        let len = u64::try_from(payload_len).unwrap_or(u64::MAX);
        let a = self.packets.as_mut().and_then(|b| b.ready_at(1, now));
        let b = self.bytes.as_mut().and_then(|b| b.ready_at(len, now));
        if let Some(at) = a.max(b) {
            return Err(at);
        }
        if let Some(p) = &mut self.packets {
            p.take(1);
        }
        if let Some(b) = &mut self.bytes {
            b.take(len);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        for _ in 0..10 {
            assert_eq!(b.ready_at(1, t0), None);
            b.take(1);
        }
        // Empty: one token every 100 ms.
        assert_eq!(b.ready_at(1, t0), Some(t0 + ms(100)));
        assert_eq!(b.ready_at(1, t0 + ms(99)), Some(t0 + ms(100)));
        assert_eq!(b.ready_at(1, t0 + ms(100)), None);
        b.take(1);
        assert_eq!(b.ready_at(1, t0 + ms(100)), Some(t0 + ms(200)));
    }

    #[test]
    fn refill_caps_at_one_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5, t0);
        for _ in 0..5 {
            b.take(1);
        }
        // An hour idle still refills only one second's worth.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(b.ready_at(1, later), None);
            b.take(1);
        }
        assert!(b.ready_at(1, later).is_some());
    }

    #[test]
    fn cost_above_capacity_waits_for_full_then_goes_into_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        b.take(500);
        // 3000 bytes at 1000/s: admitted once the bucket is full again.
        assert_eq!(b.ready_at(3000, t0), Some(t0 + ms(500)));
        assert_eq!(b.ready_at(3000, t0 + ms(500)), None);
        b.take(3000);
        // 2000 in debt: the next single byte waits 2.001 s.
        assert_eq!(b.ready_at(1, t0 + ms(500)), Some(t0 + ms(2501)));
    }

    #[test]
    fn limiter_off_by_default() {
        assert!(PublishLimiter::new(&BrokerConfig::default(), Instant::now()).is_none());
    }

    #[test]
    fn limiter_waits_for_both_buckets_and_takes_from_neither_when_waiting() {
        let t0 = Instant::now();
        let cfg = BrokerConfig {
            max_publish_rate: 2,
            max_publish_bytes_rate: 100,
            ..BrokerConfig::default()
        };
        let Some(mut l) = PublishLimiter::new(&cfg, t0) else {
            panic!("limits configured")
        };
        assert_eq!(l.admit(80, t0), Ok(()));
        // Packets would allow a second one, bytes not yet: 60 more bytes
        // need 40 refilled (400 ms).
        assert_eq!(l.admit(60, t0), Err(t0 + ms(400)));
        assert_eq!(l.admit(10, t0), Ok(()));
        // Bytes allow 10 more, packets are out (2/s: 500 ms per packet).
        assert_eq!(l.admit(5, t0), Err(t0 + ms(500)));
        assert_eq!(l.admit(5, t0 + ms(500)), Ok(()));
    }
}
