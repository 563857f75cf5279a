//! AUTH (5.0 §3.15 only; the packet type is reserved before 5.0). Reason
//! code and properties; both may be left out (remaining length 0) when the
//! reason is Success and there are no properties. A lone reason code
//! (remaining length 1) is accepted on read, as for DISCONNECT, but the
//! encoder always writes the property length after a reason code.

use bytes::{BufMut, BytesMut};

use super::{Auth, PacketType};
use crate::properties::{self, PropertyContext};
use crate::wire::Reader;
use crate::{Error, ReasonCode};

pub(crate) fn read(r: &mut Reader<'_>) -> Result<Auth, Error> {
    let mut a = Auth {
        reason: ReasonCode::Success,
        properties: Default::default(),
    };
    if !r.is_empty() {
        a.reason = ReasonCode::from_u8(r.u8()?)
            .filter(|c| c.valid_for(PacketType::Auth))
            .ok_or(Error::Malformed("invalid AUTH reason code"))?;
        if !r.is_empty() {
            a.properties = properties::read(r, PropertyContext::Auth)?;
        }
    }
    r.finish("bytes after the end of AUTH")?;
    Ok(a)
}

pub(crate) fn remaining_len(a: &Auth) -> usize {
    let pl = a.properties.encoded_len(PropertyContext::Auth);
    if pl == 0 && a.reason == ReasonCode::Success {
        0
    } else {
        1 + crate::varint_len(pl as u32) + pl
    }
}

pub(crate) fn write(a: &Auth, buf: &mut BytesMut) -> Result<(), Error> {
    if !a.reason.valid_for(PacketType::Auth) {
        return Err(Error::Protocol("reason code not allowed in AUTH"));
    }
    let pl = a.properties.encoded_len(PropertyContext::Auth);
    if pl == 0 && a.reason == ReasonCode::Success {
        return Ok(());
    }
    buf.put_u8(a.reason as u8);
    properties::write(buf, &a.properties, PropertyContext::Auth, pl)
}
