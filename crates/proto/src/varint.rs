//! Variable byte integer (at most four bytes).

use crate::Error;

/// Reads a variable byte integer; returns (value, bytes used).
pub fn read_varint(buf: &[u8]) -> Result<(u32, usize), Error> {
    let mut value: u32 = 0;
    for (i, b) in buf.iter().enumerate().take(4) {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 4 {
        Err(Error::Malformed(
            "variable byte integer longer than four bytes",
        ))
    } else {
        Err(Error::Incomplete(1))
    }
}

/// Bytes needed to encode `v` as a variable byte integer.
pub fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `v` as a variable byte integer.
pub fn write_varint(buf: &mut bytes::BytesMut, mut v: u32) {
    use bytes::BufMut;
    loop {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        buf.put_u8(b);
        if v == 0 {
            break;
        }
    }
}
