//! A connection's read and write buffers, shaped so that an idle
//! connection holds none (most connections of a broker are idle most of
//! the time) and a busy one neither copies much nor allocates per packet.
//!
//! Reads that start at a packet boundary land in a per-thread scratch area
//! and are copied into a buffer of exactly their size; the packets decoded
//! from it share that buffer (topics and payloads are slices of it), so a
//! queued message pins only the bytes of the read it came in. Only a
//! partial packet keeps a read buffer across reads. The write buffer is
//! dropped as soon as it has been written out and nothing more is queued.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The per-thread scratch read size. It also bounds how much one read of
/// one connection takes in before the others get a turn (see
/// [`Reads::fill`]), which keeps an overloaded broker fair between the
/// publishers it reads and the subscribers it writes to.
pub(crate) const SCRATCH_LEN: usize = 16 * 1024;
/// Room reserved behind a partial packet, so that the read that completes
/// it brings the packets after it as well.
const PARTIAL_EXTRA: usize = 4 * 1024;
/// Room reserved before encoding queued messages into an empty write buffer.
pub(crate) const WRITE_RESERVE: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Reads into `rbuf`: into the per-thread scratch area when `rbuf` is empty
/// (then `rbuf` becomes an exactly sized copy), else straight behind the
/// partial packet it holds, `missing` being what that packet still lacks.
/// Returns the number of bytes read (0: end of stream). Cancel-safe: every
/// byte read is in `rbuf` when it returns.
pub(crate) fn poll_read<S: AsyncRead + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
    missing: usize,
) -> Poll<io::Result<usize>> {
    if rbuf.is_empty() {
        let scratch = SCRATCH.with(|s| {
            // A stream whose poll_read re-enters this function on the same
            // thread (none does today) would find the scratch borrowed: it
            // then reads into a buffer of its own below.
            let Ok(mut s) = s.try_borrow_mut() else {
                return None;
            };
            let mut rb = ReadBuf::new(&mut s[..]);
            Some(match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let filled = rb.filled();
                    if !filled.is_empty() {
                        *rbuf = BytesMut::from(filled);
                    }
                    Poll::Ready(Ok(filled.len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            })
        });
        if let Some(p) = scratch {
            return p;
        }
    }
    rbuf.reserve(missing.max(1) + PARTIAL_EXTRA);
    tokio_util::io::poll_read_buf(Pin::new(stream), cx, rbuf)
}

/// Writes from the front of `wbuf` (which must not be empty) and drops
/// what was written.
pub(crate) fn poll_write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    wbuf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    match Pin::new(stream).poll_write(cx, wbuf) {
        Poll::Ready(Ok(n)) => {
            // `advance` keeps the buffer unshared (`split_to` would promote
            // it to a shared one, an allocation).
            wbuf.advance(n.min(wbuf.len()));
            Poll::Ready(Ok(n))
        }
        other => other,
    }
}

/// Frees `buf`'s memory if it holds no data: an idle connection keeps no
/// buffer. (An empty buffer with no room left may still share the
/// allocation of a read whose packets are all gone: dropped too.)
pub(crate) fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
}

/// Makes room in an empty write buffer before queued messages are encoded
/// into it, so that a batch does not grow it by doubling.
pub(crate) fn reserve_for_batch(wbuf: &mut BytesMut) {
    if wbuf.capacity() - wbuf.len() < WRITE_RESERVE / 4 {
        wbuf.reserve(WRITE_RESERVE);
    }
}

/// Counts what one connection read since it last let other tasks run.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    since_yield: usize,
}

impl Reads {
    /// Adds a read of `n` bytes; true when the connection has read a full
    /// scratch area's worth since it last yielded and should yield now:
    /// an open-loop publisher always has more to read, and without a turn
    /// for the other tasks the subscribers it feeds would only see their
    /// queues overflow.
    pub fn fill(&mut self, n: usize) -> bool {
        self.since_yield += n;
        if self.since_yield >= SCRATCH_LEN {
            self.since_yield = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn empty_buffer_reads_through_scratch_exactly_sized() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        a.write_all(b"hello").await.unwrap();
        let mut rbuf = BytesMut::new();
        let n = poll_fn(|cx| poll_read(&mut b, cx, &mut rbuf, 0))
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(&rbuf[..], b"hello");
        assert_eq!(rbuf.capacity(), 5, "copied into a buffer of its size");
        // A partial packet: the next read lands behind it.
        a.write_all(b" world").await.unwrap();
        let n = poll_fn(|cx| poll_read(&mut b, cx, &mut rbuf, 3))
            .await
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(&rbuf[..], b"hello world");
        drop(a);
        let mut rbuf = BytesMut::new();
        let n = poll_fn(|cx| poll_read(&mut b, cx, &mut rbuf, 0))
            .await
            .unwrap();
        assert_eq!(n, 0, "end of stream");
        assert_eq!(rbuf.capacity(), 0, "nothing kept for a read of nothing");
    }

    #[tokio::test]
    async fn write_advances_and_release_frees() {
        let (mut a, mut b) = tokio::io::duplex(4);
        let mut wbuf = BytesMut::from(&b"abcdef"[..]);
        let n = poll_fn(|cx| poll_write(&mut a, cx, &mut wbuf))
            .await
            .unwrap();
        assert_eq!(n, 4, "duplex capacity");
        assert_eq!(&wbuf[..], b"ef");
        let mut got = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut b, &mut got)
            .await
            .unwrap();
        release_if_empty(&mut wbuf);
        assert!(wbuf.capacity() > 0, "data left: kept");
        let n = poll_fn(|cx| poll_write(&mut a, cx, &mut wbuf))
            .await
            .unwrap();
        assert_eq!(n, 2);
        release_if_empty(&mut wbuf);
        assert_eq!(wbuf.capacity(), 0);
        reserve_for_batch(&mut wbuf);
        assert!(wbuf.capacity() >= WRITE_RESERVE);
    }

    #[test]
    fn reads_yield_after_a_scratch_full() {
        let mut r = Reads::default();
        assert!(!r.fill(SCRATCH_LEN / 2));
        assert!(r.fill(SCRATCH_LEN / 2));
        assert!(!r.fill(1));
    }
}
