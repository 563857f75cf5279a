//! Applies batches of operations to a transaction, keeping the bookkeeping
//! in step: message bodies stored once and removed with their last
//! reference, per-session queue caps (drop and count), the store cap
//! (refuse the whole batch). Backend-neutral: runs on the embedded
//! database's write transaction and on the in-memory maps alike.

use std::collections::HashSet;

use crate::account::{message_size, Accounting, MsgUse};
use crate::codec;
use crate::error::{CommitError, TxError};
use crate::keys::{self, Table};
use crate::op::{Batch, Op};
use crate::record::{DeliveryRecord, InflightRecord, InflightState, SessionId, StoredMessage};
use crate::tx::{keys_with_prefix, Tx};

/// The caps `apply` enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_session_messages: u32,
    pub max_session_bytes: u64,
    /// 0 = no cap.
    pub max_store_bytes: u64,
}

impl From<&crate::config::StoreConfig> for Limits {
    fn from(c: &crate::config::StoreConfig) -> Self {
        Limits {
            max_session_messages: c.max_session_messages,
            max_session_bytes: c.max_session_bytes,
            max_store_bytes: c.max_store_bytes,
        }
    }
}

/// Counts from applying, for the store's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub ops: u64,
    /// Queue entries dropped because their session queue was full.
    pub dropped_queue_full: u64,
    /// Batches refused because the store was full.
    pub refused_full: u64,
    /// Entries removed by `PurgeExpired`.
    pub purged: u64,
}

/// Reusable buffers, so that applying allocates nothing per operation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    value: Vec<u8>,
    old: Vec<u8>,
    key: Vec<u8>,
    seen: HashSet<u64>,
}

/// One transaction's worth of applying.
pub(crate) struct Apply<'a, T: Tx> {
    pub tx: &'a mut T,
    pub acct: &'a mut Accounting,
    pub scratch: &'a mut Scratch,
    pub limits: Limits,
    pub applied: Applied,
}

impl<T: Tx> Apply<'_, T> {
    /// Applies one batch, or refuses it whole when it would pass the store
    /// cap. `Err` means the transaction is broken and must be abandoned.
    pub fn batch(&mut self, batch: &Batch) -> Result<Result<(), CommitError>, TxError> {
        if let Err(e) = self.precheck(batch) {
            self.applied.refused_full += 1;
            return Ok(Err(e));
        }
        for op in &batch.ops {
            self.op(op)?;
        }
        self.applied.ops += batch.ops.len() as u64;
        Ok(Ok(()))
    }

    /// Removes the bodies left without references. Call once before commit.
    pub fn finish(&mut self) -> Result<(), TxError> {
        let zeroed = std::mem::take(&mut self.acct.zeroed);
        for id in zeroed {
            if self.acct.msgs.get(&id).is_some_and(|u| u.refs == 0) {
                self.acct.msgs.remove(&id);
                let old = &mut self.scratch.old;
                if self.tx.take(Table::Messages, &keys::id_key(id), old)? {
                    self.acct.sub_bytes(8 + old.len());
                }
            }
        }
        Ok(())
    }

    /// An upper bound of the bytes a batch adds, against the store cap.
    /// Batches that add nothing (removals, acknowledgements) always pass.
    fn precheck(&mut self, batch: &Batch) -> Result<(), CommitError> {
        let cap = self.limits.max_store_bytes;
        if cap == 0 {
            return Ok(());
        }
        let seen = &mut self.scratch.seen;
        seen.clear();
        let acct = &*self.acct;
        let mut body = |m: &StoredMessage| -> u64 {
            if acct.msgs.contains_key(&m.id) || !seen.insert(m.id) {
                0
            } else {
                message_size(m) + 64
            }
        };
        let mut add = 0u64;
        for op in &batch.ops {
            add += match op {
                Op::Enqueue { delivery, .. } => body(&delivery.msg) + 48,
                Op::PutInflight(_, r) => match &r.state {
                    InflightState::Publish(d) => body(&d.msg) + 48,
                    InflightState::PubRel => 0,
                },
                Op::SetRetained(m) => body(m) + m.topic.len() as u64 + 16,
                Op::PutWill(_, w) => message_size(&w.msg) + 64,
                Op::PutSession(_, s) => s.client_id.len() as u64 + 64,
                Op::Subscribe(_, s) => s.filter.len() as u64 + 32,
                Op::PutIncoming { .. } => 16,
                _ => 0,
            };
        }
        let used = self.acct.total_bytes;
        if add > 0 && used + add > cap {
            return Err(CommitError::Full { used, cap });
        }
        Ok(())
    }

    fn op(&mut self, op: &Op) -> Result<(), TxError> {
        match op {
            Op::PutSession(s, rec) => {
                codec::encode_session(&mut self.scratch.value, rec);
                self.put_value(Table::Sessions, &keys::session_key(*s))
            }
            Op::DeleteSession(s) => self.delete_session(*s),
            Op::Subscribe(s, sub) => {
                keys::str_key(*s, &sub.filter, &mut self.scratch.key);
                codec::encode_subscription(&mut self.scratch.value, sub);
                let key = std::mem::take(&mut self.scratch.key);
                let r = self.put_value(Table::Subs, &key);
                self.scratch.key = key;
                r
            }
            Op::Unsubscribe(s, filter) => {
                keys::str_key(*s, filter, &mut self.scratch.key);
                let key = std::mem::take(&mut self.scratch.key);
                let r = self.remove(Table::Subs, &key);
                self.scratch.key = key;
                r.map(|_| ())
            }
            Op::Enqueue {
                session,
                seq,
                delivery,
            } => self.enqueue(*session, *seq, delivery),
            Op::Dequeue { session, seq } => self.dequeue(&keys::seq_key(*session, *seq)),
            Op::PutInflight(s, rec) => self.put_inflight(*s, rec),
            Op::DeleteInflight { session, pkid } => {
                self.delete_inflight(&keys::pkid_key(*session, *pkid))
            }
            Op::PutIncoming { session, pkid } => {
                codec::encode_incoming(&mut self.scratch.value);
                self.put_value(Table::Incoming, &keys::pkid_key(*session, *pkid))
            }
            Op::DeleteIncoming { session, pkid } => self
                .remove(Table::Incoming, &keys::pkid_key(*session, *pkid))
                .map(|_| ()),
            Op::SetRetained(m) => self.set_retained(m),
            Op::DeleteRetained(topic) => self.delete_retained(topic.as_bytes()),
            Op::PutWill(s, w) => {
                codec::encode_will(&mut self.scratch.value, w);
                self.put_value(Table::Wills, &keys::session_key(*s))
            }
            Op::DeleteWill(s) => self
                .remove(Table::Wills, &keys::session_key(*s))
                .map(|_| ()),
            Op::PurgeExpired { now_ms } => self.purge_expired(*now_ms),
        }
    }

    // ---- rows and bytes ----------------------------------------------------------

    /// Writes `scratch.value` at `key`, accounting bytes. Returns whether a
    /// row was replaced (its value is then in `scratch.old`).
    fn put_value_replacing(&mut self, t: Table, key: &[u8]) -> Result<bool, TxError> {
        let value = &self.scratch.value;
        let replaced = self.tx.put(t, key, value, &mut self.scratch.old)?;
        self.acct.add_bytes(key.len() + value.len());
        if replaced {
            self.acct.sub_bytes(key.len() + self.scratch.old.len());
        }
        Ok(replaced)
    }

    fn put_value(&mut self, t: Table, key: &[u8]) -> Result<(), TxError> {
        self.put_value_replacing(t, key).map(|_| ())
    }

    /// Removes a row, accounting bytes; its value is left in `scratch.old`.
    fn remove(&mut self, t: Table, key: &[u8]) -> Result<bool, TxError> {
        let found = self.tx.take(t, key, &mut self.scratch.old)?;
        if found {
            self.acct.sub_bytes(key.len() + self.scratch.old.len());
        }
        Ok(found)
    }

    // ---- message references --------------------------------------------------------

    /// One more reference to `m`; stores its body if it has none yet.
    fn add_ref(&mut self, m: &StoredMessage) -> Result<(), TxError> {
        self.acct.max_msg_id = self.acct.max_msg_id.max(m.id);
        if let Some(u) = self.acct.msgs.get_mut(&m.id) {
            u.refs += 1;
            return Ok(());
        }
        codec::encode_message(&mut self.scratch.value, m);
        let key = keys::id_key(m.id);
        self.put_value(Table::Messages, &key)?;
        self.acct.msgs.insert(
            m.id,
            MsgUse {
                refs: 1,
                bytes: (key.len() + self.scratch.value.len()) as u64,
            },
        );
        Ok(())
    }

    fn release(&mut self, id: u64) {
        if let Some(u) = self.acct.msgs.get_mut(&id) {
            u.refs = u.refs.saturating_sub(1);
            if u.refs == 0 {
                self.acct.zeroed.push(id);
            }
        }
    }

    // ---- queues ------------------------------------------------------------------------

    fn enqueue(&mut self, s: SessionId, seq: u64, d: &DeliveryRecord) -> Result<(), TxError> {
        let size = message_size(&d.msg);
        let q = self.acct.queues.get(&s.0).copied().unwrap_or_default();
        if q.count >= self.limits.max_session_messages
            || q.bytes + size > self.limits.max_session_bytes
        {
            self.applied.dropped_queue_full += 1;
            return Ok(());
        }
        self.acct.max_seq = self.acct.max_seq.max(seq);
        self.add_ref(&d.msg)?;
        codec::encode_queued(&mut self.scratch.value, d, size);
        let key = keys::seq_key(s, seq);
        if self.put_value_replacing(Table::Queue, &key)? {
            // The same entry written twice: undo the old one's counts.
            self.forget_queued(Some(s));
        }
        let q = self.acct.queues.entry(s.0).or_default();
        q.count += 1;
        q.bytes += size;
        Ok(())
    }

    /// Undoes the counts of the queue entry whose value is in `scratch.old`.
    fn forget_queued(&mut self, s: Option<SessionId>) {
        let Ok((msg_id, size)) = codec::queued_head(&self.scratch.old) else {
            return;
        };
        self.release(msg_id);
        if let Some(q) = s.and_then(|s| self.acct.queues.get_mut(&s.0)) {
            q.count = q.count.saturating_sub(1);
            q.bytes = q.bytes.saturating_sub(size);
        }
    }

    fn dequeue(&mut self, key: &[u8]) -> Result<(), TxError> {
        if self.remove(Table::Queue, key)? {
            self.forget_queued(keys::split_session(key).map(|(s, _)| s));
        }
        Ok(())
    }

    // ---- in flight ---------------------------------------------------------------------

    fn put_inflight(&mut self, s: SessionId, r: &InflightRecord) -> Result<(), TxError> {
        self.acct.max_seq = self.acct.max_seq.max(r.seq);
        let size = match &r.state {
            InflightState::Publish(d) => {
                self.add_ref(&d.msg)?;
                message_size(&d.msg)
            }
            InflightState::PubRel => 0,
        };
        codec::encode_inflight(&mut self.scratch.value, r.seq, &r.state, size);
        if self.put_value_replacing(Table::Inflight, &keys::pkid_key(s, r.pkid))? {
            self.forget_inflight();
        }
        Ok(())
    }

    fn forget_inflight(&mut self) {
        if let Ok(Some(id)) = codec::inflight_msg_id(&self.scratch.old) {
            self.release(id);
        }
    }

    fn delete_inflight(&mut self, key: &[u8]) -> Result<(), TxError> {
        if self.remove(Table::Inflight, key)? {
            self.forget_inflight();
        }
        Ok(())
    }

    // ---- retained ----------------------------------------------------------------------

    fn set_retained(&mut self, m: &StoredMessage) -> Result<(), TxError> {
        self.add_ref(m)?;
        codec::encode_id(&mut self.scratch.value, m.id);
        if self.put_value_replacing(Table::Retained, m.topic.as_bytes())? {
            if let Ok(old) = codec::decode_id(&self.scratch.old) {
                self.release(old);
            }
        }
        Ok(())
    }

    fn delete_retained(&mut self, topic: &[u8]) -> Result<(), TxError> {
        if self.remove(Table::Retained, topic)? {
            if let Ok(old) = codec::decode_id(&self.scratch.old) {
                self.release(old);
            }
        }
        Ok(())
    }

    // ---- whole sessions and maintenance ------------------------------------------------

    /// Removes what recovery decided must go.
    pub fn cleanup(&mut self, c: &crate::recover::Cleanup) -> Result<(), TxError> {
        for s in &c.sessions {
            self.delete_session(*s)?;
        }
        for (t, key) in &c.rows {
            match t {
                Table::Queue => self.dequeue(key)?,
                Table::Inflight => self.delete_inflight(key)?,
                Table::Retained => self.delete_retained(key)?,
                other => {
                    self.remove(*other, key)?;
                }
            }
        }
        Ok(())
    }

    fn delete_session(&mut self, s: SessionId) -> Result<(), TxError> {
        let prefix = keys::session_key(s);
        self.remove(Table::Sessions, &prefix)?;
        self.remove(Table::Wills, &prefix)?;
        for t in [Table::Subs, Table::Incoming] {
            for key in keys_with_prefix(self.tx, t, &prefix)? {
                self.remove(t, &key)?;
            }
        }
        for key in keys_with_prefix(self.tx, Table::Queue, &prefix)? {
            self.dequeue(&key)?;
        }
        for key in keys_with_prefix(self.tx, Table::Inflight, &prefix)? {
            self.delete_inflight(&key)?;
        }
        self.acct.queues.remove(&s.0);
        Ok(())
    }

    fn purge_expired(&mut self, now_ms: u64) -> Result<(), TxError> {
        let mut expired = HashSet::new();
        self.tx.scan(Table::Messages, &mut |k, v| {
            if let (Some(id), Ok(Some(at))) = (keys::parse_id(k), codec::message_expiry(v)) {
                if now_ms >= at {
                    expired.insert(id);
                }
            }
            true
        })?;
        if expired.is_empty() {
            return Ok(());
        }
        let mut queued = Vec::new();
        self.tx.scan(Table::Queue, &mut |k, v| {
            if codec::queued_head(v).is_ok_and(|(id, _)| expired.contains(&id)) {
                queued.push(k.to_vec());
            }
            true
        })?;
        let mut retained = Vec::new();
        self.tx.scan(Table::Retained, &mut |k, v| {
            if codec::decode_id(v).is_ok_and(|id| expired.contains(&id)) {
                retained.push(k.to_vec());
            }
            true
        })?;
        self.applied.purged += (queued.len() + retained.len()) as u64;
        for k in queued {
            self.dequeue(&k)?;
        }
        for k in retained {
            self.delete_retained(&k)?;
        }
        Ok(())
    }
}
