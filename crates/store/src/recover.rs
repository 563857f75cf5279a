//! Recovery: reads every table back into the broker's terms, and lists what
//! must go: sessions whose expiry passed while the broker was down (their
//! wills are handed back as due), expired queued and retained messages,
//! rows that fail their checksum, and rows that point at nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::codec::{self, InflightRef};
use crate::error::TxError;
use crate::keys::{self, Table};
use crate::record::{
    InflightRecord, InflightState, QueuedRecord, SessionId, SessionRecord, StoredMessage,
    SubscriptionRecord, WillRecord,
};
use crate::tx::Scan;

/// One session as recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSession {
    pub id: SessionId,
    /// `disconnected_at` is always set: a session that was online when the
    /// broker stopped gets the store's last commit time.
    pub record: SessionRecord,
    pub subscriptions: Vec<SubscriptionRecord>,
    /// In queue order.
    pub queue: Vec<QueuedRecord>,
    /// In send order (`seq`).
    pub inflight: Vec<InflightRecord>,
    /// Inbound QoS 2 packet ids awaiting PUBREL.
    pub incoming: Vec<u16>,
    pub will: Option<WillRecord>,
}

/// What was dropped at recovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Sessions whose expiry passed while the broker was down.
    pub sessions_expired: usize,
    /// Queued and retained messages whose expiry passed.
    pub messages_expired: usize,
    /// Rows that failed their checksum or did not decode.
    pub bad_rows: usize,
    /// Rows pointing at a missing session or message.
    pub dangling: usize,
}

/// Everything a broker needs to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// In session id order.
    pub sessions: Vec<RecoveredSession>,
    pub retained: Vec<Arc<StoredMessage>>,
    /// Wills of sessions that ended while the broker was down: both their
    /// delay and their session are over, so they are due now.
    pub due_wills: Vec<WillRecord>,
    pub report: RecoveryReport,
}

impl Recovered {
    /// The session of `client_id`, if recovered.
    pub fn session(&self, client_id: &str) -> Option<&RecoveredSession> {
        self.sessions
            .iter()
            .find(|s| &*s.record.client_id == client_id)
    }
}

/// Rows recovery decided to remove.
#[derive(Debug, Default)]
pub(crate) struct Cleanup {
    pub sessions: Vec<SessionId>,
    pub rows: Vec<(Table, Vec<u8>)>,
}

/// Reads the whole store as of `now_ms` (UNIX milliseconds).
pub(crate) fn load<S: Scan + ?Sized>(
    s: &mut S,
    now_ms: u64,
) -> Result<(Recovered, Cleanup), TxError> {
    let mut out = Recovered::default();
    let mut cleanup = Cleanup::default();
    let report = &mut out.report;
    let now_s = now_ms / 1000;

    let mut last_commit_ms = None;
    s.scan(Table::Meta, &mut |k, v| {
        if k == keys::META_LAST_COMMIT_MS {
            last_commit_ms = codec::decode_u64(v).ok();
        }
        true
    })?;
    let last_alive_s = last_commit_ms.map_or(now_s, |ms| ms / 1000);

    let mut msgs: HashMap<u64, Arc<StoredMessage>> = HashMap::new();
    s.scan(Table::Messages, &mut |k, v| {
        match keys::parse_id(k).map(|id| (id, codec::decode_message(id, v))) {
            Some((id, Ok(m))) => {
                msgs.insert(id, Arc::new(m));
            }
            // A bad body is not removed here: the rows that reference it
            // are, and the body goes with its last reference.
            Some((_, Err(_))) => report.bad_rows += 1,
            None => {
                report.bad_rows += 1;
                cleanup.rows.push((Table::Messages, k.to_vec()));
            }
        }
        true
    })?;

    let mut live: BTreeMap<u64, RecoveredSession> = BTreeMap::new();
    let mut ended: HashSet<u64> = HashSet::new();
    s.scan(Table::Sessions, &mut |k, v| {
        let Some(id) = keys::parse_id(k) else {
            report.bad_rows += 1;
            cleanup.rows.push((Table::Sessions, k.to_vec()));
            return true;
        };
        let Ok(mut record) = codec::decode_session(v) else {
            report.bad_rows += 1;
            cleanup.sessions.push(SessionId(id));
            ended.insert(id);
            return true;
        };
        let since = record.disconnected_at.unwrap_or(last_alive_s);
        let expired = record.expiry_interval == 0
            || (record.expiry_interval != u32::MAX
                && since.saturating_add(u64::from(record.expiry_interval)) <= now_s);
        if expired {
            report.sessions_expired += 1;
            cleanup.sessions.push(SessionId(id));
            ended.insert(id);
        } else {
            record.disconnected_at = Some(since);
            live.insert(
                id,
                RecoveredSession {
                    id: SessionId(id),
                    record,
                    subscriptions: Vec::new(),
                    queue: Vec::new(),
                    inflight: Vec::new(),
                    incoming: Vec::new(),
                    will: None,
                },
            );
        }
        true
    })?;

    // One session per client id: two can only come from damage (a repair
    // that found an older, replaced session); the newer id wins.
    let mut by_client: HashMap<bytestring::ByteString, u64> = HashMap::new();
    let mut superseded = Vec::new();
    for (id, sess) in &live {
        // Ids ascend: a later one replaces an earlier one.
        if let Some(older) = by_client.insert(sess.record.client_id.clone(), *id) {
            superseded.push(older);
        }
    }
    for id in superseded {
        live.remove(&id);
        report.dangling += 1;
        cleanup.sessions.push(SessionId(id));
        ended.insert(id);
    }

    // Per-session rows: attach to a live session; rows of ended sessions go
    // with `DeleteSession`; anything else is removed.
    enum Verdict<'a> {
        Live(&'a mut RecoveredSession, &'a [u8]),
        Skip,
    }
    fn owner<'a, 'k>(
        live: &'a mut BTreeMap<u64, RecoveredSession>,
        ended: &HashSet<u64>,
        report: &mut RecoveryReport,
        cleanup: &mut Cleanup,
        t: Table,
        k: &'k [u8],
    ) -> Verdict<'a>
    where
        'k: 'a,
    {
        match keys::split_session(k) {
            Some((sid, rest)) => {
                if let Some(s) = live.get_mut(&sid.0) {
                    return Verdict::Live(s, rest);
                }
                if !ended.contains(&sid.0) {
                    report.dangling += 1;
                    cleanup.rows.push((t, k.to_vec()));
                }
                Verdict::Skip
            }
            None => {
                report.bad_rows += 1;
                cleanup.rows.push((t, k.to_vec()));
                Verdict::Skip
            }
        }
    }

    s.scan(Table::Subs, &mut |k, v| {
        if let Verdict::Live(sess, filter) =
            owner(&mut live, &ended, report, &mut cleanup, Table::Subs, k)
        {
            match codec::decode_subscription(filter, v) {
                Ok(sub) => sess.subscriptions.push(sub),
                Err(_) => {
                    report.bad_rows += 1;
                    cleanup.rows.push((Table::Subs, k.to_vec()));
                }
            }
        }
        true
    })?;

    s.scan(Table::Queue, &mut |k, v| {
        if let Verdict::Live(sess, rest) =
            owner(&mut live, &ended, report, &mut cleanup, Table::Queue, k)
        {
            let (Some(seq), Ok(d)) = (keys::parse_seq(rest), codec::decode_queued(v)) else {
                report.bad_rows += 1;
                cleanup.rows.push((Table::Queue, k.to_vec()));
                return true;
            };
            match msgs.get(&d.msg_id) {
                None => {
                    report.dangling += 1;
                    cleanup.rows.push((Table::Queue, k.to_vec()));
                }
                Some(m) if m.is_expired(now_ms) => {
                    report.messages_expired += 1;
                    cleanup.rows.push((Table::Queue, k.to_vec()));
                }
                Some(m) => sess.queue.push(QueuedRecord {
                    seq,
                    delivery: codec::resolve(d, m.clone()),
                }),
            }
        }
        true
    })?;

    s.scan(Table::Inflight, &mut |k, v| {
        if let Verdict::Live(sess, rest) =
            owner(&mut live, &ended, report, &mut cleanup, Table::Inflight, k)
        {
            let (Some(pkid), Ok(i)) = (keys::parse_pkid(rest), codec::decode_inflight(v)) else {
                report.bad_rows += 1;
                cleanup.rows.push((Table::Inflight, k.to_vec()));
                return true;
            };
            let rec = match i {
                InflightRef::PubRel { seq } => Some(InflightRecord {
                    pkid,
                    seq,
                    state: InflightState::PubRel,
                }),
                // An exchange already started completes even if the
                // message has expired since.
                InflightRef::Publish { seq, delivery } => {
                    msgs.get(&delivery.msg_id).map(|m| InflightRecord {
                        pkid,
                        seq,
                        state: InflightState::Publish(codec::resolve(delivery, m.clone())),
                    })
                }
            };
            match rec {
                Some(r) => sess.inflight.push(r),
                None => {
                    report.dangling += 1;
                    cleanup.rows.push((Table::Inflight, k.to_vec()));
                }
            }
        }
        true
    })?;

    s.scan(Table::Incoming, &mut |k, v| {
        if let Verdict::Live(sess, rest) =
            owner(&mut live, &ended, report, &mut cleanup, Table::Incoming, k)
        {
            match (keys::parse_pkid(rest), codec::decode_incoming(v)) {
                (Some(pkid), Ok(())) => sess.incoming.push(pkid),
                _ => {
                    report.bad_rows += 1;
                    cleanup.rows.push((Table::Incoming, k.to_vec()));
                }
            }
        }
        true
    })?;

    let mut due_wills = Vec::new();
    s.scan(Table::Wills, &mut |k, v| {
        let will = codec::decode_will(v);
        let sid = keys::parse_id(k);
        match (sid, will) {
            (Some(sid), Ok(w)) => {
                if let Some(sess) = live.get_mut(&sid) {
                    sess.will = Some(w);
                } else if ended.contains(&sid) {
                    due_wills.push(w);
                } else {
                    report.dangling += 1;
                    cleanup.rows.push((Table::Wills, k.to_vec()));
                }
            }
            _ => {
                report.bad_rows += 1;
                cleanup.rows.push((Table::Wills, k.to_vec()));
            }
        }
        true
    })?;

    let mut retained = Vec::new();
    s.scan(Table::Retained, &mut |k, v| {
        let Ok(id) = codec::decode_id(v) else {
            report.bad_rows += 1;
            cleanup.rows.push((Table::Retained, k.to_vec()));
            return true;
        };
        match msgs.get(&id) {
            None => {
                report.dangling += 1;
                cleanup.rows.push((Table::Retained, k.to_vec()));
            }
            Some(m) if m.is_expired(now_ms) => {
                report.messages_expired += 1;
                cleanup.rows.push((Table::Retained, k.to_vec()));
            }
            Some(m) => retained.push(m.clone()),
        }
        true
    })?;

    for sess in live.values_mut() {
        sess.inflight.sort_by_key(|r| r.seq);
    }
    out.sessions = live.into_values().collect();
    out.retained = retained;
    out.due_wills = due_wills;
    Ok((out, cleanup))
}
