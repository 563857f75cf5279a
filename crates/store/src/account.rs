//! In-memory bookkeeping kept beside the tables so that no write needs a
//! lookup: references to each message body (the body goes with its last
//! reference), each session's queue length and bytes (the per-session
//! caps), and the total bytes of all rows (the store cap). Rebuilt from the
//! tables at open, and again after a failed transaction.

use std::collections::HashMap;

use crate::codec;
use crate::error::TxError;
use crate::keys::{self, Table};
use crate::tx::Scan;

/// References to one stored message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsgUse {
    pub refs: u32,
    /// Key + value bytes of the body row.
    pub bytes: u64,
}

/// One session's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueUse {
    pub count: u32,
    /// Sum of the queued messages' sizes (topic + payload).
    pub bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Accounting {
    /// Present exactly when the body row exists.
    pub msgs: HashMap<u64, MsgUse>,
    /// Bodies whose references reached 0 during the current transaction;
    /// removed at its end unless referenced again (so that moving a message
    /// from the queue to in-flight does not rewrite its body).
    pub zeroed: Vec<u64>,
    pub queues: HashMap<u64, QueueUse>,
    /// Key + value bytes of every row.
    pub total_bytes: u64,
    /// Highest message id and sequence number seen (id allocation resumes
    /// above them).
    pub max_msg_id: u64,
    pub max_seq: u64,
}

/// The size a message counts for in a session's byte cap.
pub(crate) fn message_size(m: &crate::record::StoredMessage) -> u64 {
    (m.payload.len() + m.topic.len()) as u64
}

impl Accounting {
    /// Rebuilds the bookkeeping from the tables. Rows that do not decode
    /// count for their bytes only; recovery reports and removes them.
    pub fn build<S: Scan + ?Sized>(s: &mut S) -> Result<Accounting, TxError> {
        let mut a = Accounting::default();
        for t in Table::ALL {
            let mut bytes = 0u64;
            s.scan(t, &mut |k, v| {
                bytes += (k.len() + v.len()) as u64;
                true
            })?;
            a.total_bytes += bytes;
        }
        let mut msgs = HashMap::new();
        s.scan(Table::Messages, &mut |k, v| {
            if let Some(id) = keys::parse_id(k) {
                msgs.insert(
                    id,
                    MsgUse {
                        refs: 0,
                        bytes: (k.len() + v.len()) as u64,
                    },
                );
            }
            true
        })?;
        a.msgs = msgs;
        let mut refs: Vec<u64> = Vec::new();
        let mut queues: HashMap<u64, QueueUse> = HashMap::new();
        let mut max_seq = 0u64;
        s.scan(Table::Queue, &mut |k, v| {
            if let (Some((sid, rest)), Ok(d)) = (keys::split_session(k), codec::decode_queued(v)) {
                refs.push(d.msg_id);
                let q = queues.entry(sid.0).or_default();
                q.count += 1;
                q.bytes += d.size;
                if let Some(seq) = keys::parse_seq(rest) {
                    max_seq = max_seq.max(seq);
                }
            }
            true
        })?;
        s.scan(Table::Inflight, &mut |_, v| {
            if let Ok(i) = codec::decode_inflight(v) {
                let seq = match &i {
                    codec::InflightRef::Publish { seq, .. }
                    | codec::InflightRef::PubRel { seq } => *seq,
                };
                max_seq = max_seq.max(seq);
                if let Some(id) = i.msg_id() {
                    refs.push(id);
                }
            }
            true
        })?;
        s.scan(Table::Retained, &mut |_, v| {
            if let Ok(id) = codec::decode_id(v) {
                refs.push(id);
            }
            true
        })?;
        for id in refs {
            if let Some(u) = a.msgs.get_mut(&id) {
                u.refs += 1;
            }
        }
        a.queues = queues;
        a.max_seq = max_seq;
        a.max_msg_id = a.msgs.keys().copied().max().unwrap_or(0);
        // Bodies nobody references (a crash cannot leave them, damage can):
        // the next transaction removes them.
        a.zeroed = a
            .msgs
            .iter()
            .filter(|(_, u)| u.refs == 0)
            .map(|(id, _)| *id)
            .collect();
        Ok(a)
    }

    pub fn add_bytes(&mut self, n: usize) {
        self.total_bytes += n as u64;
    }

    pub fn sub_bytes(&mut self, n: usize) {
        self.total_bytes = self.total_bytes.saturating_sub(n as u64);
    }
}
