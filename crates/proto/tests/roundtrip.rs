//! Property tests: every valid packet of every protocol level survives
//! encode then decode unchanged, `encoded_len` is exact, and a stream cut
//! anywhere short of a whole packet decodes as `Incomplete` without
//! consuming anything.

mod common;

use bytes::BytesMut;
use midge_proto::{check, decode, encode, encoded_len, Error};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn decode_of_encode_is_identity((protocol, packet) in common::any_packet()) {
        let mut buf = BytesMut::new();
        prop_assert_eq!(encode(&packet, protocol, &mut buf), Ok(()));
        prop_assert_eq!(buf.len(), encoded_len(&packet, protocol));
        let decoded = decode(&mut buf, protocol, usize::MAX);
        prop_assert_eq!(decoded, Ok(packet));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn streams_of_packets_decode_in_order((protocol, a) in common::any_packet()) {
        // The same packet twice, then a PINGREQ: decoding must stop at each
        // boundary.
        let mut buf = BytesMut::new();
        prop_assert_eq!(encode(&a, protocol, &mut buf), Ok(()));
        prop_assert_eq!(encode(&a, protocol, &mut buf), Ok(()));
        buf.extend_from_slice(&[0xC0, 0x00]);
        prop_assert_eq!(decode(&mut buf, protocol, usize::MAX), Ok(a.clone()));
        prop_assert_eq!(decode(&mut buf, protocol, usize::MAX), Ok(a));
        prop_assert_eq!(decode(&mut buf, protocol, usize::MAX), Ok(midge_proto::Packet::PingReq));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_prefix_is_incomplete((protocol, packet) in common::any_packet(), cut in any::<prop::sample::Index>()) {
        let mut full = BytesMut::new();
        prop_assert_eq!(encode(&packet, protocol, &mut full), Ok(()));
        let cut = cut.index(full.len());
        let mut part = BytesMut::from(&full[..cut]);
        match check(&part, usize::MAX) {
            Err(Error::Incomplete(n)) => prop_assert!(n >= 1 && cut + n <= full.len()),
            other => prop_assert!(false, "check of {} of {} bytes: {:?}", cut, full.len(), other),
        }
        prop_assert!(matches!(decode(&mut part, protocol, usize::MAX), Err(Error::Incomplete(_))));
        prop_assert_eq!(part.len(), cut);
    }

    #[test]
    fn a_max_packet_size_below_the_length_is_refused((protocol, packet) in common::any_packet()) {
        let mut buf = BytesMut::new();
        prop_assert_eq!(encode(&packet, protocol, &mut buf), Ok(()));
        let len = buf.len();
        prop_assert_eq!(
            check(&buf[..1.max(len.min(5))], len - 1),
            Err(Error::PacketTooLarge { size: len, max: len - 1 })
        );
        prop_assert!(check(&buf, len).is_ok());
    }
}
