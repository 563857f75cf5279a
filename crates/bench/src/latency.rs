//! End-to-end latency: an HDR histogram of nanoseconds and its summary.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency tracked exactly; larger values are clamped to it (a
/// message that took over a minute is reported as one minute).
const MAX_TRACKABLE_NS: u64 = 60_000_000_000;

/// A latency histogram with 3 significant digits from 1 ns to 60 s.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Latency {
    pub fn new() -> Self {
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 *
        // low, sigfig <= 5): this cannot fail at run time.
        #[allow(clippy::expect_used)]
        let hist = Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3)
            .expect("constant histogram bounds are valid");
        Latency { hist }
    }

    /// Records one latency in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, MAX_TRACKABLE_NS));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        // Both histograms share the same bounds, so adding cannot fail; a
        // failure would only lose samples, which `count` would show.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Percentiles in microseconds, or `None` with no samples.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Some(LatencySummary {
            samples: self.hist.len(),
            min_us: us(self.hist.min()),
            mean_us: self.hist.mean() / 1_000.0,
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p90_us: us(self.hist.value_at_quantile(0.90)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
        })
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// Latency percentiles of a run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within hdrhistogram's 3-significant-digit resolution (with margin).
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.002 + 0.001
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut l = Latency::new();
        // 1..=10_000 microseconds, once each.
        for us in 1..=10_000u64 {
            l.record(us * 1_000);
        }
        let s = l.summary().unwrap();
        assert_eq!(s.samples, 10_000);
        assert!(close(s.min_us, 1.0), "{s:?}");
        assert!(close(s.p50_us, 5_000.0), "{s:?}");
        assert!(close(s.p99_us, 9_900.0), "{s:?}");
        assert!(close(s.p999_us, 9_990.0), "{s:?}");
        assert!(close(s.max_us, 10_000.0), "{s:?}");
        assert!(close(s.mean_us, 5_000.5), "{s:?}");
    }

    #[test]
    fn tail_is_visible_and_merge_adds() {
        let mut a = Latency::new();
        for _ in 0..990 {
            a.record(100_000);
        }
        let mut b = Latency::new();
        for _ in 0..10 {
            b.record(50_000_000);
        }
        a.merge(&b);
        let s = a.summary().unwrap();
        assert_eq!(s.samples, 1000);
        assert!(close(s.p50_us, 100.0), "{s:?}");
        assert!(close(s.p99_us, 100.0), "{s:?}");
        assert!(close(s.p999_us, 50_000.0), "{s:?}");
        assert!(close(s.max_us, 50_000.0), "{s:?}");
    }

    #[test]
    fn empty_and_out_of_range() {
        assert!(Latency::new().summary().is_none());
        let mut l = Latency::new();
        l.record(0);
        l.record(u64::MAX);
        let s = l.summary().unwrap();
        assert_eq!(s.samples, 2);
        assert!(close(s.min_us, 0.001));
        assert!(close(s.max_us, 60_000_000.0));
    }
}
