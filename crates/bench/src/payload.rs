//! The bench payload: who sent a message, its sequence number and when.
//!
//! Layout (big endian), then zero padding up to the requested size:
//! `magic "MGB1" (4) | publisher id (4) | sequence (8) | send time, ns (8)`.
//! The magic lets a subscriber tell our messages from anything else that
//! happens to be published on the same topics. Times come from one
//! [`Clock`] shared by all tasks of the process, so publisher and subscriber
//! stamps are comparable without any clock synchronisation.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

/// The first four bytes of every bench payload.
pub const MAGIC: [u8; 4] = *b"MGB1";
/// Bytes taken by the header; the smallest payload size accepted.
pub const HEADER_LEN: usize = 24;

/// The header of one bench message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the publisher in the run (0-based).
    pub publisher: u32,
    /// Per-publisher sequence number, from 0, without gaps on the sender side.
    pub seq: u64,
    /// [`Clock::now_ns`] when the message was encoded.
    pub sent_ns: u64,
}

/// Why a received payload is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload of {0} bytes is shorter than the {HEADER_LEN}-byte bench header")]
    TooShort(usize),
    #[error("payload does not start with the bench magic")]
    BadMagic,
}

/// Monotonic nanoseconds since the start of the process's run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since this clock was made (saturating after 584 years).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The [`Instant`] that a `now_ns` value stands for.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Appends a payload of exactly `size` bytes (at least [`HEADER_LEN`]; a
/// smaller size is raised to it) carrying `stamp`.
pub fn write(stamp: Stamp, size: usize, buf: &mut BytesMut) {
    let size = size.max(HEADER_LEN);
    buf.reserve(size);
    buf.put_slice(&MAGIC);
    buf.put_u32(stamp.publisher);
    buf.put_u64(stamp.seq);
    buf.put_u64(stamp.sent_ns);
    buf.put_bytes(0, size - HEADER_LEN);
}

/// Reads the header of a received payload.
pub fn read(payload: &[u8]) -> Result<Stamp, PayloadError> {
    let header = payload
        .get(..HEADER_LEN)
        .ok_or(PayloadError::TooShort(payload.len()))?;
    let (magic, rest) = header.split_at(4);
    if magic != MAGIC {
        return Err(PayloadError::BadMagic);
    }
    let (id, rest) = rest.split_at(4);
    let (seq, ts) = rest.split_at(8);
    // The slices have fixed lengths by construction; the conversions cannot
    // fail, but a fallback keeps the function total without unwrap.
    let u32_of = |b: &[u8]| <[u8; 4]>::try_from(b).map(u32::from_be_bytes).unwrap_or(0);
    let u64_of = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_be_bytes).unwrap_or(0);
    Ok(Stamp {
        publisher: u32_of(id),
        seq: u64_of(seq),
        sent_ns: u64_of(ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        let stamp = Stamp {
            publisher: 0xdead_beef,
            seq: u64::MAX - 3,
            sent_ns: 123_456_789_012,
        };
        let mut buf = BytesMut::new();
        write(stamp, 100, &mut buf);
        assert_eq!(buf.len(), 100);
        assert!(buf[HEADER_LEN..].iter().all(|b| *b == 0));
        assert_eq!(read(&buf), Ok(stamp));
    }

    #[test]
    fn small_size_is_raised_to_the_header() {
        let mut buf = BytesMut::new();
        let stamp = Stamp {
            publisher: 1,
            seq: 2,
            sent_ns: 3,
        };
        write(stamp, 3, &mut buf);
        assert_eq!(buf.len(), HEADER_LEN);
        assert_eq!(read(&buf), Ok(stamp));
    }

    #[test]
    fn rejects_foreign_payloads() {
        assert_eq!(read(b"hello"), Err(PayloadError::TooShort(5)));
        assert_eq!(read(&[0u8; 40]), Err(PayloadError::BadMagic));
    }

    #[test]
    fn clock_is_monotonic() {
        let clock = Clock::new();
        let a = clock.now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
        assert!(clock.instant_at(b) >= clock.instant_at(a));
    }
}
