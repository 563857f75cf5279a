//! Keep-alive timer, sans-IO: the connection is dead when no packet arrived
//! for one and a half times the keep-alive interval [MQTT-3.1.2-24].

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    /// 1.5 x keep alive; `None` when keep alive is 0 (off).
    grace: Option<Duration>,
    last: Instant,
}

impl KeepAlive {
    pub fn new(keep_alive_secs: u16, now: Instant) -> Self {
        let grace =
            (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
        KeepAlive { grace, last: now }
    }

    /// A packet arrived.
    pub fn touch(&mut self, now: Instant) {
        self.last = now;
    }

    /// When the connection expires if nothing arrives before.
    pub fn deadline(&self) -> Option<Instant> {
        self.grace.map(|g| self.last + g)
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

/// The keep alive to enforce and, when it differs from the client's, the
/// Server Keep Alive to return: `max` (0 = no cap) caps it, and a client
/// asking for 0 (none) gets the cap too.
pub fn negotiate(client: u16, max: u16) -> (u16, Option<u16>) {
    if max > 0 && (client == 0 || client > max) {
        (max, Some(max))
    } else {
        (client, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_one_and_a_half_times() {
        let t0 = Instant::now();
        let mut k = KeepAlive::new(10, t0);
        assert!(!k.expired(t0 + Duration::from_millis(14_999)));
        assert!(k.expired(t0 + Duration::from_secs(15)));
        k.touch(t0 + Duration::from_secs(10));
        assert!(!k.expired(t0 + Duration::from_secs(20)));
        assert_eq!(k.deadline(), Some(t0 + Duration::from_secs(25)));
    }

    #[test]
    fn zero_never_expires() {
        let t0 = Instant::now();
        let k = KeepAlive::new(0, t0);
        assert_eq!(k.deadline(), None);
        assert!(!k.expired(t0 + Duration::from_secs(1_000_000)));
    }

    #[test]
    fn cap() {
        assert_eq!(negotiate(30, 0), (30, None));
        assert_eq!(negotiate(30, 60), (30, None));
        assert_eq!(negotiate(120, 60), (60, Some(60)));
        assert_eq!(negotiate(0, 60), (60, Some(60)));
    }
}
