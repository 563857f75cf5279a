//! SUBACK (3.1.1 §3.9, 5.0 §3.9): packet identifier, properties (5.0), one
//! return/reason code per filter of the SUBSCRIBE.
//!
//! Before 5.0 the codes are 0x00-0x02 (granted QoS) and 0x80 (failure);
//! every 5.0 failure reason is written as 0x80 there and read back as
//! `UnspecifiedError`.

use bytes::{BufMut, BytesMut};

use super::{PacketType, SubAck};
use crate::properties::{self, PropertyContext};
use crate::wire::Reader;
use crate::{Error, Protocol, ReasonCode};

fn read_reason(b: u8, protocol: Protocol) -> Result<ReasonCode, Error> {
    let code = ReasonCode::from_u8(b);
    let ok = if protocol.is_v5() {
        code.filter(|c| c.valid_for(PacketType::SubAck))
    } else {
        code.filter(|c| {
            matches!(
                c,
                ReasonCode::Success
                    | ReasonCode::GrantedQoS1
                    | ReasonCode::GrantedQoS2
                    | ReasonCode::UnspecifiedError
            )
        })
    };
    ok.ok_or(Error::Malformed("invalid SUBACK return code"))
}

fn write_reason(c: ReasonCode, protocol: Protocol) -> Result<u8, Error> {
    if protocol.is_v5() {
        if c.valid_for(PacketType::SubAck) {
            return Ok(c as u8);
        }
    } else if c.is_error() {
        return Ok(0x80);
    } else if matches!(
        c,
        ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2
    ) {
        return Ok(c as u8);
    }
    Err(Error::Protocol("reason code not allowed in SUBACK"))
}

pub(crate) fn read(r: &mut Reader<'_>, protocol: Protocol) -> Result<SubAck, Error> {
    let pkid = r.u16()?;
    if pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    let properties = if protocol.is_v5() {
        properties::read(r, PropertyContext::SubAck)?
    } else {
        Default::default()
    };
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reasons.push(read_reason(r.u8()?, protocol)?);
    }
    if reasons.is_empty() {
        return Err(Error::Protocol("SUBACK without a return code"));
    }
    Ok(SubAck {
        pkid,
        reasons,
        properties,
    })
}

fn props_len(s: &SubAck, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        s.properties.encoded_len(PropertyContext::SubAck)
    } else {
        0
    }
}

pub(crate) fn remaining_len(s: &SubAck, protocol: Protocol) -> usize {
    let mut n = 2 + s.reasons.len();
    if protocol.is_v5() {
        let pl = props_len(s, protocol);
        n += crate::varint_len(pl as u32) + pl;
    }
    n
}

pub(crate) fn write(s: &SubAck, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    if s.reasons.is_empty() {
        return Err(Error::Protocol("SUBACK without a return code"));
    }
    if s.pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    buf.put_u16(s.pkid);
    if protocol.is_v5() {
        properties::write(
            buf,
            &s.properties,
            PropertyContext::SubAck,
            props_len(s, protocol),
        )?;
    }
    for c in &s.reasons {
        buf.put_u8(write_reason(*c, protocol)?);
    }
    Ok(())
}
