//! Write operations and the batch that carries them. A batch is applied
//! atomically and made durable as one unit; batches of many callers share
//! one transaction (group commit). Every operation is idempotent where it
//! can be (removing what is gone does nothing), so a broker whose memory
//! and store disagree after a failure converges again.

use std::sync::Arc;

use bytestring::ByteString;

use crate::record::{
    DeliveryRecord, InflightRecord, SessionId, SessionRecord, StoredMessage, SubscriptionRecord,
    WillRecord,
};

/// One change to the durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Creates or replaces a session record.
    PutSession(SessionId, SessionRecord),
    /// Removes a session and everything it holds: subscriptions, queue,
    /// in-flight state (both directions) and will.
    DeleteSession(SessionId),
    /// Adds or replaces a subscription (by filter).
    Subscribe(SessionId, SubscriptionRecord),
    Unsubscribe(SessionId, ByteString),
    /// Appends a message to a session's queue. Stores the message body if
    /// no record references it yet. Dropped (and counted) when the session
    /// queue is at its cap.
    Enqueue {
        session: SessionId,
        seq: u64,
        delivery: DeliveryRecord,
    },
    /// Removes a queue entry (sent, expired, dropped).
    Dequeue {
        session: SessionId,
        seq: u64,
    },
    /// Creates or replaces an outbound in-flight entry (PUBLISH sent, or
    /// moved on to PUBREL).
    PutInflight(SessionId, InflightRecord),
    /// PUBACK / PUBCOMP received (or abandoned): the entry goes, and the
    /// message body with its last reference.
    DeleteInflight {
        session: SessionId,
        pkid: u16,
    },
    /// Inbound QoS 2: PUBREC sent, waiting for PUBREL.
    PutIncoming {
        session: SessionId,
        pkid: u16,
    },
    /// Inbound QoS 2: PUBREL received.
    DeleteIncoming {
        session: SessionId,
        pkid: u16,
    },
    /// Sets the retained message of its topic (replacing the old one).
    SetRetained(Arc<StoredMessage>),
    /// Clears the retained message of a topic.
    DeleteRetained(ByteString),
    /// Sets (or replaces) a session's will.
    PutWill(SessionId, Box<WillRecord>),
    DeleteWill(SessionId),
    /// Removes expired queued and retained messages (in-flight ones stay:
    /// a started exchange completes). Scans the store: a maintenance
    /// operation, e.g. with the broker's retained expiry timer.
    PurgeExpired {
        now_ms: u64,
    },
}

/// Operations applied and made durable together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Batch {
            ops: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl From<Vec<Op>> for Batch {
    fn from(ops: Vec<Op>) -> Self {
        Batch { ops }
    }
}

impl From<Op> for Batch {
    fn from(op: Op) -> Self {
        Batch { ops: vec![op] }
    }
}
