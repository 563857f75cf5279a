//! The compact binary encoding of record values, hand-written so that a
//! queue entry costs a dozen bytes and nothing allocates per record.
//!
//! Every value is `crc32 (4 bytes, little-endian) | kind (1 byte) | body`,
//! the checksum covering kind and body, so that a damaged row is told apart
//! from a good one (load skips it, repair drops it) and a row found outside
//! its table (repair scanning raw pages) still says what it is. Integers are LEB128 varints; strings and byte strings are a varint
//! length and the bytes. [`FORMAT_VERSION`] names this layout: it is stored
//! in the data directory and in the database, and any change to the layout
//! bumps it.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Properties, Protocol, QoS, RetainHandling, SubscriptionOptions};

use crate::record::{InflightState, SessionRecord, StoredMessage, SubscriptionRecord, WillRecord};

/// The version of the data directory and of this encoding.
pub const FORMAT_VERSION: u32 = 1;

/// A value that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad record: {0}")]
pub struct CodecError(pub &'static str);

type Result<T> = std::result::Result<T, CodecError>;

// ---- framing ---------------------------------------------------------------

/// What a value is: the byte after the checksum.
pub(crate) mod kind {
    pub const MESSAGE: u8 = 1;
    pub const SESSION: u8 = 2;
    pub const SUBSCRIPTION: u8 = 3;
    pub const QUEUED: u8 = 4;
    pub const INFLIGHT: u8 = 5;
    pub const INCOMING: u8 = 6;
    pub const RETAINED: u8 = 7;
    pub const WILL: u8 = 8;
    pub const META: u8 = 9;
}

/// Starts a value of `kind` in `out` (cleared): room for the checksum.
pub(crate) fn begin(out: &mut Vec<u8>, kind: u8) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
}

/// Ends a value started with [`begin`]: writes the checksum.
pub(crate) fn seal(out: &mut [u8]) {
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
}

/// The kind and body of a value whose checksum matches.
pub(crate) fn open(value: &[u8]) -> Result<(u8, &[u8])> {
    let (crc, rest) = value
        .split_at_checked(4)
        .ok_or(CodecError("shorter than its checksum"))?;
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(rest) != want {
        return Err(CodecError("checksum mismatch"));
    }
    let (kind, body) = rest.split_first().ok_or(CodecError("no kind"))?;
    Ok((*kind, body))
}

/// The body of a value of `want` kind whose checksum matches.
pub(crate) fn open_as(value: &[u8], want: u8) -> Result<&[u8]> {
    match open(value)? {
        (k, body) if k == want => Ok(body),
        _ => Err(CodecError("record of another kind")),
    }
}

// ---- primitives --------------------------------------------------------------

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads a body. Over `Bytes` so that strings and payloads are slices of
/// one buffer, not copies.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    /// A reader over the body of a value of `kind`, after checking its
    /// checksum.
    pub fn sealed(value: &[u8], kind: u8) -> Result<Self> {
        Ok(Reader::new(Bytes::copy_from_slice(open_as(value, kind)?)))
    }

    fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(CodecError("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError("varint too long"))
    }

    fn u32(&mut self) -> Result<u32> {
        u32::try_from(self.varint()?).map_err(|_| CodecError("number out of range"))
    }

    fn bytes(&mut self) -> Result<Bytes> {
        let len = usize::try_from(self.varint()?).map_err(|_| CodecError("length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or(CodecError("truncated"))?;
        let b = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(b)
    }

    fn string(&mut self) -> Result<ByteString> {
        ByteString::try_from(self.bytes()?).map_err(|_| CodecError("invalid UTF-8"))
    }

    fn rest(&mut self) -> Bytes {
        let b = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        b
    }

    fn done(&self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(CodecError("trailing bytes"))
        }
    }
}

/// Reads numbers off a slice without copying it (the writer's hot path
/// only needs a queue entry's message id and size).
struct Numbers<'a>(&'a [u8]);

impl Numbers<'_> {
    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (b, rest) = self.0.split_first().ok_or(CodecError("truncated"))?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError("varint too long"))
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        self.0 = self.0.get(n..).ok_or(CodecError("truncated"))?;
        Ok(())
    }
}

/// The message id and size of a queue entry, without decoding the rest.
pub(crate) fn queued_head(value: &[u8]) -> Result<(u64, u64)> {
    let mut r = Numbers(open_as(value, kind::QUEUED)?);
    let id = r.varint()?;
    r.skip(1)?;
    Ok((id, r.varint()?))
}

/// The message id of an in-flight PUBLISH entry (None for PUBREL).
pub(crate) fn inflight_msg_id(value: &[u8]) -> Result<Option<u64>> {
    let body = open_as(value, kind::INFLIGHT)?;
    let mut r = Numbers(body);
    let tag = *body.first().ok_or(CodecError("truncated"))?;
    r.skip(1)?;
    r.varint()?;
    match tag {
        0 => r.varint().map(Some),
        1 => Ok(None),
        _ => Err(CodecError("bad in-flight tag")),
    }
}

fn qos(bits: u8) -> Result<QoS> {
    QoS::from_u8(bits & 3).ok_or(CodecError("bad QoS"))
}

// ---- messages ------------------------------------------------------------------

const M_RETAIN: u8 = 1 << 2;
const M_EXPIRY: u8 = 1 << 3;
const M_PUBLISHER: u8 = 1 << 4;
const M_PROPS: u8 = 1 << 5;

const P_FORMAT: u8 = 1;
const P_CONTENT_TYPE: u8 = 1 << 1;
const P_RESPONSE_TOPIC: u8 = 1 << 2;
const P_CORRELATION: u8 = 1 << 3;
const P_USER: u8 = 1 << 4;

/// Appends a message body (without checksum) to `out`; the payload goes
/// last, unprefixed, so that it costs no length.
pub(crate) fn put_message(out: &mut Vec<u8>, m: &StoredMessage) {
    let p = &m.properties;
    let mut mask = 0u8;
    if p.payload_format_indicator.is_some() {
        mask |= P_FORMAT;
    }
    if p.content_type.is_some() {
        mask |= P_CONTENT_TYPE;
    }
    if p.response_topic.is_some() {
        mask |= P_RESPONSE_TOPIC;
    }
    if p.correlation_data.is_some() {
        mask |= P_CORRELATION;
    }
    if !p.user_properties.is_empty() {
        mask |= P_USER;
    }
    let mut flags = m.qos as u8;
    if m.retain {
        flags |= M_RETAIN;
    }
    if m.expires_at_ms.is_some() {
        flags |= M_EXPIRY;
    }
    if m.publisher.is_some() {
        flags |= M_PUBLISHER;
    }
    if mask != 0 {
        flags |= M_PROPS;
    }
    out.push(flags);
    if let Some(at) = m.expires_at_ms {
        put_varint(out, at);
    }
    put_bytes(out, m.topic.as_bytes());
    if let Some(p) = &m.publisher {
        put_bytes(out, p.as_bytes());
    }
    if mask != 0 {
        out.push(mask);
        if let Some(f) = p.payload_format_indicator {
            out.push(f);
        }
        if let Some(s) = &p.content_type {
            put_bytes(out, s.as_bytes());
        }
        if let Some(s) = &p.response_topic {
            put_bytes(out, s.as_bytes());
        }
        if let Some(b) = &p.correlation_data {
            put_bytes(out, b);
        }
        if !p.user_properties.is_empty() {
            put_varint(out, p.user_properties.len() as u64);
            for (k, v) in &p.user_properties {
                put_bytes(out, k.as_bytes());
                put_bytes(out, v.as_bytes());
            }
        }
    }
    out.extend_from_slice(&m.payload);
}

/// Encodes a message as a sealed value into `out`.
pub(crate) fn encode_message(out: &mut Vec<u8>, m: &StoredMessage) {
    begin(out, kind::MESSAGE);
    put_message(out, m);
    seal(out);
}

/// Reads a message body (the rest of `r`).
pub(crate) fn read_message(r: &mut Reader, id: u64) -> Result<StoredMessage> {
    let flags = r.u8()?;
    let expires_at_ms = if flags & M_EXPIRY != 0 {
        Some(r.varint()?)
    } else {
        None
    };
    let topic = r.string()?;
    let publisher = if flags & M_PUBLISHER != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let mut properties = Properties::default();
    if flags & M_PROPS != 0 {
        let mask = r.u8()?;
        if mask & P_FORMAT != 0 {
            properties.payload_format_indicator = Some(r.u8()?);
        }
        if mask & P_CONTENT_TYPE != 0 {
            properties.content_type = Some(r.string()?);
        }
        if mask & P_RESPONSE_TOPIC != 0 {
            properties.response_topic = Some(r.string()?);
        }
        if mask & P_CORRELATION != 0 {
            properties.correlation_data = Some(r.bytes()?);
        }
        if mask & P_USER != 0 {
            let n = r.varint()?;
            for _ in 0..n {
                let k = r.string()?;
                let v = r.string()?;
                properties.user_properties.push((k, v));
            }
        }
    }
    Ok(StoredMessage {
        id,
        topic,
        payload: r.rest(),
        qos: qos(flags)?,
        retain: flags & M_RETAIN != 0,
        properties,
        publisher,
        expires_at_ms,
    })
}

pub(crate) fn decode_message(id: u64, value: &[u8]) -> Result<StoredMessage> {
    read_message(&mut Reader::sealed(value, kind::MESSAGE)?, id)
}

/// The expiry of an encoded message, without decoding the rest.
pub(crate) fn message_expiry(value: &[u8]) -> Result<Option<u64>> {
    let body = open_as(value, kind::MESSAGE)?;
    let flags = *body.first().ok_or(CodecError("empty message"))?;
    if flags & M_EXPIRY == 0 {
        return Ok(None);
    }
    Numbers(&body[1..]).varint().map(Some)
}

// ---- deliveries (queue and in-flight entries) -------------------------------------

/// A delivery as stored: the message by id, plus the body's size so that
/// per-session byte accounting needs no lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryRef {
    pub msg_id: u64,
    pub qos: QoS,
    pub retain: bool,
    pub size: u64,
    pub sub_ids: Vec<u32>,
    pub share: Option<ByteString>,
}

const D_RETAIN: u8 = 1 << 2;
const D_SHARE: u8 = 1 << 3;

fn put_delivery(
    out: &mut Vec<u8>,
    msg_id: u64,
    qos: QoS,
    retain: bool,
    size: u64,
    sub_ids: &[u32],
    share: Option<&str>,
) {
    put_varint(out, msg_id);
    let mut flags = qos as u8;
    if retain {
        flags |= D_RETAIN;
    }
    if share.is_some() {
        flags |= D_SHARE;
    }
    out.push(flags);
    put_varint(out, size);
    put_varint(out, sub_ids.len() as u64);
    for id in sub_ids {
        put_varint(out, u64::from(*id));
    }
    if let Some(s) = share {
        put_bytes(out, s.as_bytes());
    }
}

fn read_delivery(r: &mut Reader) -> Result<DeliveryRef> {
    let msg_id = r.varint()?;
    let flags = r.u8()?;
    let size = r.varint()?;
    let n = r.varint()?;
    let mut sub_ids = Vec::new();
    for _ in 0..n {
        sub_ids.push(r.u32()?);
    }
    let share = if flags & D_SHARE != 0 {
        Some(r.string()?)
    } else {
        None
    };
    Ok(DeliveryRef {
        msg_id,
        qos: qos(flags)?,
        retain: flags & D_RETAIN != 0,
        size,
        sub_ids,
        share,
    })
}

/// A queue entry value.
pub(crate) fn encode_queued(out: &mut Vec<u8>, d: &crate::record::DeliveryRecord, size: u64) {
    begin(out, kind::QUEUED);
    put_delivery(
        out,
        d.msg.id,
        d.qos,
        d.retain,
        size,
        &d.sub_ids,
        d.share.as_deref(),
    );
    seal(out);
}

pub(crate) fn decode_queued(value: &[u8]) -> Result<DeliveryRef> {
    let mut r = Reader::sealed(value, kind::QUEUED)?;
    let d = read_delivery(&mut r)?;
    r.done()?;
    Ok(d)
}

/// An in-flight entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InflightRef {
    Publish { seq: u64, delivery: DeliveryRef },
    PubRel { seq: u64 },
}

impl InflightRef {
    pub fn msg_id(&self) -> Option<u64> {
        match self {
            InflightRef::Publish { delivery, .. } => Some(delivery.msg_id),
            InflightRef::PubRel { .. } => None,
        }
    }
}

pub(crate) fn encode_inflight(out: &mut Vec<u8>, seq: u64, state: &InflightState, size: u64) {
    begin(out, kind::INFLIGHT);
    match state {
        InflightState::Publish(d) => {
            out.push(0);
            put_varint(out, seq);
            put_delivery(
                out,
                d.msg.id,
                d.qos,
                d.retain,
                size,
                &d.sub_ids,
                d.share.as_deref(),
            );
        }
        InflightState::PubRel => {
            out.push(1);
            put_varint(out, seq);
        }
    }
    seal(out);
}

pub(crate) fn decode_inflight(value: &[u8]) -> Result<InflightRef> {
    let mut r = Reader::sealed(value, kind::INFLIGHT)?;
    let tag = r.u8()?;
    let seq = r.varint()?;
    let out = match tag {
        0 => InflightRef::Publish {
            seq,
            delivery: read_delivery(&mut r)?,
        },
        1 => InflightRef::PubRel { seq },
        _ => return Err(CodecError("bad in-flight tag")),
    };
    r.done()?;
    Ok(out)
}

// ---- small records -----------------------------------------------------------------

/// A value with an empty body (inbound QoS 2 entries).
pub(crate) fn encode_incoming(out: &mut Vec<u8>) {
    begin(out, kind::INCOMING);
    seal(out);
}

pub(crate) fn decode_incoming(value: &[u8]) -> Result<()> {
    Reader::sealed(value, kind::INCOMING)?.done()
}

fn encode_number(out: &mut Vec<u8>, kind: u8, v: u64) {
    begin(out, kind);
    put_varint(out, v);
    seal(out);
}

fn decode_number(value: &[u8], kind: u8) -> Result<u64> {
    let mut r = Numbers(open_as(value, kind)?);
    let v = r.varint()?;
    if !r.0.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(v)
}

/// A retained topic's value: the message id.
pub(crate) fn encode_id(out: &mut Vec<u8>, id: u64) {
    encode_number(out, kind::RETAINED, id);
}

pub(crate) fn decode_id(value: &[u8]) -> Result<u64> {
    decode_number(value, kind::RETAINED)
}

/// A meta value (format version, times).
pub(crate) fn encode_u64(out: &mut Vec<u8>, v: u64) {
    encode_number(out, kind::META, v);
}

pub(crate) fn decode_u64(value: &[u8]) -> Result<u64> {
    decode_number(value, kind::META)
}

const S_DISCONNECTED: u8 = 1;
const S_USERNAME: u8 = 1 << 1;

pub(crate) fn encode_session(out: &mut Vec<u8>, s: &SessionRecord) {
    begin(out, kind::SESSION);
    out.push(s.protocol.level());
    let mut flags = 0;
    if s.disconnected_at.is_some() {
        flags |= S_DISCONNECTED;
    }
    if s.username.is_some() {
        flags |= S_USERNAME;
    }
    out.push(flags);
    put_varint(out, u64::from(s.expiry_interval));
    if let Some(at) = s.disconnected_at {
        put_varint(out, at);
    }
    put_bytes(out, s.client_id.as_bytes());
    if let Some(u) = &s.username {
        put_bytes(out, u.as_bytes());
    }
    seal(out);
}

pub(crate) fn decode_session(value: &[u8]) -> Result<SessionRecord> {
    let mut r = Reader::sealed(value, kind::SESSION)?;
    let protocol = match r.u8()? {
        3 => Protocol::V3_1,
        4 => Protocol::V3_1_1,
        5 => Protocol::V5,
        _ => return Err(CodecError("bad protocol level")),
    };
    let flags = r.u8()?;
    let expiry_interval = r.u32()?;
    let disconnected_at = if flags & S_DISCONNECTED != 0 {
        Some(r.varint()?)
    } else {
        None
    };
    let client_id = r.string()?;
    let username = if flags & S_USERNAME != 0 {
        Some(r.string()?)
    } else {
        None
    };
    r.done()?;
    Ok(SessionRecord {
        client_id,
        protocol,
        expiry_interval,
        disconnected_at,
        username,
    })
}

/// A subscription's value (the filter is in the key).
pub(crate) fn encode_subscription(out: &mut Vec<u8>, s: &SubscriptionRecord) {
    begin(out, kind::SUBSCRIPTION);
    let o = &s.options;
    let mut b = o.qos as u8;
    if o.no_local {
        b |= 1 << 2;
    }
    if o.retain_as_published {
        b |= 1 << 3;
    }
    b |= (o.retain_handling as u8) << 4;
    out.push(b);
    put_varint(out, u64::from(s.id.unwrap_or(0)));
    seal(out);
}

pub(crate) fn decode_subscription(filter: &[u8], value: &[u8]) -> Result<SubscriptionRecord> {
    let mut r = Reader::sealed(value, kind::SUBSCRIPTION)?;
    let b = r.u8()?;
    let retain_handling = match (b >> 4) & 3 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(CodecError("bad retain handling")),
    };
    let id = r.u32()?;
    r.done()?;
    let filter = ByteString::try_from(Bytes::copy_from_slice(filter))
        .map_err(|_| CodecError("filter not UTF-8"))?;
    Ok(SubscriptionRecord {
        filter,
        options: SubscriptionOptions {
            qos: qos(b)?,
            no_local: b & (1 << 2) != 0,
            retain_as_published: b & (1 << 3) != 0,
            retain_handling,
        },
        id: (id != 0).then_some(id),
    })
}

pub(crate) fn encode_will(out: &mut Vec<u8>, w: &WillRecord) {
    begin(out, kind::WILL);
    put_varint(out, u64::from(w.delay));
    match w.due_at_ms {
        Some(at) => {
            out.push(1);
            put_varint(out, at);
        }
        None => out.push(0),
    }
    put_message(out, &w.msg);
    seal(out);
}

pub(crate) fn decode_will(value: &[u8]) -> Result<WillRecord> {
    let mut r = Reader::sealed(value, kind::WILL)?;
    let delay = r.u32()?;
    let due_at_ms = match r.u8()? {
        0 => None,
        1 => Some(r.varint()?),
        _ => return Err(CodecError("bad will flag")),
    };
    let msg = read_message(&mut r, 0)?;
    Ok(WillRecord {
        msg,
        delay,
        due_at_ms,
    })
}

/// Resolves a stored delivery against the loaded messages.
pub(crate) fn resolve(d: DeliveryRef, msg: Arc<StoredMessage>) -> crate::record::DeliveryRecord {
    crate::record::DeliveryRecord {
        msg,
        qos: d.qos,
        retain: d.retain,
        sub_ids: d.sub_ids,
        share: d.share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DeliveryRecord;

    fn msg() -> StoredMessage {
        let properties = Properties {
            payload_format_indicator: Some(1),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            ..Properties::default()
        };
        StoredMessage {
            id: 9,
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hello"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties,
            publisher: Some("pub-1".into()),
            expires_at_ms: Some(1_700_000_000_123),
        }
    }

    #[test]
    fn message_round_trip_and_expiry_peek() {
        let mut buf = Vec::new();
        let m = msg();
        encode_message(&mut buf, &m);
        assert_eq!(decode_message(9, &buf), Ok(m.clone()));
        assert_eq!(message_expiry(&buf), Ok(Some(1_700_000_000_123)));
        let plain = StoredMessage {
            properties: Properties::default(),
            publisher: None,
            expires_at_ms: None,
            payload: Bytes::new(),
            ..m
        };
        encode_message(&mut buf, &plain);
        // flags + topic, nothing else (plus checksum and kind).
        assert_eq!(buf.len(), 4 + 1 + 1 + 1 + 3);
        assert_eq!(decode_message(9, &buf), Ok(plain));
        assert_eq!(message_expiry(&buf), Ok(None));
    }

    #[test]
    fn queue_entry_is_small() {
        let d = DeliveryRecord {
            msg: Arc::new(msg()),
            qos: QoS::AtLeastOnce,
            retain: false,
            sub_ids: vec![],
            share: None,
        };
        let mut buf = Vec::new();
        encode_queued(&mut buf, &d, 300);
        assert!(buf.len() <= 11, "{} bytes", buf.len());
        let r = decode_queued(&buf);
        assert_eq!(
            r,
            Ok(DeliveryRef {
                msg_id: 9,
                qos: QoS::AtLeastOnce,
                retain: false,
                size: 300,
                sub_ids: vec![],
                share: None
            })
        );
    }

    #[test]
    fn heads_match_full_decoding() {
        let m = Arc::new(msg());
        let d = DeliveryRecord {
            msg: m.clone(),
            qos: QoS::ExactlyOnce,
            retain: true,
            sub_ids: vec![3, 400],
            share: Some("$share/g/t".into()),
        };
        let mut buf = Vec::new();
        encode_queued(&mut buf, &d, 70_000);
        assert_eq!(queued_head(&buf), Ok((9, 70_000)));
        encode_inflight(&mut buf, 12345, &InflightState::Publish(d), 5);
        assert_eq!(inflight_msg_id(&buf), Ok(Some(9)));
        encode_inflight(&mut buf, 12345, &InflightState::PubRel, 0);
        assert_eq!(inflight_msg_id(&buf), Ok(None));
        assert!(
            queued_head(&buf).is_err(),
            "an in-flight value is not a queue entry"
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut buf = Vec::new();
        encode_message(&mut buf, &msg());
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(decode_message(9, &bad).is_err(), "flip at {i} undetected");
        }
        assert!(decode_message(9, &buf[..buf.len() - 1]).is_err());
        assert!(decode_message(9, &[]).is_err());
    }

    #[test]
    fn varint_limits() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            out.clear();
            put_varint(&mut out, v);
            assert_eq!(Reader::new(Bytes::from(out.clone())).varint(), Ok(v));
        }
        let long = Bytes::from(vec![0xff; 11]);
        assert!(Reader::new(long).varint().is_err());
    }
}
