//! Durability: the broker's side of `midge-store`.
//!
//! The broker's memory stays the truth while it runs; the store mirrors
//! what a restart needs (see `docs/storage.md`). Only persistent sessions
//! (Session Expiry Interval above 0) are stored, with their subscriptions,
//! queued and in-flight QoS 1/2 messages, inbound QoS 2 ids and wills; and
//! retained messages. QoS 0 traffic and clean sessions never reach the
//! store.
//!
//! Layout: `convert` (broker values <-> store records), `route` (one batch
//! of writes per publish, submitted before the persistent sessions see the
//! message), `lifecycle` (sessions, wills, subscriptions), `client` (the
//! writes of one connection: sent, acknowledged, released), `acks`
//! (acknowledgements that wait for their commit), `recover` (the broker
//! rebuilt at start).

mod acks;
mod client;
pub(crate) mod convert;
mod lifecycle;
mod recover;
mod route;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_proto::ReasonCode;
use midge_store::{CommitError, Store, StoreStats, StoredMessage};
use parking_lot::Mutex;

use crate::message::Message;

pub(crate) use acks::{Action, Deferred, Granted};
pub(crate) use client::note_sent;
pub(crate) use route::{Durable, Later, Pending};

/// How often a refused write may log a warning.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A broker's store and the counts of what it refused.
pub(crate) struct Persist {
    pub store: Arc<dyn Store>,
    /// QoS 1/2 publishes refused because the store was at its size cap.
    refused_full: AtomicU64,
    /// Writes that failed (QoS 1/2 publishes refused, subscriptions not
    /// granted).
    failed: AtomicU64,
    /// When a refusal was last logged, and how many since.
    warned: Mutex<(Option<Instant>, u64)>,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist")
            .field("store", &self.store.name())
            .finish()
    }
}

/// The store's counters and the broker's refusals, for `$SYS`, `/metrics`
/// and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurabilityStats {
    /// "disk" or "memory".
    pub engine: &'static str,
    pub store: StoreStats,
    /// QoS 1/2 publishes refused with 0x97 (3.x: connection closed)
    /// because the store was full.
    pub refused_full: u64,
    /// Store writes that failed: QoS 1/2 publishes refused with 0x80 (3.x:
    /// connection closed), subscriptions answered 0x80.
    pub write_failures: u64,
}

impl Persist {
    pub fn new(store: Arc<dyn Store>) -> Persist {
        Persist {
            store,
            refused_full: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            warned: Mutex::new((None, 0)),
        }
    }

    /// The store record of `msg`, made (with a new id) the first time:
    /// every write that references the message shares it.
    pub fn message(&self, msg: &Message) -> Arc<StoredMessage> {
        msg.stored
            .get_or_init(|| {
                Arc::new(convert::stored_message(
                    msg,
                    self.store.next_message_id(),
                    midge_store::time::now_ms(),
                    Instant::now(),
                ))
            })
            .clone()
    }

    /// Counts and logs (at most one line per 10 s) a write the store
    /// refused; returns the reason code to answer with: 0x97 Quota exceeded
    /// when the store is full, else 0x80 Unspecified error.
    pub fn refused(&self, e: &CommitError, client_id: &str, what: &str) -> ReasonCode {
        let code = match e {
            CommitError::Full { .. } => {
                self.refused_full.fetch_add(1, Relaxed);
                ReasonCode::QuotaExceeded
            }
            CommitError::Failed(_) | CommitError::Closed => {
                self.failed.fetch_add(1, Relaxed);
                ReasonCode::UnspecifiedError
            }
        };
        let mut w = self.warned.lock();
        w.1 += 1;
        let now = Instant::now();
        if w.0.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            tracing::warn!(
                client_id,
                error = %e,
                refused = w.1,
                "store write refused: {what} not acknowledged"
            );
            *w = (Some(now), 0);
        }
        code
    }

    pub fn stats(&self) -> DurabilityStats {
        DurabilityStats {
            engine: self.store.name(),
            store: self.store.stats(),
            refused_full: self.refused_full.load(Relaxed),
            write_failures: self.failed.load(Relaxed),
        }
    }
}
