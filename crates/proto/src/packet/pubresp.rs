//! PUBACK, PUBREC, PUBREL, PUBCOMP (3.1.1 §3.4-3.7, 5.0 §3.4-3.7): packet
//! identifier, then in 5.0 an optional reason code and optional properties.
//!
//! 5.0 short forms: remaining length 2 means Success without properties, 3
//! means a reason code without properties. The encoder writes the shortest
//! form that carries the packet.

use bytes::{BufMut, BytesMut};

use super::{PacketType, PubResp};
use crate::properties::{self, PropertyContext};
use crate::wire::Reader;
use crate::{Error, Protocol, ReasonCode};

fn context(kind: PacketType) -> PropertyContext {
    match kind {
        PacketType::PubAck => PropertyContext::PubAck,
        PacketType::PubRec => PropertyContext::PubRec,
        PacketType::PubRel => PropertyContext::PubRel,
        _ => PropertyContext::PubComp,
    }
}

pub(crate) fn read(
    r: &mut Reader<'_>,
    kind: PacketType,
    protocol: Protocol,
) -> Result<PubResp, Error> {
    let pkid = r.u16()?;
    if pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    let mut resp = PubResp::new(pkid);
    if protocol.is_v5() && !r.is_empty() {
        resp.reason = ReasonCode::from_u8(r.u8()?)
            .filter(|c| c.valid_for(kind))
            .ok_or(Error::Malformed(
                "invalid reason code for this acknowledgement",
            ))?;
        if !r.is_empty() {
            resp.properties = properties::read(r, context(kind))?;
        }
    }
    r.finish("bytes after the end of the acknowledgement")?;
    Ok(resp)
}

fn props_len(p: &PubResp, kind: PacketType, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        p.properties.encoded_len(context(kind))
    } else {
        0
    }
}

pub(crate) fn remaining_len(p: &PubResp, kind: PacketType, protocol: Protocol) -> usize {
    if !protocol.is_v5() {
        return 2;
    }
    let pl = props_len(p, kind, protocol);
    if pl > 0 {
        3 + crate::varint_len(pl as u32) + pl
    } else if p.reason != ReasonCode::Success {
        3
    } else {
        2
    }
}

pub(crate) fn write(
    p: &PubResp,
    kind: PacketType,
    protocol: Protocol,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    if p.pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    buf.put_u16(p.pkid);
    if !protocol.is_v5() {
        return Ok(());
    }
    if !p.reason.valid_for(kind) {
        return Err(Error::Protocol(
            "reason code not allowed in this acknowledgement",
        ));
    }
    let pl = props_len(p, kind, protocol);
    if pl > 0 || p.reason != ReasonCode::Success {
        buf.put_u8(p.reason as u8);
    }
    if pl > 0 {
        properties::write(buf, &p.properties, context(kind), pl)?;
    }
    Ok(())
}
