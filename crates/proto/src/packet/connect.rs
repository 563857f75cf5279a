//! CONNECT (MQTT 3.1 §3.1, 3.1.1 §3.1, 5.0 §3.1).
//!
//! Variable header: protocol name, protocol level, connect flags, keep alive,
//! properties (5.0). Payload: client id, will properties (5.0), will topic,
//! will payload, user name, password; the last five only when their flags
//! say so.
//!
//! The will topic is only checked to be a valid UTF-8 string here: a
//! wildcard in it is answered by the broker with CONNACK 0x90 (Topic Name
//! Invalid), which needs the CONNECT to have been decoded.

use bytes::{BufMut, BytesMut};

use super::{Connect, Will};
use crate::properties::{self, PropertyContext};
use crate::wire::{field_len, put_binary, put_string, Reader};
use crate::{Error, Protocol, QoS};

const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

fn protocol_name(p: Protocol) -> &'static [u8] {
    match p {
        Protocol::V3_1 => b"MQIsdp",
        Protocol::V3_1_1 | Protocol::V5 => b"MQTT",
    }
}

/// Reads the protocol name and level. A known name with an unknown level is
/// `UnsupportedProtocolVersion` so the broker can answer CONNACK 0x01
/// (3.x) or 0x84 (5.0); an unknown name is a protocol error.
fn read_protocol(r: &mut Reader<'_>) -> Result<Protocol, Error> {
    let name = r.binary()?;
    let level = r.u8()?;
    match (&name[..], level) {
        (b"MQIsdp", 3) => Ok(Protocol::V3_1),
        (b"MQTT", 4) => Ok(Protocol::V3_1_1),
        (b"MQTT", 5) => Ok(Protocol::V5),
        (b"MQIsdp" | b"MQTT", l) => Err(Error::UnsupportedProtocolVersion(l)),
        _ => Err(Error::Protocol("unknown protocol name")),
    }
}

pub(crate) fn read(r: &mut Reader<'_>) -> Result<Connect, Error> {
    let protocol = read_protocol(r)?;
    let flags = r.u8()?;
    if flags & RESERVED != 0 {
        return Err(Error::Malformed("CONNECT reserved flag set"));
    }
    let will_flag = flags & WILL != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & WILL_RETAIN != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(Error::Malformed("will QoS or retain set without will flag"));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(Error::Malformed("will QoS 3"))?;
    let has_password = flags & PASSWORD != 0;
    let has_username = flags & USERNAME != 0;
    if has_password && !has_username && !protocol.is_v5() {
        return Err(Error::Malformed("password flag without user name flag"));
    }
    let keep_alive = r.u16()?;
    let properties = if protocol.is_v5() {
        properties::read(r, PropertyContext::Connect)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if protocol.is_v5() {
            properties::read(r, PropertyContext::Will)?
        } else {
            Default::default()
        };
        let topic = r.string()?;
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish("bytes after the end of CONNECT")?;
    Ok(Connect {
        protocol,
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// Property block lengths (content only) of CONNECT and its will, 0 before 5.0.
fn prop_lens(c: &Connect) -> (usize, usize) {
    if !c.protocol.is_v5() {
        return (0, 0);
    }
    let p = c.properties.encoded_len(PropertyContext::Connect);
    let w = c
        .will
        .as_ref()
        .map_or(0, |w| w.properties.encoded_len(PropertyContext::Will));
    (p, w)
}

fn with_prefix(v5: bool, len: usize) -> usize {
    if v5 {
        crate::varint_len(len as u32) + len
    } else {
        0
    }
}

pub(crate) fn remaining_len(c: &Connect) -> usize {
    let v5 = c.protocol.is_v5();
    let (p, w) = prop_lens(c);
    let mut n = field_len(protocol_name(c.protocol).len()) + 1 + 1 + 2;
    n += with_prefix(v5, p);
    n += field_len(c.client_id.len());
    if let Some(will) = &c.will {
        n += with_prefix(v5, w);
        n += field_len(will.topic.len()) + field_len(will.payload.len());
    }
    if let Some(u) = &c.username {
        n += field_len(u.len());
    }
    if let Some(pw) = &c.password {
        n += field_len(pw.len());
    }
    n
}

pub(crate) fn write(c: &Connect, buf: &mut BytesMut) -> Result<(), Error> {
    if c.password.is_some() && c.username.is_none() && !c.protocol.is_v5() {
        return Err(Error::Protocol(
            "password without user name is not allowed before MQTT 5.0",
        ));
    }
    let (p, w) = prop_lens(c);
    put_binary(buf, protocol_name(c.protocol))?;
    buf.put_u8(c.protocol.level());
    let mut flags = 0u8;
    if c.clean_start {
        flags |= CLEAN_START;
    }
    if let Some(will) = &c.will {
        flags |= WILL | ((will.qos as u8) << 3);
        if will.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    if c.protocol.is_v5() {
        properties::write(buf, &c.properties, PropertyContext::Connect, p)?;
    }
    put_string(buf, &c.client_id)?;
    if let Some(will) = &c.will {
        if c.protocol.is_v5() {
            properties::write(buf, &will.properties, PropertyContext::Will, w)?;
        }
        put_string(buf, &will.topic)?;
        put_binary(buf, &will.payload)?;
    }
    if let Some(u) = &c.username {
        put_string(buf, u)?;
    }
    if let Some(pw) = &c.password {
        put_binary(buf, pw)?;
    }
    Ok(())
}
