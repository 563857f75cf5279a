//! Entry points: check, decode, encode.
//! (Being implemented: signatures are the contract.)

use bytes::BytesMut;

use crate::{Error, Packet, Protocol};

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

/// Reads the fixed header at the front of `buf`. Returns
/// `Err(Incomplete(n))` while fewer bytes than the whole packet are there,
/// `Err(PacketTooLarge)` as soon as the remaining length shows the packet is
/// larger than `max_packet_size` (so the body is never buffered), and
/// `Err(Malformed)` for a remaining length over four bytes.
pub fn check(buf: &[u8], max_packet_size: usize) -> Result<FixedHeader, Error> {
    let _ = (buf, max_packet_size);
    unimplemented!("codec in progress")
}

/// Decodes one packet off the front of `buf`, leaving the rest. `protocol`
/// is the connection's negotiated version (ignored for CONNECT, which carries
/// its own). On `Incomplete` nothing is consumed.
pub fn decode(
    buf: &mut BytesMut,
    protocol: Protocol,
    max_packet_size: usize,
) -> Result<Packet, Error> {
    let _ = (buf, protocol, max_packet_size);
    unimplemented!("codec in progress")
}

/// Appends the encoding of `packet` for `protocol` to `buf`.
pub fn encode(packet: &Packet, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
    let _ = (packet, protocol, buf);
    unimplemented!("codec in progress")
}

/// The number of bytes [`encode`] would write, to honour a peer's Maximum
/// Packet Size without encoding.
pub fn encoded_len(packet: &Packet, protocol: Protocol) -> usize {
    let _ = (packet, protocol);
    unimplemented!("codec in progress")
}
