//! Loss, duplicate and reordering accounting by sequence number.
//!
//! A subscriber keeps one [`SeqTracker`] per publisher it hears. The tracker
//! remembers the next sequence number it expects and the ranges it skipped;
//! a late arrival that fills a skipped range is out of order, an arrival that
//! is neither new nor in a skipped range is a duplicate. Loss is only known
//! once the publisher says how many it sent: sent minus distinct received.
//! Memory is proportional to the number of gaps, not of messages.

use std::collections::BTreeMap;

/// How one arrival was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next expected sequence number, or later (skipping some).
    New,
    /// Earlier than one already seen, filling a gap.
    OutOfOrder,
    /// Seen before.
    Duplicate,
}

/// Sequence accounting for one (publisher, subscriber) stream.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// One past the highest sequence number seen.
    next: u64,
    /// Skipped ranges below `next`, as start -> end (exclusive), disjoint.
    missing: BTreeMap<u64, u64>,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
}

impl SeqTracker {
    pub fn new() -> Self {
        SeqTracker::default()
    }

    /// Records the arrival of `seq`.
    pub fn record(&mut self, seq: u64) -> Arrival {
        self.received += 1;
        if seq >= self.next {
            if seq > self.next {
                self.missing.insert(self.next, seq);
            }
            self.next = seq.saturating_add(1);
            return Arrival::New;
        }
        // Below the high-water mark: either it fills a gap or it is a repeat.
        let gap = self
            .missing
            .range(..=seq)
            .next_back()
            .map(|(s, e)| (*s, *e));
        match gap {
            Some((start, end)) if seq < end => {
                self.missing.remove(&start);
                if start < seq {
                    self.missing.insert(start, seq);
                }
                if seq + 1 < end {
                    self.missing.insert(seq + 1, end);
                }
                self.out_of_order += 1;
                Arrival::OutOfOrder
            }
            _ => {
                self.duplicates += 1;
                Arrival::Duplicate
            }
        }
    }

    /// Every arrival, duplicates included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Distinct sequence numbers received.
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Messages of the `sent` the publisher sent (sequence numbers
    /// `0..sent`) that never arrived.
    pub fn lost(&self, sent: u64) -> u64 {
        let (gaps, tail) = self.lost_split(sent);
        gaps + tail
    }

    /// [`lost`](Self::lost) in two parts: messages skipped (a later one
    /// arrived, so the broker dropped them, on an ordered stream) and the
    /// tail after the last arrival (dropped, or still queued when the run
    /// ended).
    pub fn lost_split(&self, sent: u64) -> (u64, u64) {
        let gaps: u64 = self
            .missing
            .iter()
            .filter(|(s, _)| **s < sent)
            .map(|(s, e)| (*e).min(sent) - s)
            .sum();
        (gaps, sent.saturating_sub(self.next))
    }
}

/// The trackers of one subscriber, indexed by publisher id.
#[derive(Debug, Clone, Default)]
pub struct Streams {
    by_publisher: Vec<SeqTracker>,
}

impl Streams {
    /// Records `seq` from `publisher`; ids are dense and small (the run's
    /// publisher count), so a vector beats a map.
    pub fn record(&mut self, publisher: u32, seq: u64) -> Arrival {
        let i = publisher as usize;
        if i >= self.by_publisher.len() {
            self.by_publisher.resize_with(i + 1, SeqTracker::new);
        }
        self.by_publisher[i].record(seq)
    }

    /// The tracker of `publisher`, if anything arrived from it.
    pub fn get(&self, publisher: u32) -> Option<&SeqTracker> {
        self.by_publisher.get(publisher as usize)
    }

    /// Sums over the publishers this subscriber should hear, given how many
    /// each sent. A publisher never heard from counts all its messages lost.
    pub fn totals(&self, hears: &[u32], sent: &[u64]) -> Totals {
        let mut t = Totals::default();
        for &p in hears {
            let sent_p = sent.get(p as usize).copied().unwrap_or(0);
            t.expected += sent_p;
            match self.get(p) {
                Some(tr) => {
                    t.unique += tr.unique();
                    t.duplicates += tr.duplicates();
                    t.out_of_order += tr.out_of_order();
                    let (gaps, tail) = tr.lost_split(sent_p);
                    t.lost += gaps + tail;
                    t.lost_in_gaps += gaps;
                }
                None => t.lost += sent_p,
            }
        }
        t
    }
}

/// Accounting summed over streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub expected: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub lost: u64,
    /// The part of `lost` skipped over by later arrivals.
    pub lost_in_gaps: u64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.expected += o.expected;
        self.unique += o.unique;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.lost += o.lost;
        self.lost_in_gaps += o.lost_in_gaps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_loss() {
        let mut t = SeqTracker::new();
        for s in 0..1000 {
            assert_eq!(t.record(s), Arrival::New);
        }
        assert_eq!((t.unique(), t.duplicates(), t.out_of_order()), (1000, 0, 0));
        assert_eq!(t.lost(1000), 0);
        // The publisher sent 10 more that never came: all lost.
        assert_eq!(t.lost(1010), 10);
    }

    #[test]
    fn gaps_are_lost_until_filled() {
        let mut t = SeqTracker::new();
        for s in [0, 1, 5, 6, 9] {
            assert_eq!(t.record(s), Arrival::New);
        }
        // Missing 2,3,4,7,8 of 0..10.
        assert_eq!(t.lost(10), 5);
        // 2,3,4,7,8 were skipped; of 0..12, 10 and 11 are the tail.
        assert_eq!(t.lost_split(12), (5, 2));
        assert_eq!(t.record(3), Arrival::OutOfOrder);
        assert_eq!(t.record(2), Arrival::OutOfOrder);
        assert_eq!(t.record(8), Arrival::OutOfOrder);
        assert_eq!(t.lost(10), 2);
        assert_eq!(t.out_of_order(), 3);
        // Only part of the sent range counts when the publisher sent fewer
        // than the tracker saw (cannot happen, but stays well defined).
        assert_eq!(t.lost(5), 1);
    }

    #[test]
    fn duplicates_are_counted_not_double_counted() {
        let mut t = SeqTracker::new();
        t.record(0);
        t.record(1);
        assert_eq!(t.record(1), Arrival::Duplicate);
        assert_eq!(t.record(0), Arrival::Duplicate);
        t.record(4);
        assert_eq!(t.record(2), Arrival::OutOfOrder);
        assert_eq!(t.record(2), Arrival::Duplicate);
        assert_eq!(t.record(4), Arrival::Duplicate);
        assert_eq!(t.received(), 8);
        assert_eq!(t.unique(), 4);
        assert_eq!(t.duplicates(), 4);
        assert_eq!(t.lost(5), 1);
    }

    #[test]
    fn streams_total_over_heard_publishers() {
        let mut s = Streams::default();
        for seq in 0..10 {
            s.record(0, seq);
        }
        for seq in [0, 2, 2] {
            s.record(2, seq);
        }
        // Publisher 1 sent 4 messages that never arrived.
        let t = s.totals(&[0, 1, 2], &[10, 4, 3]);
        assert_eq!(
            t,
            Totals {
                expected: 17,
                unique: 12,
                duplicates: 1,
                out_of_order: 0,
                lost: 5,
                lost_in_gaps: 1,
            }
        );
    }
}
