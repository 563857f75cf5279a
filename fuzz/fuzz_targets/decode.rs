//! Fuzz target: arbitrary bytes are decoded as a stream of packets for each
//! protocol level until an error or `Incomplete`. Every packet decoded must
//! encode without error, to exactly `encoded_len` bytes, and decode back to
//! itself. A panic anywhere (an index out of bounds, an arithmetic
//! overflow, a failed assertion) is a crash. `scripts/fuzz-short` builds
//! with `-a` (debug assertions and overflow checks on).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use midge_proto::{decode, encode, encoded_len, Error, Protocol};

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
        let mut buf = BytesMut::from(data);
        // Each round consumes at least the two header bytes of a packet.
        for _ in 0..=data.len() / 2 {
            let before = buf.len();
            match decode(&mut buf, protocol, MAX) {
                Ok(packet) => {
                    let mut out = BytesMut::new();
                    if let Err(e) = encode(&packet, protocol, &mut out) {
                        panic!("decoded packet does not encode: {e:?}\n{packet:?}");
                    }
                    assert_eq!(out.len(), encoded_len(&packet, protocol), "{packet:?}");
                    let again = decode(&mut out, protocol, MAX);
                    assert_eq!(again.as_ref(), Ok(&packet), "round trip changed the packet");
                    assert!(out.is_empty(), "encode wrote bytes decode did not consume");
                    assert!(buf.len() < before, "decode consumed nothing");
                }
                Err(Error::Incomplete(n)) => {
                    assert!(n > 0);
                    assert_eq!(buf.len(), before, "Incomplete consumed bytes");
                    break;
                }
                Err(_) => break,
            }
        }
    }
});
