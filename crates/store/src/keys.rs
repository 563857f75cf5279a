//! The tables of the store and how their keys are laid out. Every table maps
//! bytes to bytes; numbers in keys are big-endian so that byte order is
//! numeric order, and per-session rows start with the session id so that
//! one range holds all of a session's rows in order.

use crate::record::SessionId;

/// A table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    /// name -> value: format version, last commit time.
    Meta,
    /// message id -> message body.
    Messages,
    /// session id -> session record.
    Sessions,
    /// session id + filter -> subscription options.
    Subs,
    /// session id + seq -> delivery (message id, QoS, ...).
    Queue,
    /// session id + packet id -> in-flight state.
    Inflight,
    /// session id + packet id -> (nothing): inbound QoS 2 awaiting PUBREL.
    Incoming,
    /// topic -> message id.
    Retained,
    /// session id -> will.
    Wills,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Meta,
        Table::Messages,
        Table::Sessions,
        Table::Subs,
        Table::Queue,
        Table::Inflight,
        Table::Incoming,
        Table::Retained,
        Table::Wills,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind of record its values hold.
    pub fn kind(self) -> u8 {
        use crate::codec::kind;
        match self {
            Table::Meta => kind::META,
            Table::Messages => kind::MESSAGE,
            Table::Sessions => kind::SESSION,
            Table::Subs => kind::SUBSCRIPTION,
            Table::Queue => kind::QUEUED,
            Table::Inflight => kind::INFLIGHT,
            Table::Incoming => kind::INCOMING,
            Table::Retained => kind::RETAINED,
            Table::Wills => kind::WILL,
        }
    }

    /// The table whose values are of `kind`.
    pub fn of_kind(kind: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.kind() == kind)
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Messages => "messages",
            Table::Sessions => "sessions",
            Table::Subs => "subscriptions",
            Table::Queue => "queue",
            Table::Inflight => "inflight",
            Table::Incoming => "incoming",
            Table::Retained => "retained",
            Table::Wills => "wills",
        }
    }
}

/// Meta keys.
pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_LAST_COMMIT_MS: &[u8] = b"last_commit_ms";

pub(crate) fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

pub(crate) fn session_key(s: SessionId) -> [u8; 8] {
    s.0.to_be_bytes()
}

pub(crate) fn seq_key(s: SessionId, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&s.0.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn pkid_key(s: SessionId, pkid: u16) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..8].copy_from_slice(&s.0.to_be_bytes());
    k[8..].copy_from_slice(&pkid.to_be_bytes());
    k
}

/// Session id + a string (a subscription's filter).
pub(crate) fn str_key(s: SessionId, text: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&s.0.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A key that is exactly 8 bytes: a message or session id.
pub(crate) fn parse_id(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Splits a per-session key into the session id and the rest.
pub(crate) fn split_session(key: &[u8]) -> Option<(SessionId, &[u8])> {
    let (head, rest) = key.split_at_checked(8)?;
    Some((SessionId(u64::from_be_bytes(head.try_into().ok()?)), rest))
}

pub(crate) fn parse_seq(rest: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

pub(crate) fn parse_pkid(rest: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(rest.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_numeric_order() {
        let a = seq_key(SessionId(1), 255);
        let b = seq_key(SessionId(1), 256);
        let c = seq_key(SessionId(2), 0);
        assert!(a < b && b < c);
        let (s, rest) = split_session(&b).unwrap_or((SessionId(0), &[]));
        assert_eq!(s, SessionId(1));
        assert_eq!(parse_seq(rest), Some(256));
        let p = pkid_key(SessionId(7), 513);
        let (s, rest) = split_session(&p).unwrap_or((SessionId(0), &[]));
        assert_eq!((s, parse_pkid(rest)), (SessionId(7), Some(513)));
        assert_eq!(parse_id(&id_key(42)), Some(42));
        assert_eq!(parse_id(&[1, 2]), None);
    }
}
