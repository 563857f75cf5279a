//! UNSUBSCRIBE (3.1.1 §3.10, 5.0 §3.10): packet identifier, properties
//! (5.0), then one or more topic filters. Filter syntax is the broker's to
//! check, as for SUBSCRIBE.

use bytes::{BufMut, BytesMut};

use super::Unsubscribe;
use crate::properties::{self, PropertyContext};
use crate::wire::{field_len, put_string, Reader};
use crate::{Error, Protocol};

pub(crate) fn read(r: &mut Reader<'_>, protocol: Protocol) -> Result<Unsubscribe, Error> {
    let pkid = r.u16()?;
    if pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    let properties = if protocol.is_v5() {
        properties::read(r, PropertyContext::Unsubscribe)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(Error::Protocol("UNSUBSCRIBE without a topic filter"));
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        properties,
    })
}

fn props_len(u: &Unsubscribe, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        u.properties.encoded_len(PropertyContext::Unsubscribe)
    } else {
        0
    }
}

pub(crate) fn remaining_len(u: &Unsubscribe, protocol: Protocol) -> usize {
    let mut n = 2;
    if protocol.is_v5() {
        let pl = props_len(u, protocol);
        n += crate::varint_len(pl as u32) + pl;
    }
    for f in &u.filters {
        n += field_len(f.len());
    }
    n
}

pub(crate) fn write(u: &Unsubscribe, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    if u.pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    if u.filters.is_empty() {
        return Err(Error::Protocol("UNSUBSCRIBE without a topic filter"));
    }
    buf.put_u16(u.pkid);
    if protocol.is_v5() {
        properties::write(
            buf,
            &u.properties,
            PropertyContext::Unsubscribe,
            props_len(u, protocol),
        )?;
    }
    for f in &u.filters {
        put_string(buf, f)?;
    }
    Ok(())
}
