//! UNSUBACK (3.1.1 §3.11, 5.0 §3.11): packet identifier; in 5.0 also
//! properties and one reason code per filter (at least one). Before 5.0 the
//! packet is the identifier alone and `reasons` stays empty.

use bytes::{BufMut, BytesMut};

use super::{PacketType, UnsubAck};
use crate::properties::{self, PropertyContext};
use crate::wire::Reader;
use crate::{Error, Protocol, ReasonCode};

pub(crate) fn read(r: &mut Reader<'_>, protocol: Protocol) -> Result<UnsubAck, Error> {
    let pkid = r.u16()?;
    if pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    let mut ack = UnsubAck {
        pkid,
        reasons: Vec::new(),
        properties: Default::default(),
    };
    if !protocol.is_v5() {
        r.finish("bytes after the end of UNSUBACK")?;
        return Ok(ack);
    }
    ack.properties = properties::read(r, PropertyContext::UnsubAck)?;
    ack.reasons.reserve(r.remaining());
    while !r.is_empty() {
        let c = ReasonCode::from_u8(r.u8()?)
            .filter(|c| c.valid_for(PacketType::UnsubAck))
            .ok_or(Error::Malformed("invalid UNSUBACK reason code"))?;
        ack.reasons.push(c);
    }
    if ack.reasons.is_empty() {
        return Err(Error::Protocol("UNSUBACK without a reason code"));
    }
    Ok(ack)
}

fn props_len(u: &UnsubAck, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        u.properties.encoded_len(PropertyContext::UnsubAck)
    } else {
        0
    }
}

pub(crate) fn remaining_len(u: &UnsubAck, protocol: Protocol) -> usize {
    if !protocol.is_v5() {
        return 2;
    }
    let pl = props_len(u, protocol);
    2 + crate::varint_len(pl as u32) + pl + u.reasons.len()
}

pub(crate) fn write(u: &UnsubAck, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    if u.pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    buf.put_u16(u.pkid);
    if !protocol.is_v5() {
        return Ok(());
    }
    if u.reasons.is_empty() {
        return Err(Error::Protocol("UNSUBACK without a reason code"));
    }
    properties::write(
        buf,
        &u.properties,
        PropertyContext::UnsubAck,
        props_len(u, protocol),
    )?;
    for c in &u.reasons {
        if !c.valid_for(PacketType::UnsubAck) {
            return Err(Error::Protocol("reason code not allowed in UNSUBACK"));
        }
        buf.put_u8(*c as u8);
    }
    Ok(())
}
