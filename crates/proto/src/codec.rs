//! Entry points: check, decode, encode, encoded_len. This module owns the
//! fixed header (type, flags, remaining length) and dispatches bodies to the
//! per-packet modules in [`crate::packet`].

use bytes::{BufMut, BytesMut};

use crate::packet::{
    auth, connack, connect, disconnect, publish, pubresp, suback, subscribe, unsuback, unsubscribe,
    PacketType,
};
use crate::varint::{read_varint, varint_len, write_varint};
use crate::wire::Reader;
use crate::{Error, Packet, Protocol, MAX_REMAINING_LENGTH};

/// The fixed header of a packet whose bytes are all in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// First byte: packet type (high nibble) and flags (low nibble).
    pub byte1: u8,
    /// Length of the fixed header (1 + length of the remaining length).
    pub header_len: usize,
    /// The remaining length.
    pub remaining_len: usize,
}

impl FixedHeader {
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Largest packet [`encode`] can produce: one type byte, four length bytes
/// and the largest remaining length.
pub const MAX_PACKET_LEN: usize = 1 + 4 + MAX_REMAINING_LENGTH;

/// Reads the fixed header at the front of `buf`. Returns
/// `Err(Incomplete(n))` while fewer bytes than the whole packet are there,
/// `Err(PacketTooLarge)` as soon as the remaining length shows the packet is
/// larger than `max_packet_size` (so the body is never buffered), and
/// `Err(Malformed)` for a remaining length over four bytes.
#[inline]
pub fn check(buf: &[u8], max_packet_size: usize) -> Result<FixedHeader, Error> {
    if buf.len() < 2 {
        return Err(Error::Incomplete(2 - buf.len()));
    }
    let (remaining, n) = read_varint(&buf[1..])?;
    let header = FixedHeader {
        byte1: buf[0],
        header_len: 1 + n,
        remaining_len: remaining as usize,
    };
    let len = header.packet_len();
    if len > max_packet_size {
        return Err(Error::PacketTooLarge {
            size: len,
            max: max_packet_size,
        });
    }
    if buf.len() < len {
        return Err(Error::Incomplete(len - buf.len()));
    }
    Ok(header)
}

/// Checks the low nibble of the first byte against what the type requires.
#[inline]
fn check_flags(kind: PacketType, byte1: u8, protocol: Protocol) -> Result<(), Error> {
    let Some(want) = kind.fixed_flags() else {
        // PUBLISH: its flags are read by publish::read.
        return Ok(());
    };
    let flags = byte1 & 0x0F;
    // MQTT 3.1 set DUP (0x08) on retransmitted PUBREL, SUBSCRIBE and
    // UNSUBSCRIBE; 3.1.1 made those flags fixed.
    let v31_dup = protocol == Protocol::V3_1 && want == 0b0010 && flags == 0b1010;
    if flags != want && !v31_dup {
        return Err(Error::Malformed("invalid fixed header flags"));
    }
    Ok(())
}

/// Decodes one packet off the front of `buf`, leaving the rest. `protocol`
/// is the connection's negotiated version (ignored for CONNECT, which carries
/// its own). On `Incomplete` nothing is consumed; on any other error the
/// packet's bytes are consumed (the connection is to be closed anyway).
#[inline]
pub fn decode(
    buf: &mut BytesMut,
    protocol: Protocol,
    max_packet_size: usize,
) -> Result<Packet, Error> {
    let header = check(buf, max_packet_size)?;
    let kind =
        PacketType::from_byte1(header.byte1).ok_or(Error::Malformed("reserved packet type 0"))?;
    check_flags(kind, header.byte1, protocol)?;
    let bytes = buf.split_to(header.packet_len()).freeze();
    if kind == PacketType::Publish {
        return publish::decode(bytes, header.header_len, header.byte1, protocol);
    }
    decode_other(kind, &bytes, header, protocol)
}

/// Every packet type but PUBLISH.
fn decode_other(
    kind: PacketType,
    bytes: &bytes::Bytes,
    header: FixedHeader,
    protocol: Protocol,
) -> Result<Packet, Error> {
    let mut r = Reader::new(bytes, header.header_len);
    let r = &mut r;
    Ok(match kind {
        PacketType::Publish => {
            return publish::decode(bytes.clone(), header.header_len, header.byte1, protocol)
        }
        PacketType::PubAck => Packet::PubAck(pubresp::read(r, kind, protocol)?),
        PacketType::PubRec => Packet::PubRec(pubresp::read(r, kind, protocol)?),
        PacketType::PubRel => Packet::PubRel(pubresp::read(r, kind, protocol)?),
        PacketType::PubComp => Packet::PubComp(pubresp::read(r, kind, protocol)?),
        PacketType::Connect => Packet::Connect(Box::new(connect::read(r)?)),
        PacketType::ConnAck => Packet::ConnAck(connack::read(r, protocol)?),
        PacketType::Subscribe => Packet::Subscribe(subscribe::read(r, protocol)?),
        PacketType::SubAck => Packet::SubAck(suback::read(r, protocol)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(unsubscribe::read(r, protocol)?),
        PacketType::UnsubAck => Packet::UnsubAck(unsuback::read(r, protocol)?),
        PacketType::PingReq => {
            r.finish("PINGREQ with a body")?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            r.finish("PINGRESP with a body")?;
            Packet::PingResp
        }
        PacketType::Disconnect => Packet::Disconnect(disconnect::read(r, protocol)?),
        PacketType::Auth => {
            if !protocol.is_v5() {
                // Type 15 is reserved before 5.0.
                return Err(Error::Malformed("AUTH before MQTT 5.0"));
            }
            Packet::Auth(auth::read(r)?)
        }
    })
}

/// The fixed header's first byte for `packet`.
#[inline]
fn byte1(packet: &Packet) -> u8 {
    match packet {
        Packet::Publish(p) => publish::byte1(p),
        other => {
            let kind = other.packet_type();
            ((kind as u8) << 4) | kind.fixed_flags().unwrap_or(0)
        }
    }
}

/// The remaining length of `packet` encoded for `protocol`.
#[inline]
fn remaining_len(packet: &Packet, protocol: Protocol) -> usize {
    match packet {
        Packet::Publish(p) => publish::remaining_len(p, protocol),
        Packet::PubAck(p) => pubresp::remaining_len(p, PacketType::PubAck, protocol),
        Packet::PubRec(p) => pubresp::remaining_len(p, PacketType::PubRec, protocol),
        Packet::PubRel(p) => pubresp::remaining_len(p, PacketType::PubRel, protocol),
        Packet::PubComp(p) => pubresp::remaining_len(p, PacketType::PubComp, protocol),
        Packet::Connect(c) => connect::remaining_len(c),
        Packet::ConnAck(c) => connack::remaining_len(c, protocol),
        Packet::Subscribe(s) => subscribe::remaining_len(s, protocol),
        Packet::SubAck(s) => suback::remaining_len(s, protocol),
        Packet::Unsubscribe(u) => unsubscribe::remaining_len(u, protocol),
        Packet::UnsubAck(u) => unsuback::remaining_len(u, protocol),
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => disconnect::remaining_len(d, protocol),
        Packet::Auth(a) => auth::remaining_len(a),
    }
}

fn write_body(packet: &Packet, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    match packet {
        Packet::Publish(p) => publish::write(p, protocol, buf),
        Packet::PubAck(p) => pubresp::write(p, PacketType::PubAck, protocol, buf),
        Packet::PubRec(p) => pubresp::write(p, PacketType::PubRec, protocol, buf),
        Packet::PubRel(p) => pubresp::write(p, PacketType::PubRel, protocol, buf),
        Packet::PubComp(p) => pubresp::write(p, PacketType::PubComp, protocol, buf),
        Packet::Connect(c) => connect::write(c, buf),
        Packet::ConnAck(c) => connack::write(c, protocol, buf),
        Packet::Subscribe(s) => subscribe::write(s, protocol, buf),
        Packet::SubAck(s) => suback::write(s, protocol, buf),
        Packet::Unsubscribe(u) => unsubscribe::write(u, protocol, buf),
        Packet::UnsubAck(u) => unsuback::write(u, protocol, buf),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => disconnect::write(d, protocol, buf),
        Packet::Auth(a) => {
            if !protocol.is_v5() {
                return Err(Error::Protocol("AUTH exists only in MQTT 5.0"));
            }
            auth::write(a, buf)
        }
    }
}

/// Appends the encoding of `packet` for `protocol` to `buf`. CONNECT is
/// encoded for its own `protocol` field. Fields the version cannot carry
/// are left out (properties before 5.0, reason codes of acknowledgements
/// before 5.0), and so are properties the packet type does not allow.
///
/// Errors (nothing is appended then): `PacketTooLarge` over
/// [`MAX_PACKET_LEN`]; `Malformed` for a string or binary field over 65,535
/// bytes; `Protocol` for what would not decode: packet identifier 0 where
/// one is required, an empty SUBSCRIBE/UNSUBSCRIBE/SUBACK (or 5.0 UNSUBACK),
/// a reason code the packet type does not allow, an empty topic without a
/// topic alias, a password without user name before 5.0, AUTH before 5.0.
/// Topic names are not re-validated here: the broker validated them on the
/// way in.
pub fn encode(packet: &Packet, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    let remaining = remaining_len(packet, protocol);
    if remaining > MAX_REMAINING_LENGTH {
        return Err(Error::PacketTooLarge {
            size: remaining.saturating_add(5),
            max: MAX_PACKET_LEN,
        });
    }
    let total = 1 + varint_len(remaining as u32) + remaining;
    let start = buf.len();
    buf.reserve(total);
    buf.put_u8(byte1(packet));
    write_varint(buf, remaining as u32);
    let result = write_body(packet, protocol, buf).and_then(|()| {
        if buf.len() - start == total {
            Ok(())
        } else {
            // Length and writer disagree: a codec bug. Never send a packet
            // whose remaining length lies, it would desynchronise the peer.
            Err(Error::Malformed("internal: encoded length mismatch"))
        }
    });
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// The number of bytes [`encode`] would write, to honour a peer's Maximum
/// Packet Size without encoding. (For a packet `encode` rejects, the number
/// is what its fields add up to.)
#[inline]
pub fn encoded_len(packet: &Packet, protocol: Protocol) -> usize {
    let remaining = remaining_len(packet, protocol);
    1 + varint_len(remaining.min(u32::MAX as usize) as u32) + remaining
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{PubResp, Publish, QoS};

    #[test]
    fn check_reports_incomplete_and_too_large() {
        assert_eq!(check(&[], 100), Err(Error::Incomplete(2)));
        assert_eq!(check(&[0x30], 100), Err(Error::Incomplete(1)));
        // Remaining length 3: header of 2 bytes, 3 more needed.
        assert_eq!(check(&[0x30, 0x03], 100), Err(Error::Incomplete(3)));
        // Continuation bit set, length byte still to come.
        assert_eq!(check(&[0x30, 0x80], 100), Err(Error::Incomplete(1)));
        // 200 bytes announced, 10 allowed: rejected before the body arrives.
        assert_eq!(
            check(&[0x30, 0xC8, 0x01], 10),
            Err(Error::PacketTooLarge { size: 203, max: 10 })
        );
        assert!(matches!(
            check(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], usize::MAX),
            Err(Error::Malformed(_))
        ));
        assert_eq!(
            check(&[0xC0, 0x00], 100),
            Ok(FixedHeader {
                byte1: 0xC0,
                header_len: 2,
                remaining_len: 0
            })
        );
    }

    #[test]
    fn publish_round_trip_leaves_following_bytes() {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "a/b".into(),
            pkid: 10,
            payload: Bytes::from_static(b"hello"),
            properties: Default::default(),
        });
        for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
            let mut buf = BytesMut::new();
            assert_eq!(encode(&p, protocol, &mut buf), Ok(()));
            assert_eq!(buf.len(), encoded_len(&p, protocol));
            buf.extend_from_slice(&[0xC0, 0x00]);
            assert_eq!(decode(&mut buf, protocol, 1024), Ok(p.clone()));
            assert_eq!(decode(&mut buf, protocol, 1024), Ok(Packet::PingReq));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn incomplete_consumes_nothing() {
        let mut buf = BytesMut::from(&[0x40, 0x02, 0x00][..]);
        assert_eq!(
            decode(&mut buf, Protocol::V5, 1024),
            Err(Error::Incomplete(1))
        );
        assert_eq!(buf.len(), 3);
        buf.extend_from_slice(&[0x07]);
        assert_eq!(
            decode(&mut buf, Protocol::V5, 1024),
            Ok(Packet::PubAck(PubResp::new(7)))
        );
    }

    #[test]
    fn failed_encode_appends_nothing() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        let p = Packet::PubAck(PubResp::new(0));
        assert!(matches!(
            encode(&p, Protocol::V5, &mut buf),
            Err(Error::Protocol(_))
        ));
        assert_eq!(&buf[..], b"xy");
    }
}
