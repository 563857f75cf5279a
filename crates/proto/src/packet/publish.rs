//! PUBLISH (3.1.1 §3.3, 5.0 §3.3): flags in the fixed header (DUP, QoS,
//! RETAIN); topic name, packet identifier (QoS > 0), properties (5.0);
//! payload to the end.
//!
//! Checks: QoS 3 and DUP on QoS 0 are malformed; packet identifier 0 on
//! QoS > 0 and a wildcard in the topic are protocol errors (reason 0x82; the
//! 5.0 text also allows 0x90, the broker may prefer that); an empty topic is
//! a protocol error before 5.0, and in 5.0 unless a Topic Alias is present
//! (MQTT-3.3.2-8 / §3.3.2.3.4). The payload format (Payload Format Indicator
//! 1 with non-UTF-8 payload) is left to the receiver, who answers 0x99.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Packet, Publish};
use crate::properties::{self, PropertyContext};
use crate::wire::{put_binary, Reader};
use crate::{Error, Properties, Protocol, QoS};

const DUP: u8 = 0x08;
const RETAIN: u8 = 0x01;

/// Decodes a PUBLISH from `bytes`, the whole packet, whose fixed header is
/// `header_len` bytes long and starts with `byte1`.
///
/// This is the hot path, so it is shaped for the optimiser: the packet is
/// built in one expression straight into the returned value (no moves of
/// the 400-byte `Properties`), the payload is `bytes` itself advanced past
/// the header (no reference count traffic), and an empty 5.0 property block
/// is skipped without a call.
#[inline]
pub(crate) fn decode(
    mut bytes: Bytes,
    header_len: usize,
    byte1: u8,
    protocol: Protocol,
) -> Result<Packet, Error> {
    let qos = QoS::from_u8((byte1 >> 1) & 0x03).ok_or(Error::Malformed("PUBLISH QoS 3"))?;
    let dup = byte1 & DUP != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(Error::Malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let mut r = Reader::new(&bytes, header_len);
    let topic = r.topic_name()?;
    let pkid = if qos == QoS::AtMostOnce {
        0
    } else {
        match r.u16()? {
            0 => return Err(Error::Protocol("packet identifier 0")),
            id => id,
        }
    };
    let properties = if !protocol.is_v5() {
        Properties::default()
    } else if r.peek_u8() == Some(0) {
        r.skip(1);
        Properties::default()
    } else {
        properties::read(&mut r, PropertyContext::Publish)?
    };
    if topic.is_empty() {
        if !protocol.is_v5() {
            return Err(Error::Protocol("empty topic name"));
        }
        if properties.topic_alias.is_none() {
            return Err(Error::Protocol("empty topic name without topic alias"));
        }
    }
    let payload_at = r.position();
    bytes.advance(payload_at);
    Ok(Packet::Publish(Publish {
        dup,
        qos,
        retain: byte1 & RETAIN != 0,
        topic,
        pkid,
        payload: bytes,
        properties,
    }))
}

/// The first byte of the fixed header. DUP is only written for QoS > 0.
#[inline]
pub(crate) fn byte1(p: &Publish) -> u8 {
    let mut b = 0x30 | ((p.qos as u8) << 1);
    if p.dup && p.qos != QoS::AtMostOnce {
        b |= DUP;
    }
    if p.retain {
        b |= RETAIN;
    }
    b
}

#[inline]
fn props_len(p: &Publish, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        p.properties.encoded_len(PropertyContext::Publish)
    } else {
        0
    }
}

#[inline]
pub(crate) fn remaining_len(p: &Publish, protocol: Protocol) -> usize {
    let mut n = 2 + p.topic.len() + p.payload.len();
    if p.qos != QoS::AtMostOnce {
        n += 2;
    }
    if protocol.is_v5() {
        let pl = props_len(p, protocol);
        n += crate::varint_len(pl as u32) + pl;
    }
    n
}

#[inline]
pub(crate) fn write(p: &Publish, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    if p.topic.is_empty() && (!protocol.is_v5() || p.properties.topic_alias.is_none()) {
        return Err(Error::Protocol("empty topic name without topic alias"));
    }
    put_binary(buf, p.topic.as_bytes())?;
    if p.qos != QoS::AtMostOnce {
        if p.pkid == 0 {
            return Err(Error::Protocol("packet identifier 0 on a QoS > 0 PUBLISH"));
        }
        buf.put_u16(p.pkid);
    }
    if protocol.is_v5() {
        properties::write(
            buf,
            &p.properties,
            PropertyContext::Publish,
            props_len(p, protocol),
        )?;
    }
    buf.put_slice(&p.payload);
    Ok(())
}
