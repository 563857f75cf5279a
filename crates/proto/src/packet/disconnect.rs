//! DISCONNECT (3.1.1 §3.14, 5.0 §3.14). Empty before 5.0. In 5.0 a reason
//! code and properties, both optional: remaining length 0 means Normal
//! disconnection, 1 a reason code without properties.

use bytes::{BufMut, BytesMut};

use super::{Disconnect, PacketType};
use crate::properties::{self, PropertyContext};
use crate::wire::Reader;
use crate::{Error, Protocol, ReasonCode};

pub(crate) fn read(r: &mut Reader<'_>, protocol: Protocol) -> Result<Disconnect, Error> {
    let mut d = Disconnect::new(ReasonCode::Success);
    if protocol.is_v5() && !r.is_empty() {
        d.reason = ReasonCode::from_u8(r.u8()?)
            .filter(|c| c.valid_for(PacketType::Disconnect))
            .ok_or(Error::Malformed("invalid DISCONNECT reason code"))?;
        if !r.is_empty() {
            d.properties = properties::read(r, PropertyContext::Disconnect)?;
        }
    }
    r.finish("bytes after the end of DISCONNECT")?;
    Ok(d)
}

fn props_len(d: &Disconnect) -> usize {
    d.properties.encoded_len(PropertyContext::Disconnect)
}

pub(crate) fn remaining_len(d: &Disconnect, protocol: Protocol) -> usize {
    if !protocol.is_v5() {
        return 0;
    }
    let pl = props_len(d);
    if pl > 0 {
        1 + crate::varint_len(pl as u32) + pl
    } else if d.reason != ReasonCode::Success {
        1
    } else {
        0
    }
}

pub(crate) fn write(d: &Disconnect, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    if !protocol.is_v5() {
        return Ok(());
    }
    if !d.reason.valid_for(PacketType::Disconnect) {
        return Err(Error::Protocol("reason code not allowed in DISCONNECT"));
    }
    let pl = props_len(d);
    if pl > 0 || d.reason != ReasonCode::Success {
        buf.put_u8(d.reason as u8);
    }
    if pl > 0 {
        properties::write(buf, &d.properties, PropertyContext::Disconnect, pl)?;
    }
    Ok(())
}
