//! Store counters: kept with relaxed atomics by whoever writes, read as a
//! [`StoreStats`] snapshot by the broker's metrics and `$SYS`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::apply::Applied;

/// A snapshot of a store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed.
    pub commits: u64,
    /// Batches committed (a commit carries one or more).
    pub batches: u64,
    pub ops: u64,
    /// Most batches one commit carried (group commit at work).
    pub max_batches_per_commit: u64,
    /// Queue entries dropped because their session's queue was at its cap.
    pub dropped_queue_full: u64,
    /// Batches refused because the store was at its size cap.
    pub refused_full: u64,
    /// Failed transactions (every batch they carried failed).
    pub write_errors: u64,
    /// Entries removed by `PurgeExpired`.
    pub purged: u64,
    /// Bytes of all records (keys and values; the file is larger).
    pub bytes: u64,
    /// Message bodies stored.
    pub messages: u64,
    /// Batches submitted and not yet committed (the writer's backlog).
    pub backlog: u64,
    /// Durable commits (each one fsyncs the file): group commits under
    /// `batch`, every commit under `always`, checkpoints under `never`.
    pub syncs: u64,
    /// Time spent in durable commits, in total and the longest one (µs):
    /// how long the disk makes acknowledgements wait.
    pub sync_time_us: u64,
    pub sync_max_us: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    batches: AtomicU64,
    ops: AtomicU64,
    max_batches: AtomicU64,
    dropped_queue_full: AtomicU64,
    refused_full: AtomicU64,
    write_errors: AtomicU64,
    purged: AtomicU64,
    bytes: AtomicU64,
    messages: AtomicU64,
    backlog: AtomicU64,
    syncs: AtomicU64,
    sync_time_us: AtomicU64,
    sync_max_us: AtomicU64,
}

impl Counters {
    /// Records one committed transaction.
    pub fn committed(&self, batches: u64, a: &Applied, bytes: u64, messages: u64) {
        self.commits.fetch_add(1, Relaxed);
        self.batches.fetch_add(batches, Relaxed);
        self.ops.fetch_add(a.ops, Relaxed);
        self.max_batches.fetch_max(batches, Relaxed);
        self.dropped_queue_full
            .fetch_add(a.dropped_queue_full, Relaxed);
        self.refused_full.fetch_add(a.refused_full, Relaxed);
        self.purged.fetch_add(a.purged, Relaxed);
        self.bytes.store(bytes, Relaxed);
        self.messages.store(messages, Relaxed);
    }

    /// `n` batches entered the writer's queue.
    pub fn queued(&self, n: u64) {
        self.backlog.fetch_add(n, Relaxed);
    }

    /// `n` batches left it (committed or failed).
    pub fn done(&self, n: u64) {
        self.backlog.fetch_sub(n, Relaxed);
    }

    /// Records one durable commit that took `took`.
    pub fn synced(&self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.syncs.fetch_add(1, Relaxed);
        self.sync_time_us.fetch_add(us, Relaxed);
        self.sync_max_us.fetch_max(us, Relaxed);
    }

    pub fn write_error(&self) {
        self.write_errors.fetch_add(1, Relaxed);
    }

    pub fn set_usage(&self, bytes: u64, messages: u64) {
        self.bytes.store(bytes, Relaxed);
        self.messages.store(messages, Relaxed);
    }

    pub fn snapshot(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Relaxed),
            batches: self.batches.load(Relaxed),
            ops: self.ops.load(Relaxed),
            max_batches_per_commit: self.max_batches.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            refused_full: self.refused_full.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            purged: self.purged.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            messages: self.messages.load(Relaxed),
            backlog: self.backlog.load(Relaxed),
            syncs: self.syncs.load(Relaxed),
            sync_time_us: self.sync_time_us.load(Relaxed),
            sync_max_us: self.sync_max_us.load(Relaxed),
        }
    }
}

/// Message ids and sequence numbers, resumed above the highest stored.
#[derive(Debug)]
pub(crate) struct Ids {
    msg: AtomicU64,
    seq: AtomicU64,
}

impl Ids {
    pub fn new(max_msg_id: u64, max_seq: u64) -> Ids {
        Ids {
            msg: AtomicU64::new(max_msg_id + 1),
            seq: AtomicU64::new(max_seq + 1),
        }
    }

    pub fn next_msg(&self) -> u64 {
        self.msg.fetch_add(1, Relaxed)
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Relaxed)
    }
}

/// Rate-limited warnings (one line per kind per 10 s) for drops that can
/// come by the thousand.
#[derive(Debug, Default)]
pub(crate) struct DropLog {
    last_queue_full: Option<std::time::Instant>,
    pending_queue_full: u64,
    last_full: Option<std::time::Instant>,
    pending_full: u64,
}

impl DropLog {
    pub fn note(&mut self, a: &Applied) {
        let now = std::time::Instant::now();
        let due = |last: Option<std::time::Instant>| {
            last.is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(10))
        };
        self.pending_queue_full += a.dropped_queue_full;
        if self.pending_queue_full > 0 && due(self.last_queue_full) {
            tracing::warn!(
                dropped = self.pending_queue_full,
                "store: session queue at its cap (max_session_messages / max_session_bytes): messages not stored"
            );
            self.pending_queue_full = 0;
            self.last_queue_full = Some(now);
        }
        self.pending_full += a.refused_full;
        if self.pending_full > 0 && due(self.last_full) {
            tracing::warn!(
                refused = self.pending_full,
                "store: size cap (max_store_bytes) reached: batches refused"
            );
            self.pending_full = 0;
            self.last_full = Some(now);
        }
    }
}
