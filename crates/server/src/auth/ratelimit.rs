//! Failed-login rate limiting per remote address: after `max_failures` bad
//! passwords within `window`, every CONNECT from that address is refused for
//! `backoff`, without looking at its password, so that guessing stops paying.
//!
//! Sans-IO: time comes in as an argument. IPv6 addresses are grouped by
//! their /64, which one host can fill with addresses at will. The map is
//! bounded; when it is full, stale entries go first, then the oldest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Settings of the failed-login limiter (`[auth.rate_limit]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Bad passwords from one address before it is refused; 0 turns the
    /// limiter off.
    pub max_failures: u32,
    /// The period over which failures are counted, in seconds.
    pub window_secs: u64,
    /// How long a refused address stays refused, in seconds.
    pub backoff_secs: u64,
    /// Addresses tracked at most (memory bound).
    pub max_tracked: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_failures: 5,
            window_secs: 60,
            backoff_secs: 60,
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
    last_seen: Instant,
}

/// The limiter. Its lock is held for one map operation; it is touched only
/// when a client authenticates, never on the message path.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    backoff: Duration,
    max_tracked: usize,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

/// The address a limit applies to.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginLimiter {
    pub fn new(config: &RateLimitConfig) -> LoginLimiter {
        LoginLimiter {
            max_failures: config.max_failures,
            window: Duration::from_secs(config.window_secs),
            backoff: Duration::from_secs(config.backoff_secs),
            max_tracked: config.max_tracked.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_failures > 0
    }

    /// If `ip` is refused at `now`, for how much longer.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.lock();
        let until = entries.get(&key(ip))?.blocked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Counts a bad password from `ip`; true when this one starts a block.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        let k = key(ip);
        let mut entries = self.entries.lock();
        if !entries.contains_key(&k) && entries.len() >= self.max_tracked {
            self.make_room(&mut entries, now);
        }
        let e = entries.entry(k).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
            last_seen: now,
        });
        e.last_seen = now;
        if e.blocked_until.is_some_and(|until| until > now) {
            return false;
        }
        if now.saturating_duration_since(e.window_start) >= self.window || e.blocked_until.is_some()
        {
            // A new window: after the old one ran out, or after a block ended.
            e.window_start = now;
            e.failures = 0;
            e.blocked_until = None;
        }
        e.failures += 1;
        if e.failures >= self.max_failures {
            e.blocked_until = Some(now + self.backoff);
            return true;
        }
        false
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.entries.lock().len()
    }

    /// Drops entries that no longer matter; if that frees nothing, the least
    /// recently seen address that is not blocked (or, all being blocked, the
    /// least recently seen), so a flood of new addresses cannot lift a block.
    fn make_room(&self, entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
        let keep_for = self.window.max(self.backoff);
        let is_blocked = |e: &Entry| e.blocked_until.is_some_and(|until| until > now);
        entries
            .retain(|_, e| is_blocked(e) || now.saturating_duration_since(e.last_seen) < keep_for);
        if entries.len() < self.max_tracked {
            return;
        }
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| (is_blocked(e), e.last_seen))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            entries.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_failures: u32, max_tracked: usize) -> LoginLimiter {
        LoginLimiter::new(&RateLimitConfig {
            max_failures,
            window_secs: 60,
            backoff_secs: 30,
            max_tracked,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid address")
    }

    #[test]
    fn blocks_after_max_failures_then_releases() {
        let l = limiter(5, 100);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..4 {
            assert!(!l.record_failure(a, t0 + Duration::from_secs(i)));
            assert_eq!(l.blocked(a, t0 + Duration::from_secs(i)), None);
        }
        assert!(
            l.record_failure(a, t0 + Duration::from_secs(4)),
            "fifth failure blocks"
        );
        assert_eq!(
            l.blocked(a, t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            l.blocked(a, t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(14))
        );
        // Other addresses are unaffected.
        assert_eq!(
            l.blocked(ip("192.0.2.2"), t0 + Duration::from_secs(5)),
            None
        );
        // Failures while blocked do not extend the block.
        assert!(!l.record_failure(a, t0 + Duration::from_secs(10)));
        assert_eq!(l.blocked(a, t0 + Duration::from_secs(34)), None);
        // After the block a fresh window starts.
        assert!(!l.record_failure(a, t0 + Duration::from_secs(35)));
        assert_eq!(l.blocked(a, t0 + Duration::from_secs(35)), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let l = limiter(3, 100);
        let t0 = Instant::now();
        let a = ip("198.51.100.7");
        assert!(!l.record_failure(a, t0));
        assert!(!l.record_failure(a, t0 + Duration::from_secs(30)));
        // 61 s after the first: the window restarted, count is 1 again.
        assert!(!l.record_failure(a, t0 + Duration::from_secs(61)));
        assert!(!l.record_failure(a, t0 + Duration::from_secs(62)));
        assert!(l.record_failure(a, t0 + Duration::from_secs(63)));
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_v4_by_v4() {
        let l = limiter(2, 100);
        let t0 = Instant::now();
        assert!(!l.record_failure(ip("2001:db8:1:2::1"), t0));
        assert!(l.record_failure(ip("2001:db8:1:2:ffff::9"), t0));
        assert!(l.blocked(ip("2001:db8:1:2::abcd"), t0).is_some());
        assert!(l.blocked(ip("2001:db8:1:3::1"), t0).is_none());
        assert!(!l.record_failure(ip("::ffff:192.0.2.9"), t0));
        assert!(l.record_failure(ip("192.0.2.9"), t0));
    }

    #[test]
    fn map_stays_bounded_and_keeps_blocked_addresses() {
        let l = limiter(2, 4);
        let t0 = Instant::now();
        let victim = ip("10.0.0.1");
        assert!(!l.record_failure(victim, t0));
        assert!(l.record_failure(victim, t0));
        for i in 2..200u8 {
            let _ = l.record_failure(
                ip(&format!("10.0.1.{i}")),
                t0 + Duration::from_millis(u64::from(i)),
            );
            assert!(l.tracked() <= 4);
        }
        assert!(
            l.blocked(victim, t0 + Duration::from_secs(1)).is_some(),
            "a flood does not lift a block"
        );
        // Stale entries are dropped before fresh ones.
        let l = limiter(5, 2);
        let _ = l.record_failure(ip("10.0.0.1"), t0);
        let _ = l.record_failure(ip("10.0.0.2"), t0 + Duration::from_secs(100));
        let _ = l.record_failure(ip("10.0.0.3"), t0 + Duration::from_secs(101));
        let entries = l.entries.lock();
        assert!(entries.contains_key(&ip("10.0.0.2")));
        assert!(entries.contains_key(&ip("10.0.0.3")));
        assert!(!entries.contains_key(&ip("10.0.0.1")));
    }

    #[test]
    fn zero_disables() {
        let l = limiter(0, 10);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(!l.record_failure(ip("192.0.2.1"), t0));
        }
        assert_eq!(l.blocked(ip("192.0.2.1"), t0), None);
        assert_eq!(l.tracked(), 0);
    }
}
