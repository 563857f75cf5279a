//! CONNACK (3.1.1 §3.2, 5.0 §3.2): acknowledge flags, return/reason code,
//! properties (5.0).
//!
//! In MQTT 3.1 the first byte was "reserved, not used": it is written as 0
//! and ignored on read, so `session_present` is always false there.

use bytes::{BufMut, BytesMut};

use super::{ConnAck, PacketType};
use crate::properties::{self, PropertyContext};
use crate::wire::Reader;
use crate::{Error, Protocol, ReasonCode};

pub(crate) fn read(r: &mut Reader<'_>, protocol: Protocol) -> Result<ConnAck, Error> {
    let flags = r.u8()?;
    let code = r.u8()?;
    let session_present = match protocol {
        Protocol::V3_1 => false,
        _ => {
            if flags & 0xFE != 0 {
                return Err(Error::Malformed("CONNACK reserved flags set"));
            }
            flags & 0x01 != 0
        }
    };
    let (reason, properties) = if protocol.is_v5() {
        let reason = ReasonCode::from_u8(code)
            .filter(|c| c.valid_for(PacketType::ConnAck))
            .ok_or(Error::Malformed("invalid CONNACK reason code"))?;
        (reason, properties::read(r, PropertyContext::ConnAck)?)
    } else {
        let reason = ReasonCode::from_v3_connack(code)
            .ok_or(Error::Malformed("reserved CONNACK return code"))?;
        (reason, Default::default())
    };
    r.finish("bytes after the end of CONNACK")?;
    Ok(ConnAck {
        session_present,
        reason,
        properties,
    })
}

fn props_len(c: &ConnAck, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        c.properties.encoded_len(PropertyContext::ConnAck)
    } else {
        0
    }
}

pub(crate) fn remaining_len(c: &ConnAck, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        let p = props_len(c, protocol);
        2 + crate::varint_len(p as u32) + p
    } else {
        2
    }
}

pub(crate) fn write(c: &ConnAck, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    let flags = u8::from(c.session_present && protocol != Protocol::V3_1);
    buf.put_u8(flags);
    if protocol.is_v5() {
        if !c.reason.valid_for(PacketType::ConnAck) {
            return Err(Error::Protocol("reason code not allowed in CONNACK"));
        }
        buf.put_u8(c.reason as u8);
        properties::write(
            buf,
            &c.properties,
            PropertyContext::ConnAck,
            props_len(c, protocol),
        )
    } else {
        buf.put_u8(c.reason.to_v3_connack());
        Ok(())
    }
}
