//! SUBSCRIBE (3.1.1 §3.8, 5.0 §3.8): packet identifier, properties (5.0),
//! then one or more (topic filter, options byte) pairs.
//!
//! Options byte: before 5.0 only the QoS bits (others must be 0); in 5.0
//! QoS (bits 0-1), No Local (2), Retain As Published (3), Retain Handling
//! (4-5), reserved (6-7, must be 0). QoS 3 and Retain Handling 3 are
//! malformed. Filter syntax is left to the broker, which answers per filter
//! in SUBACK (so is No Local on a shared subscription, MQTT-3.8.3-4).

use bytes::{BufMut, BytesMut};

use super::{RetainHandling, Subscribe, Subscription, SubscriptionOptions};
use crate::properties::{self, PropertyContext};
use crate::wire::{field_len, put_string, Reader};
use crate::{Error, Protocol, QoS};

const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;

fn read_options(b: u8, protocol: Protocol) -> Result<SubscriptionOptions, Error> {
    let qos = QoS::from_u8(b & 0x03).ok_or(Error::Malformed("subscription QoS 3"))?;
    if !protocol.is_v5() {
        if b & 0xFC != 0 {
            return Err(Error::Malformed("reserved subscription option bits set"));
        }
        return Ok(SubscriptionOptions {
            qos,
            ..Default::default()
        });
    }
    if b & 0xC0 != 0 {
        return Err(Error::Malformed("reserved subscription option bits set"));
    }
    let retain_handling = match (b >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(Error::Malformed("retain handling 3")),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: b & NO_LOCAL != 0,
        retain_as_published: b & RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

/// The options byte for `protocol`: only the QoS before 5.0.
pub(crate) fn options_byte(o: &SubscriptionOptions, protocol: Protocol) -> u8 {
    let mut b = o.qos as u8;
    if protocol.is_v5() {
        if o.no_local {
            b |= NO_LOCAL;
        }
        if o.retain_as_published {
            b |= RETAIN_AS_PUBLISHED;
        }
        b |= (o.retain_handling as u8) << 4;
    }
    b
}

pub(crate) fn read(r: &mut Reader<'_>, protocol: Protocol) -> Result<Subscribe, Error> {
    let pkid = r.u16()?;
    if pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    let properties = if protocol.is_v5() {
        properties::read(r, PropertyContext::Subscribe)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = read_options(r.u8()?, protocol)?;
        filters.push(Subscription { filter, options });
    }
    if filters.is_empty() {
        return Err(Error::Protocol("SUBSCRIBE without a topic filter"));
    }
    Ok(Subscribe {
        pkid,
        filters,
        properties,
    })
}

fn props_len(s: &Subscribe, protocol: Protocol) -> usize {
    if protocol.is_v5() {
        s.properties.encoded_len(PropertyContext::Subscribe)
    } else {
        0
    }
}

pub(crate) fn remaining_len(s: &Subscribe, protocol: Protocol) -> usize {
    let mut n = 2;
    if protocol.is_v5() {
        let pl = props_len(s, protocol);
        n += crate::varint_len(pl as u32) + pl;
    }
    for f in &s.filters {
        n += field_len(f.filter.len()) + 1;
    }
    n
}

pub(crate) fn write(s: &Subscribe, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    if s.pkid == 0 {
        return Err(Error::Protocol("packet identifier 0"));
    }
    if s.filters.is_empty() {
        return Err(Error::Protocol("SUBSCRIBE without a topic filter"));
    }
    buf.put_u16(s.pkid);
    if protocol.is_v5() {
        properties::write(
            buf,
            &s.properties,
            PropertyContext::Subscribe,
            props_len(s, protocol),
        )?;
    }
    for f in &s.filters {
        put_string(buf, &f.filter)?;
        buf.put_u8(options_byte(&f.options, protocol));
    }
    Ok(())
}
