//! Admission at accept time, before any byte is read: a per-listener cap
//! on open connections and a per-source-address connection rate (token
//! bucket). Refused sockets are closed at once, so a flood costs an accept
//! and a close, and established connections are never touched.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Source addresses remembered for rate limiting; beyond this the oldest
/// idle entries are forgotten, so spoofed sources cannot grow memory.
const MAX_TRACKED_SOURCES: usize = 65_536;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ListenerFull,
    RateExceeded,
}

#[derive(Debug, Default)]
struct Buckets {
    /// Per source: (tokens, last refill).
    sources: HashMap<IpAddr, (f64, Instant)>,
}

/// Shared by every accept loop of one listener.
#[derive(Debug)]
pub struct Gate {
    max_connections: usize,
    /// Connections per second per source address; 0 = unlimited.
    rate: f64,
    burst: f64,
    open: AtomicUsize,
    refused: AtomicU64,
    buckets: Mutex<Buckets>,
}

/// Holds a connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// `max_connections` 0 = unlimited; `rate_per_sec` 0 = unlimited, with a
    /// burst of `burst` connections.
    pub fn new(max_connections: usize, rate_per_sec: u32, burst: u32) -> Arc<Gate> {
        Arc::new(Gate {
            max_connections,
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst.max(1)),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            buckets: Mutex::new(Buckets::default()),
        })
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Admits a connection from `source` at `now`, or says why not.
    pub fn admit(self: &Arc<Self>, source: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        if self.rate > 0.0 && !self.take_token(source, now) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::RateExceeded);
        }
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        if self.max_connections > 0 && previous >= self.max_connections {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::ListenerFull);
        }
        Ok(Permit { gate: self.clone() })
    }

    fn take_token(&self, source: IpAddr, now: Instant) -> bool {
        // A std-style short critical section: no await inside, a hash
        // lookup and a few float operations.
        let mut b = self.buckets.lock();
        if b.sources.len() >= MAX_TRACKED_SOURCES && !b.sources.contains_key(&source) {
            let (rate, burst) = (self.rate, self.burst);
            // Forget sources whose bucket has refilled: they carry no state.
            b.sources.retain(|_, (tokens, last)| {
                *tokens + now.duration_since(*last).as_secs_f64() * rate < burst
            });
            if b.sources.len() >= MAX_TRACKED_SOURCES {
                b.sources.clear();
            }
        }
        let entry = b.sources.entry(source).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(entry.1).as_secs_f64();
        entry.0 = (entry.0 + elapsed * self.rate).min(self.burst);
        entry.1 = now;
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn caps_open_connections_and_frees_on_drop() {
        let gate = Gate::new(2, 0, 0);
        let now = Instant::now();
        let p1 = gate.admit(A, now).expect("first");
        let _p2 = gate.admit(A, now).expect("second");
        assert_eq!(gate.admit(A, now).unwrap_err(), Refusal::ListenerFull);
        drop(p1);
        assert!(gate.admit(B, now).is_ok());
        assert_eq!(gate.refused(), 1);
    }

    #[test]
    fn rate_limits_per_source_with_burst_and_refill() {
        let gate = Gate::new(0, 10, 3);
        let t0 = Instant::now();
        let mut permits = Vec::new();
        for _ in 0..3 {
            permits.push(gate.admit(A, t0).expect("burst"));
        }
        assert_eq!(gate.admit(A, t0).unwrap_err(), Refusal::RateExceeded);
        // Another source has its own bucket.
        permits.push(gate.admit(B, t0).expect("other source"));
        // 100 ms at 10/s refills one token.
        permits.push(
            gate.admit(A, t0 + Duration::from_millis(100))
                .expect("refilled"),
        );
        assert_eq!(
            gate.admit(A, t0 + Duration::from_millis(100)).unwrap_err(),
            Refusal::RateExceeded
        );
    }

    #[test]
    fn tracked_sources_stay_bounded() {
        let gate = Gate::new(0, 1, 1);
        let now = Instant::now();
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = gate.admit(ip, now);
        }
        assert!(gate.buckets.lock().sources.len() <= MAX_TRACKED_SOURCES);
    }
}
