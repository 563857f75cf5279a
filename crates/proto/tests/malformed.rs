//! Negative vectors: bytes that must not decode, each with the exact error
//! and the MQTT 5.0 reason code a server would send for it.

use bytes::BytesMut;
use midge_proto::{check, decode, Error, Packet, Protocol, ReasonCode};

use Protocol::{V3_1, V3_1_1, V5};

const MALFORMED: ReasonCode = ReasonCode::MalformedPacket;
const PROTOCOL: ReasonCode = ReasonCode::ProtocolError;

struct Case {
    name: &'static str,
    protocol: Protocol,
    bytes: &'static [u8],
    error: Error,
    reason: ReasonCode,
}

const fn case(
    name: &'static str,
    protocol: Protocol,
    bytes: &'static [u8],
    error: Error,
    reason: ReasonCode,
) -> Case {
    Case {
        name,
        protocol,
        bytes,
        error,
        reason,
    }
}

const FLAGS: Error = Error::Malformed("invalid fixed header flags");
const SHORT: Error = Error::Malformed("field runs past the end of the packet");

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Fixed header.
    case("reserved type 0", V3_1_1, &[0x00, 0x00], Error::Malformed("reserved packet type 0"), MALFORMED),
    case("AUTH before 5.0", V3_1_1, &[0xF0, 0x00], Error::Malformed("AUTH before MQTT 5.0"), MALFORMED),
    case("CONNECT flags", V3_1_1, &[0x11, 0x00], FLAGS, MALFORMED),
    case("PUBACK flags", V5, &[0x41, 0x02, 0x00, 0x01], FLAGS, MALFORMED),
    case("PUBREL flags 0", V3_1_1, &[0x60, 0x02, 0x00, 0x01], FLAGS, MALFORMED),
    case("PUBREL DUP in 3.1.1", V3_1_1, &[0x6A, 0x02, 0x00, 0x01], FLAGS, MALFORMED),
    case("SUBSCRIBE flags 0", V3_1_1, &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00], FLAGS, MALFORMED),
    case("UNSUBSCRIBE flags 0", V5, &[0xA0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a'], FLAGS, MALFORMED),
    case("PINGREQ flags", V3_1_1, &[0xC1, 0x00], FLAGS, MALFORMED),
    case("DISCONNECT flags", V5, &[0xE2, 0x00], FLAGS, MALFORMED),
    case("5-byte remaining length", V3_1_1, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        Error::Malformed("variable byte integer longer than four bytes"), MALFORMED),
    // PUBLISH.
    case("PUBLISH QoS 3", V3_1_1, &[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01], Error::Malformed("PUBLISH QoS 3"), MALFORMED),
    case("DUP on QoS 0", V3_1_1, &[0x38, 0x03, 0x00, 0x01, b't'], Error::Malformed("DUP set on a QoS 0 PUBLISH"), MALFORMED),
    case("packet id 0", V3_1_1, &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00], Error::Protocol("packet identifier 0"), PROTOCOL),
    case("bad UTF-8 topic", V3_1_1, &[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28], Error::Malformed("string is not valid UTF-8"), MALFORMED),
    case("surrogate in topic", V3_1_1, &[0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80], Error::Malformed("string is not valid UTF-8"), MALFORMED),
    case("overlong NUL", V3_1_1, &[0x30, 0x04, 0x00, 0x02, 0xC0, 0x80], Error::Malformed("string is not valid UTF-8"), MALFORMED),
    case("U+0000 in topic", V3_1_1, &[0x30, 0x04, 0x00, 0x02, b'a', 0x00], Error::Malformed("string contains U+0000"), MALFORMED),
    case("topic past end", V3_1_1, &[0x30, 0x03, 0x00, 0x05, b'a'], SHORT, MALFORMED),
    case("packet id cut off", V3_1_1, &[0x32, 0x04, 0x00, 0x01, b't', 0x00], SHORT, MALFORMED),
    case("wildcard + in topic", V3_1_1, &[0x30, 0x03, 0x00, 0x01, b'+'], Error::Protocol("wildcard in topic name"), PROTOCOL),
    case("wildcard # in topic", V5, &[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'#', 0x00], Error::Protocol("wildcard in topic name"), PROTOCOL),
    case("empty topic 3.1.1", V3_1_1, &[0x30, 0x02, 0x00, 0x00], Error::Protocol("empty topic name"), PROTOCOL),
    case("empty topic 5.0 without alias", V5, &[0x30, 0x03, 0x00, 0x00, 0x00], Error::Protocol("empty topic name without topic alias"), PROTOCOL),
    case("topic alias 0", V5, &[0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x23, 0x00, 0x00], Error::TopicAliasInvalid, ReasonCode::TopicAliasInvalid),
    case("duplicate property", V5, &[0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x01, 0x00, 0x01, 0x01],
        Error::Protocol("property included more than once"), PROTOCOL),
    case("property not allowed in PUBLISH", V5, &[0x30, 0x09, 0x00, 0x01, b't', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01],
        Error::Malformed("property not allowed in this packet"), MALFORMED),
    case("unknown property", V5, &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x07, 0x00],
        Error::Malformed("unknown property identifier"), MALFORMED),
    case("property length past end", V5, &[0x30, 0x05, 0x00, 0x01, b't', 0x09, 0x01],
        Error::Malformed("property length past the end of the packet"), MALFORMED),
    case("subscription identifier 0", V5, &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x0B, 0x00],
        Error::Protocol("subscription identifier 0"), PROTOCOL),
    case("payload format 2", V5, &[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x01, 0x02],
        Error::Protocol("property value must be 0 or 1"), PROTOCOL),
    case("response topic with wildcard", V5, &[0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x08, 0x00, 0x01, b'+'],
        Error::Protocol("wildcard in topic name"), PROTOCOL),
    // Acknowledgements.
    case("PUBACK trailing byte 3.1.1", V3_1_1, &[0x40, 0x03, 0x00, 0x01, 0x00],
        Error::Malformed("bytes after the end of the acknowledgement"), MALFORMED),
    case("PUBACK short body", V3_1_1, &[0x40, 0x01, 0x00], SHORT, MALFORMED),
    case("PUBACK packet id 0", V5, &[0x40, 0x02, 0x00, 0x00], Error::Protocol("packet identifier 0"), PROTOCOL),
    case("PUBACK reason for PUBREL", V5, &[0x40, 0x03, 0x00, 0x01, 0x92],
        Error::Malformed("invalid reason code for this acknowledgement"), MALFORMED),
    case("PUBREL reason for PUBACK", V5, &[0x62, 0x03, 0x00, 0x01, 0x10],
        Error::Malformed("invalid reason code for this acknowledgement"), MALFORMED),
    case("PUBACK unknown reason", V5, &[0x40, 0x03, 0x00, 0x01, 0x03],
        Error::Malformed("invalid reason code for this acknowledgement"), MALFORMED),
    case("PUBACK property not allowed", V5, &[0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01],
        Error::Malformed("property not allowed in this packet"), MALFORMED),
    // CONNECT.
    case("CONNECT reserved flag", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x01, 0x00, 0x00, 0x00, 0x00],
        Error::Malformed("CONNECT reserved flag set"), MALFORMED),
    case("will QoS 3", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x1C, 0x00, 0x00, 0x00, 0x00],
        Error::Malformed("will QoS 3"), MALFORMED),
    case("will QoS without will", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x08, 0x00, 0x00, 0x00, 0x00],
        Error::Malformed("will QoS or retain set without will flag"), MALFORMED),
    case("will retain without will", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x20, 0x00, 0x00, 0x00, 0x00],
        Error::Malformed("will QoS or retain set without will flag"), MALFORMED),
    case("password without user 3.1.1", V3_1_1,
        &[0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'p'],
        Error::Malformed("password flag without user name flag"), MALFORMED),
    case("password without user 3.1", V3_1,
        &[0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'p'],
        Error::Malformed("password flag without user name flag"), MALFORMED),
    case("level 6", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x00, 0x00, 0x00],
        Error::UnsupportedProtocolVersion(6), ReasonCode::UnsupportedProtocolVersion),
    case("MQIsdp with level 4", V3_1_1, &[0x10, 0x0E, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00],
        Error::UnsupportedProtocolVersion(4), ReasonCode::UnsupportedProtocolVersion),
    case("MQTT with level 3", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, 0x02, 0x00, 0x00, 0x00, 0x00],
        Error::UnsupportedProtocolVersion(3), ReasonCode::UnsupportedProtocolVersion),
    case("bridge bit level 0x84", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x84, 0x02, 0x00, 0x00, 0x00, 0x00],
        Error::UnsupportedProtocolVersion(0x84), ReasonCode::UnsupportedProtocolVersion),
    case("unknown protocol name", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'X', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00],
        Error::Protocol("unknown protocol name"), PROTOCOL),
    case("CONNECT trailing byte", V3_1_1, &[0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00],
        Error::Malformed("bytes after the end of CONNECT"), MALFORMED),
    case("CONNECT user name missing", V3_1_1, &[0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x82, 0x00, 0x00, 0x00, 0x00],
        SHORT, MALFORMED),
    case("U+0000 in client id", V3_1_1, &[0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00],
        Error::Malformed("string contains U+0000"), MALFORMED),
    case("CONNECT receive maximum 0", V5, &[0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00, 0x00, 0x00],
        Error::Protocol("receive maximum 0"), PROTOCOL),
    case("CONNECT auth data without method", V5, &[0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x03, 0x16, 0x00, 0x00, 0x00, 0x00],
        Error::Protocol("authentication data without authentication method"), PROTOCOL),
    case("will property in CONNECT", V5, &[0x10, 0x12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x00, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00],
        Error::Malformed("property not allowed in this packet"), MALFORMED),
    // CONNACK.
    case("CONNACK reserved flags", V3_1_1, &[0x20, 0x02, 0x02, 0x00], Error::Malformed("CONNACK reserved flags set"), MALFORMED),
    case("CONNACK return code 6", V3_1_1, &[0x20, 0x02, 0x00, 0x06], Error::Malformed("reserved CONNACK return code"), MALFORMED),
    case("CONNACK reason 0x10", V5, &[0x20, 0x03, 0x00, 0x10, 0x00], Error::Malformed("invalid CONNACK reason code"), MALFORMED),
    case("CONNACK missing properties", V5, &[0x20, 0x02, 0x00, 0x00], SHORT, MALFORMED),
    case("CONNACK trailing", V3_1_1, &[0x20, 0x03, 0x00, 0x00, 0x00], Error::Malformed("bytes after the end of CONNACK"), MALFORMED),
    // SUBSCRIBE / UNSUBSCRIBE.
    case("empty SUBSCRIBE", V3_1_1, &[0x82, 0x02, 0x00, 0x01], Error::Protocol("SUBSCRIBE without a topic filter"), PROTOCOL),
    case("empty SUBSCRIBE 5.0", V5, &[0x82, 0x03, 0x00, 0x01, 0x00], Error::Protocol("SUBSCRIBE without a topic filter"), PROTOCOL),
    case("SUBSCRIBE packet id 0", V3_1_1, &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00], Error::Protocol("packet identifier 0"), PROTOCOL),
    case("SUBSCRIBE options missing", V3_1_1, &[0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'], SHORT, MALFORMED),
    case("SUBSCRIBE 3.1.1 upper option bits", V3_1_1, &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04],
        Error::Malformed("reserved subscription option bits set"), MALFORMED),
    case("SUBSCRIBE QoS 3", V5, &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03], Error::Malformed("subscription QoS 3"), MALFORMED),
    case("SUBSCRIBE 5.0 reserved bits", V5, &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40],
        Error::Malformed("reserved subscription option bits set"), MALFORMED),
    case("retain handling 3", V5, &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30], Error::Malformed("retain handling 3"), MALFORMED),
    case("two subscription identifiers", V5, &[0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b'a', 0x00],
        Error::Protocol("property included more than once"), PROTOCOL),
    case("U+0000 in filter", V3_1_1, &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00], Error::Malformed("string contains U+0000"), MALFORMED),
    case("empty UNSUBSCRIBE", V3_1_1, &[0xA2, 0x02, 0x00, 0x01], Error::Protocol("UNSUBSCRIBE without a topic filter"), PROTOCOL),
    case("UNSUBSCRIBE packet id 0", V3_1_1, &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'], Error::Protocol("packet identifier 0"), PROTOCOL),
    // SUBACK / UNSUBACK.
    case("SUBACK 3.1.1 code 0x87", V3_1_1, &[0x90, 0x03, 0x00, 0x01, 0x87], Error::Malformed("invalid SUBACK return code"), MALFORMED),
    case("SUBACK code 3", V5, &[0x90, 0x04, 0x00, 0x01, 0x00, 0x03], Error::Malformed("invalid SUBACK return code"), MALFORMED),
    case("SUBACK without codes", V3_1_1, &[0x90, 0x02, 0x00, 0x01], Error::Protocol("SUBACK without a return code"), PROTOCOL),
    case("UNSUBACK 3.1.1 trailing", V3_1_1, &[0xB0, 0x03, 0x00, 0x01, 0x00], Error::Malformed("bytes after the end of UNSUBACK"), MALFORMED),
    case("UNSUBACK 5.0 without reasons", V5, &[0xB0, 0x03, 0x00, 0x01, 0x00], Error::Protocol("UNSUBACK without a reason code"), PROTOCOL),
    case("UNSUBACK 5.0 bad reason", V5, &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x10], Error::Malformed("invalid UNSUBACK reason code"), MALFORMED),
    // PING / DISCONNECT / AUTH.
    case("PINGREQ with body", V3_1_1, &[0xC0, 0x01, 0x00], Error::Malformed("PINGREQ with a body"), MALFORMED),
    case("PINGRESP with body", V5, &[0xD0, 0x01, 0x00], Error::Malformed("PINGRESP with a body"), MALFORMED),
    case("DISCONNECT 3.1.1 with body", V3_1_1, &[0xE0, 0x01, 0x00], Error::Malformed("bytes after the end of DISCONNECT"), MALFORMED),
    case("DISCONNECT bad reason", V5, &[0xE0, 0x01, 0x01], Error::Malformed("invalid DISCONNECT reason code"), MALFORMED),
    case("DISCONNECT property length past end", V5, &[0xE0, 0x02, 0x00, 0x05], Error::Malformed("property length past the end of the packet"), MALFORMED),
    case("AUTH bad reason", V5, &[0xF0, 0x02, 0x04, 0x00], Error::Malformed("invalid AUTH reason code"), MALFORMED),
    case("AUTH reason 0x87", V5, &[0xF0, 0x02, 0x87, 0x00], Error::Malformed("invalid AUTH reason code"), MALFORMED),
];

#[test]
fn every_negative_vector_fails_as_expected() {
    let mut failures = Vec::new();
    for c in CASES {
        let mut buf = BytesMut::from(c.bytes);
        let got = decode(&mut buf, c.protocol, usize::MAX);
        if got.as_ref() != Err(&c.error) {
            failures.push(format!("{}: got {got:?}, want {:?}", c.name, c.error));
        }
        assert_eq!(c.error.reason_code(), c.reason, "{}", c.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(CASES.len() >= 80);
}

#[test]
fn v3_1_accepts_dup_on_pubrel_subscribe_unsubscribe() {
    // MQTT 3.1 set DUP on retransmitted PUBREL/SUBSCRIBE/UNSUBSCRIBE.
    let mut buf = BytesMut::from(&[0x6A, 0x02, 0x00, 0x01][..]);
    assert!(matches!(decode(&mut buf, V3_1, 64), Ok(Packet::PubRel(_))));
    let mut buf = BytesMut::from(&[0x8A, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00][..]);
    assert!(matches!(
        decode(&mut buf, V3_1, 64),
        Ok(Packet::Subscribe(_))
    ));
}

#[test]
fn too_large_is_refused_from_the_header_alone() {
    // Only the fixed header has arrived; it announces 300 bytes.
    let header = [0x30, 0xAC, 0x02];
    let err = Error::PacketTooLarge {
        size: 303,
        max: 256,
    };
    assert_eq!(check(&header, 256), Err(err.clone()));
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(decode(&mut buf, V5, 256), Err(err.clone()));
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
    // Exactly at the limit is fine (once the body is there).
    assert_eq!(check(&header, 303), Err(Error::Incomplete(300)));
}

#[test]
fn incomplete_header_and_body() {
    assert_eq!(check(&[], 1024), Err(Error::Incomplete(2)));
    assert_eq!(check(&[0x30], 1024), Err(Error::Incomplete(1)));
    assert_eq!(check(&[0x30, 0x80], 1024), Err(Error::Incomplete(1)));
    assert_eq!(
        check(&[0x30, 0x80, 0x80, 0x80], 1024),
        Err(Error::Incomplete(1))
    );
    assert_eq!(check(&[0x30, 0x05, 0x00], 1024), Err(Error::Incomplete(4)));
    let mut buf = BytesMut::from(&[0x30, 0x05, 0x00, 0x01, b't'][..]);
    assert_eq!(decode(&mut buf, V3_1_1, 1024), Err(Error::Incomplete(2)));
    assert_eq!(buf.len(), 5, "nothing consumed on Incomplete");
    assert_eq!(Error::Incomplete(1).reason_code(), MALFORMED);
}
