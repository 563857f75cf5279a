//! Reading and writing a property block: a variable byte integer length,
//! then (identifier, value) pairs.
//!
//! Error choices (MQTT 5.0 §2.2.2.2 and the per-property text):
//! * an unknown identifier, or one not allowed in this packet: `Malformed`
//!   ("a Control Packet which contains an Identifier which is not valid for
//!   its packet type ... is a Malformed Packet");
//! * a property given twice (other than User Property, and Subscription
//!   Identifier in PUBLISH), a value out of range (Subscription Identifier 0,
//!   Receive Maximum 0, Maximum Packet Size 0, a 0/1 byte holding something
//!   else), Authentication Data without Authentication Method, a wildcard in
//!   Response Topic: `Protocol`;
//! * Topic Alias 0: `TopicAliasInvalid` (reason code 0x94).
//!
//! The encoder writes properties in ascending identifier order (repeated
//! ones in their `Vec` order) and leaves out those the context forbids, so
//! its output always decodes.

use bytes::{BufMut, BytesMut};

use super::rules::{id::*, PropertyContext, KNOWN};
use super::Properties;
use crate::varint::{varint_len, write_varint};
use crate::wire::{put_binary, put_string, Reader};
use crate::Error;

/// Reads a property block (length prefix included) for `ctx`.
pub(crate) fn read(r: &mut Reader<'_>, ctx: PropertyContext) -> Result<Properties, Error> {
    let mut p = Properties::default();
    let len = r.varint()? as usize;
    if len == 0 {
        return Ok(p);
    }
    let mut r = r.sub(len)?;
    let allowed = ctx.allowed_mask();
    let mut seen = 0u64;
    while !r.is_empty() {
        // The identifier is a variable byte integer (§2.2.2.2) although every
        // defined one fits in its first byte.
        let pid = r.varint()?;
        if pid >= 64 || KNOWN & (1u64 << pid) == 0 {
            return Err(Error::Malformed("unknown property identifier"));
        }
        let bit = 1u64 << pid;
        if allowed & bit == 0 {
            return Err(Error::Malformed("property not allowed in this packet"));
        }
        let repeatable = pid as u8 == USER_PROPERTY
            || (pid as u8 == SUBSCRIPTION_IDENTIFIER && ctx == PropertyContext::Publish);
        if seen & bit != 0 && !repeatable {
            return Err(Error::Protocol("property included more than once"));
        }
        seen |= bit;
        read_one(&mut r, pid as u8, &mut p)?;
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(Error::Protocol(
            "authentication data without authentication method",
        ));
    }
    Ok(p)
}

#[inline]
fn flag(r: &mut Reader<'_>) -> Result<u8, Error> {
    match r.u8()? {
        v @ (0 | 1) => Ok(v),
        _ => Err(Error::Protocol("property value must be 0 or 1")),
    }
}

fn read_one(r: &mut Reader<'_>, pid: u8, p: &mut Properties) -> Result<(), Error> {
    match pid {
        PAYLOAD_FORMAT_INDICATOR => p.payload_format_indicator = Some(flag(r)?),
        MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(r.u32()?),
        CONTENT_TYPE => p.content_type = Some(r.string()?),
        RESPONSE_TOPIC => p.response_topic = Some(r.topic_name()?),
        CORRELATION_DATA => p.correlation_data = Some(r.binary()?),
        SUBSCRIPTION_IDENTIFIER => {
            let v = r.varint()?;
            if v == 0 {
                return Err(Error::Protocol("subscription identifier 0"));
            }
            p.subscription_identifiers.push(v);
        }
        SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(r.string()?),
        SERVER_KEEP_ALIVE => p.server_keep_alive = Some(r.u16()?),
        AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
        AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
        REQUEST_PROBLEM_INFORMATION => p.request_problem_information = Some(flag(r)?),
        WILL_DELAY_INTERVAL => p.will_delay_interval = Some(r.u32()?),
        REQUEST_RESPONSE_INFORMATION => p.request_response_information = Some(flag(r)?),
        RESPONSE_INFORMATION => p.response_information = Some(r.string()?),
        SERVER_REFERENCE => p.server_reference = Some(r.string()?),
        REASON_STRING => p.reason_string = Some(r.string()?),
        RECEIVE_MAXIMUM => {
            let v = r.u16()?;
            if v == 0 {
                return Err(Error::Protocol("receive maximum 0"));
            }
            p.receive_maximum = Some(v);
        }
        TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
        TOPIC_ALIAS => {
            let v = r.u16()?;
            if v == 0 {
                return Err(Error::TopicAliasInvalid);
            }
            p.topic_alias = Some(v);
        }
        MAXIMUM_QOS => p.maximum_qos = Some(flag(r)?),
        RETAIN_AVAILABLE => p.retain_available = Some(flag(r)?),
        USER_PROPERTY => p.user_properties.push(r.string_pair()?),
        MAXIMUM_PACKET_SIZE => {
            let v = r.u32()?;
            if v == 0 {
                return Err(Error::Protocol("maximum packet size 0"));
            }
            p.maximum_packet_size = Some(v);
        }
        WILDCARD_SUBSCRIPTION_AVAILABLE => p.wildcard_subscription_available = Some(flag(r)?),
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => p.subscription_identifier_available = Some(flag(r)?),
        SHARED_SUBSCRIPTION_AVAILABLE => p.shared_subscription_available = Some(flag(r)?),
        // `read` only passes identifiers in KNOWN.
        _ => return Err(Error::Malformed("unknown property identifier")),
    }
    Ok(())
}

/// One property value, borrowed, for the shared walk of [`each`].
enum Value<'a> {
    Byte(u8),
    Two(u16),
    Four(u32),
    Var(u32),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

impl Value<'_> {
    #[inline]
    fn len(&self) -> usize {
        match self {
            Value::Byte(_) => 1,
            Value::Two(_) => 2,
            Value::Four(_) => 4,
            Value::Var(v) => varint_len(*v),
            Value::Str(s) => 2 + s.len(),
            Value::Bin(b) => 2 + b.len(),
            Value::Pair(k, v) => 4 + k.len() + v.len(),
        }
    }
}

/// Calls `f` for every property set in `p` and allowed in `ctx`, in
/// ascending identifier order. Length and writing share this walk so they
/// cannot disagree.
#[inline]
fn each<E>(
    p: &Properties,
    ctx: PropertyContext,
    mut f: impl FnMut(u8, Value<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let ok = |pid: u8| ctx.allows(pid);
    macro_rules! one {
        ($field:expr, $pid:expr, $v:ident => $value:expr) => {
            if let Some($v) = &$field {
                if ok($pid) {
                    f($pid, $value)?;
                }
            }
        };
    }
    one!(p.payload_format_indicator, PAYLOAD_FORMAT_INDICATOR, v => Value::Byte(*v));
    one!(p.message_expiry_interval, MESSAGE_EXPIRY_INTERVAL, v => Value::Four(*v));
    one!(p.content_type, CONTENT_TYPE, v => Value::Str(v));
    one!(p.response_topic, RESPONSE_TOPIC, v => Value::Str(v));
    one!(p.correlation_data, CORRELATION_DATA, v => Value::Bin(v));
    if ok(SUBSCRIPTION_IDENTIFIER) {
        for v in &p.subscription_identifiers {
            f(SUBSCRIPTION_IDENTIFIER, Value::Var(*v))?;
        }
    }
    one!(p.session_expiry_interval, SESSION_EXPIRY_INTERVAL, v => Value::Four(*v));
    one!(p.assigned_client_identifier, ASSIGNED_CLIENT_IDENTIFIER, v => Value::Str(v));
    one!(p.server_keep_alive, SERVER_KEEP_ALIVE, v => Value::Two(*v));
    one!(p.authentication_method, AUTHENTICATION_METHOD, v => Value::Str(v));
    one!(p.authentication_data, AUTHENTICATION_DATA, v => Value::Bin(v));
    one!(p.request_problem_information, REQUEST_PROBLEM_INFORMATION, v => Value::Byte(*v));
    one!(p.will_delay_interval, WILL_DELAY_INTERVAL, v => Value::Four(*v));
    one!(p.request_response_information, REQUEST_RESPONSE_INFORMATION, v => Value::Byte(*v));
    one!(p.response_information, RESPONSE_INFORMATION, v => Value::Str(v));
    one!(p.server_reference, SERVER_REFERENCE, v => Value::Str(v));
    one!(p.reason_string, REASON_STRING, v => Value::Str(v));
    one!(p.receive_maximum, RECEIVE_MAXIMUM, v => Value::Two(*v));
    one!(p.topic_alias_maximum, TOPIC_ALIAS_MAXIMUM, v => Value::Two(*v));
    one!(p.topic_alias, TOPIC_ALIAS, v => Value::Two(*v));
    one!(p.maximum_qos, MAXIMUM_QOS, v => Value::Byte(*v));
    one!(p.retain_available, RETAIN_AVAILABLE, v => Value::Byte(*v));
    if ok(USER_PROPERTY) {
        for (k, v) in &p.user_properties {
            f(USER_PROPERTY, Value::Pair(k, v))?;
        }
    }
    one!(p.maximum_packet_size, MAXIMUM_PACKET_SIZE, v => Value::Four(*v));
    one!(p.wildcard_subscription_available, WILDCARD_SUBSCRIPTION_AVAILABLE, v => Value::Byte(*v));
    one!(p.subscription_identifier_available, SUBSCRIPTION_IDENTIFIER_AVAILABLE, v => Value::Byte(*v));
    one!(p.shared_subscription_available, SHARED_SUBSCRIPTION_AVAILABLE, v => Value::Byte(*v));
    Ok(())
}

/// Length of the block's content (without the length prefix).
pub(crate) fn content_len(p: &Properties, ctx: PropertyContext) -> usize {
    let mut n = 0usize;
    let _ = each::<()>(p, ctx, |_, v| {
        // Every defined identifier is below 128: one byte.
        n += 1 + v.len();
        Ok(())
    });
    n
}

/// Writes the block with its length prefix; `len` is [`content_len`].
pub(crate) fn write(
    buf: &mut BytesMut,
    p: &Properties,
    ctx: PropertyContext,
    len: usize,
) -> Result<(), Error> {
    crate::wire::put_varint(buf, len)?;
    if len == 0 {
        return Ok(());
    }
    each(p, ctx, |pid, v| {
        buf.put_u8(pid);
        match v {
            Value::Byte(b) => buf.put_u8(b),
            Value::Two(x) => buf.put_u16(x),
            Value::Four(x) => buf.put_u32(x),
            Value::Var(x) => {
                if x > crate::MAX_REMAINING_LENGTH as u32 {
                    return Err(Error::Malformed("subscription identifier over 268,435,455"));
                }
                write_varint(buf, x)
            }
            Value::Str(s) => put_string(buf, s)?,
            Value::Bin(b) => put_binary(buf, b)?,
            Value::Pair(k, v) => {
                put_string(buf, k)?;
                put_string(buf, v)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use bytestring::ByteString;

    use super::*;

    fn decode(ctx: PropertyContext, block: &'static [u8]) -> Result<Properties, Error> {
        let b = Bytes::from_static(block);
        let mut r = Reader::new(&b, 0);
        let p = read(&mut r, ctx)?;
        r.finish("trailing")?;
        Ok(p)
    }

    #[test]
    fn reads_publish_properties() {
        let p = decode(
            PropertyContext::Publish,
            &[
                15, 0x01, 0x01, // payload format 1
                0x23, 0x00, 0x05, // topic alias 5
                0x0B, 0x02, 0x0B, 0x81, 0x01, // subscription ids 2 and 129
                0x26, 0x00, 0x00, 0x00, 0x00, // user property ("", "")
            ],
        );
        let mut want = Properties {
            payload_format_indicator: Some(1),
            topic_alias: Some(5),
            subscription_identifiers: vec![2, 129],
            ..Properties::default()
        };
        want.user_properties
            .push((ByteString::new(), ByteString::new()));
        assert_eq!(p, Ok(want));
    }

    #[test]
    fn write_then_read_is_identity_and_ordered() {
        let p = Properties {
            session_expiry_interval: Some(10),
            receive_maximum: Some(20),
            user_properties: vec![("a".into(), "b".into()), ("a".into(), "c".into())],
            ..Properties::default()
        };
        let len = content_len(&p, PropertyContext::Connect);
        let mut buf = BytesMut::new();
        assert_eq!(write(&mut buf, &p, PropertyContext::Connect, len), Ok(()));
        assert_eq!(
            &buf[..],
            &[
                22, 0x11, 0, 0, 0, 10, 0x21, 0, 20, 0x26, 0, 1, b'a', 0, 1, b'b', 0x26, 0, 1, b'a',
                0, 1, b'c'
            ][..]
        );
        let b = buf.freeze();
        let mut r = Reader::new(&b, 0);
        assert_eq!(read(&mut r, PropertyContext::Connect), Ok(p));
    }

    #[test]
    fn encoder_leaves_out_what_the_context_forbids() {
        let p = Properties {
            topic_alias: Some(3),
            reason_string: Some("why".into()),
            ..Properties::default()
        };
        assert_eq!(content_len(&p, PropertyContext::PubAck), 6);
        assert_eq!(content_len(&p, PropertyContext::Publish), 3);
        assert_eq!(content_len(&p, PropertyContext::Connect), 0);
    }

    #[test]
    fn rejections() {
        use PropertyContext as C;
        let cases: &[(C, &'static [u8], Error)] = &[
            (
                C::Publish,
                &[2, 0x11, 0],
                Error::Malformed("property not allowed in this packet"),
            ),
            (
                C::Publish,
                &[2, 0x05, 0],
                Error::Malformed("unknown property identifier"),
            ),
            (
                C::Publish,
                &[2, 0x80, 0x01],
                Error::Malformed("unknown property identifier"),
            ),
            (
                C::Publish,
                &[4, 0x01, 0, 0x01, 1],
                Error::Protocol("property included more than once"),
            ),
            (
                C::Subscribe,
                &[4, 0x0B, 1, 0x0B, 2],
                Error::Protocol("property included more than once"),
            ),
            (
                C::Subscribe,
                &[2, 0x0B, 0],
                Error::Protocol("subscription identifier 0"),
            ),
            (C::Publish, &[3, 0x23, 0, 0], Error::TopicAliasInvalid),
            (
                C::Connect,
                &[3, 0x21, 0, 0],
                Error::Protocol("receive maximum 0"),
            ),
            (
                C::Connect,
                &[5, 0x27, 0, 0, 0, 0],
                Error::Protocol("maximum packet size 0"),
            ),
            (
                C::Connect,
                &[2, 0x17, 2],
                Error::Protocol("property value must be 0 or 1"),
            ),
            (
                C::Connect,
                &[3, 0x16, 0, 0],
                Error::Protocol("authentication data without authentication method"),
            ),
            (
                C::Publish,
                &[4, 0x08, 0, 1, b'#'],
                Error::Protocol("wildcard in topic name"),
            ),
            // Length prefix larger than the rest of the packet.
            (
                C::Publish,
                &[9, 0x01, 0],
                Error::Malformed("property length past the end of the packet"),
            ),
            // A value cut off by the end of the block.
            (
                C::Publish,
                &[2, 0x02, 0],
                Error::Malformed("field runs past the end of the packet"),
            ),
        ];
        for (ctx, block, want) in cases {
            assert_eq!(decode(*ctx, block).as_ref(), Err(want), "{ctx:?} {block:?}");
        }
    }
}
