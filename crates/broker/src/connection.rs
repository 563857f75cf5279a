//! The connection task: socket and buffers only. Reads and decodes with
//! midge-proto, hands packets to the [`Client`], and writes everything that
//! piled up (responses and queued messages, many packets) with one write
//! call per batch. Generic over the transport; the stream is not split, so
//! reading and writing cost no lock.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use midge_proto::{
    decode, encode, ConnAck, Error as CodecError, Packet, PacketType, Protocol, ReasonCode,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::broker::{Broker, Inner};
use crate::buffers::{self, Reads};
use crate::client::{Client, Exit};
use crate::connect::{connect, refusal};
use crate::event::Event;
use crate::hooks::ConnectionInfo;
use crate::kick::Kick;

/// Queued messages are moved into the write buffer up to this size.
const DRAIN_LIMIT: usize = 64 * 1024;
/// Reading pauses while this much is waiting to be written (a client that
/// publishes but does not read its acknowledgements is slowed by TCP).
const WRITE_HIGH: usize = 1024 * 1024;
/// How long the last packets (DISCONNECT, CONNACK refusal) may take.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps the connection counters and the kick registry right however the
/// task ends.
struct Registration<'a> {
    inner: &'a Inner,
    conn_id: u64,
}

impl<'a> Registration<'a> {
    /// Counts the connection and makes it kickable; `None` when the broker
    /// is shutting down.
    fn new(inner: &'a Inner, kick: &Kick) -> Option<Registration<'a>> {
        inner.counters.connections.fetch_add(1, Ordering::SeqCst);
        inner
            .counters
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let conn_id = inner.next_id();
        inner.conns.lock().insert(conn_id, kick.clone());
        let registration = Registration { inner, conn_id };
        (!inner.closing.load(Ordering::SeqCst)).then_some(registration)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.inner.conns.lock().remove(&self.conn_id);
        self.inner
            .counters
            .connections
            .fetch_sub(1, Ordering::SeqCst);
        self.inner.conn_done.notify_waiters();
    }
}

/// Runs one connection to its end. `info` is boxed so that the task keeps
/// a pointer, not the struct, once the handshake no longer needs it;
/// `guard` (for example a listener's admission permit) is dropped when the
/// connection ends.
///
/// An `async` block rather than an `async fn`: the block keeps its
/// arguments once, as its captures (an `async fn` also moves them into
/// locals, a second copy in the task's state for the connection's life).
#[allow(clippy::manual_async_fn)]
pub(crate) fn run<S, G>(
    broker: Broker,
    stream: S,
    info: Box<ConnectionInfo>,
    guard: G,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    G: Send + 'static,
{
    let mut stream = stream;
    async move {
        // One allocation for the connection's waker and kick.
        let kick = Kick::new();
        // Only `broker`, `kick` and this are kept across the awaits: every
        // word here is a word of every idle connection.
        let Some(registration) = Registration::new(&broker.inner, &kick) else {
            return;
        };
        // No buffer is allocated before there is something to put in it.
        let mut rbuf = BytesMut::new();
        let mut wbuf = BytesMut::new();
        // Boxed: the handshake's state (a decoded CONNECT with its properties
        // and will, the CONNACK) is large and must not stay part of the
        // connection task, which lives as long as the connection.
        let Some((mut client, sent, first_bytes)) = Box::pin(handshake(
            &broker,
            &mut stream,
            &mut rbuf,
            &mut wbuf,
            &kick,
            &info,
            registration.conn_id,
        ))
        .await
        else {
            return;
        };
        drop(info);
        client.tally.messages_received += 1;
        client.tally.bytes_received += first_bytes;
        broker.inner.counters.client_connected();
        let exit = match sent {
            Ok(()) => serve(&mut client, &mut stream, &mut rbuf, &mut wbuf, &kick).await,
            Err(exit) => exit,
        };
        // Publishes waiting for the store: their deliveries and acknowledgements.
        client.settle_deferred(&mut wbuf, CLOSE_WRITE_TIMEOUT).await;
        if let Some(d) = client.disconnect_packet(&exit) {
            let _ = client.send(&d, &mut wbuf);
        }
        // The session is let go before the last write, which a client that
        // stopped reading can hold up: a takeover waits for this.
        closed(client, exit);
        let _ =
            tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_and_close(&mut stream, &wbuf)).await;
        drop(registration);
        drop(guard);
    }
}

/// The attached connection is over: counters, session, will, event.
fn closed(mut client: Client, exit: Exit) {
    client.tally.flush(&client.broker.inner.counters);
    client.flush_store();
    let inner = &*client.broker.inner;
    inner.counters.client_disconnected();
    inner.connection_closed(&client.session, client.conn_id, exit.will, Instant::now());
    inner.emit(|| Event::ClientDisconnected {
        client_id: client.client_id.clone(),
        reason: exit.reason,
        abnormal: exit.notify || exit.reason == ReasonCode::UnspecifiedError,
    });
    tracing::debug!(client_id = &*client.client_id, reason = ?exit.reason, "connection closed");
    // A takeover may be waiting for this session (`release_attached`).
    inner.conn_done.notify_waiters();
}

/// Reads the CONNECT (within the connect timeout) and accepts or refuses
/// it. Returns the attached client, whether its CONNACK went into `wbuf`,
/// and the bytes read; `None` when the connection is to close (refused,
/// timed out, shut down).
#[allow(clippy::too_many_arguments)]
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    broker: &Broker,
    stream: &mut S,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    kick: &Kick,
    info: &ConnectionInfo,
    conn_id: u64,
) -> Option<(Client, Result<(), Exit>, u64)> {
    let inner = &*broker.inner;
    let max_in = inner.config.max_packet_size as usize;
    let mut first_bytes = 0u64;
    let first = tokio::select! {
        biased;
        // Shutdown: nothing is attached yet, just close.
        _ = kick.recv() => return None,
        r = tokio::time::timeout(
            inner.config.connect_timeout,
            read_first(stream, rbuf, max_in, &mut first_bytes),
        ) => r,
    };
    let connect_packet = match first {
        Err(_) => {
            tracing::debug!(?info.remote_addr, "no CONNECT within the connect timeout");
            return None;
        }
        Ok(Err(FirstError::Closed)) => return None,
        Ok(Err(FirstError::Codec(e, level))) => {
            refuse_bad_connect(stream, &e, level).await;
            return None;
        }
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => {
            tracing::debug!(?info.remote_addr, "first packet is not CONNECT");
            return None;
        }
    };
    let protocol = connect_packet.protocol;
    let accepted = tokio::select! {
        biased;
        // Shutdown while the authentication hook runs: `connect` attaches
        // nothing before its only await, so dropping it is clean.
        _ = kick.recv() => return None,
        r = connect(broker, *connect_packet, info, conn_id, kick.clone()) => r,
    };
    match accepted {
        Ok((mut client, connack)) => {
            let sent = client.send(&Packet::ConnAck(connack), wbuf);
            Some((client, sent, first_bytes))
        }
        Err(refused) => {
            let mut buf = BytesMut::new();
            if encode(&Packet::ConnAck(*refused), protocol, &mut buf).is_ok() {
                let _ =
                    tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_and_close(stream, &buf)).await;
            }
            None
        }
    }
}

enum FirstError {
    Closed,
    /// A codec error on the first packet, with the protocol level byte if
    /// it could be seen (to answer a 5.0 client in its own version).
    Codec(CodecError, Option<u8>),
}

async fn read_first<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    max: usize,
    read: &mut u64,
) -> Result<Packet, FirstError> {
    loop {
        let level = connect_level(rbuf);
        match decode(rbuf, Protocol::V5, max) {
            Ok(p) => return Ok(p),
            Err(CodecError::Incomplete(n)) => {
                match poll_fn(|cx| buffers::poll_read(reader, cx, rbuf, n.min(max))).await {
                    Ok(0) | Err(_) => return Err(FirstError::Closed),
                    Ok(n) => *read += n as u64,
                }
            }
            Err(e) => return Err(FirstError::Codec(e, level)),
        }
    }
}

/// The protocol level byte of a CONNECT at the front of `buf`, if there.
fn connect_level(buf: &[u8]) -> Option<u8> {
    if buf.first()? >> 4 != PacketType::Connect as u8 {
        return None;
    }
    let (_, n) = midge_proto::read_varint(buf.get(1..)?).ok()?;
    let at = 1 + n;
    let name_len = usize::from(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]));
    buf.get(at + 2 + name_len).copied()
}

/// Answers a CONNECT that did not decode: 0x01 for an unknown protocol
/// level; for a 5.0 client the reason code of the error; else just close.
async fn refuse_bad_connect<W: AsyncWrite + Unpin>(
    writer: &mut W,
    e: &CodecError,
    level: Option<u8>,
) {
    let (protocol, reason) = match e {
        CodecError::UnsupportedProtocolVersion(_) => {
            (Protocol::V3_1_1, ReasonCode::UnsupportedProtocolVersion)
        }
        _ if level == Some(5) => {
            let r = e.reason_code();
            let r = if r.valid_for(PacketType::ConnAck) {
                r
            } else {
                ReasonCode::UnspecifiedError
            };
            (Protocol::V5, r)
        }
        _ => return,
    };
    let ack: ConnAck = *refusal(reason);
    let mut buf = BytesMut::new();
    if encode(&Packet::ConnAck(ack), protocol, &mut buf).is_ok() {
        let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_and_close(writer, &buf)).await;
    }
}

async fn write_and_close<W: AsyncWrite + Unpin>(writer: &mut W, buf: &[u8]) -> std::io::Result<()> {
    writer.write_all(buf).await?;
    writer.flush().await?;
    writer.shutdown().await
}

/// What woke the connected loop.
enum Wake {
    /// Bytes appended to the read buffer (0: the peer closed).
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Flushed(std::io::Result<()>),
    /// The session queued messages.
    Queued,
    /// A store commit came in: acknowledgements waiting for it can go.
    Stored,
    /// The keep-alive deadline as it was when the timer was set.
    Timer,
    /// A PUBLISH held by the rate limit may go now.
    Resume,
}

/// The connected loop: read and handle packets, drain the session queue,
/// write, watch keep alive and kicks. Returns why it ended.
///
/// One poll function waits for all of them, on futures that live as long
/// as the loop: the queue notification and the keep-alive timer are
/// registered once, not once per wake-up (a timer registration is a lock
/// and a wheel insertion), and the timer is only moved when it fires early
/// (packets pushed the deadline back since it was set).
// An `async` block, not an `async fn`: its arguments are kept once (see
// `run`).
#[allow(clippy::manual_async_fn)]
fn serve<'a, S: AsyncRead + AsyncWrite + Unpin>(
    client: &'a mut Client,
    stream: &'a mut S,
    rbuf: &'a mut BytesMut,
    wbuf: &'a mut BytesMut,
    kick: &'a Kick,
) -> impl Future<Output = Exit> + 'a {
    async move {
        if let Err(exit) = client.resend_inflight(Instant::now(), wbuf) {
            return exit;
        }
        // A PUBLISH over the client's rate, waiting for tokens (Throttle): the
        // socket is not read meanwhile.
        // Boxed: a `Packet` is some 500 bytes, rarely held, and the task's
        // state lives as long as the connection.
        let mut held: Option<Box<Held>> = None;
        // Packets that arrived in the same read as CONNECT are already here.
        let mut missing = 0;
        if let Err(exit) = handle_buffered(client, rbuf, wbuf, &mut missing, &mut held) {
            return exit;
        }
        let keepalive_on = client.keepalive.deadline().is_some();
        let mut timer = pin!(tokio::time::sleep_until(timer_deadline(client)));
        // Created the first time the rate limit holds a packet: most
        // connections never need it, and it is 112 bytes of task state.
        let mut resume: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut more = true;
        let mut needs_flush = false;
        let mut reads = Reads::default();
        // The one read after a takeover kick is done.
        let mut last_read = false;
        loop {
            // Kicks ring the same waker as queued messages; looked at on every
            // turn (one atomic load), so a client that keeps the socket busy
            // cannot delay a takeover or a shutdown.
            if let Some(reason) = kick.reason() {
                if reason != ReasonCode::SessionTakenOver || last_read {
                    return Exit::error(reason);
                }
                // Taken over: what the client sent before it connected
                // again (a DISCONNECT, acknowledgements) is handled first,
                // as far as it has arrived.
                last_read = true;
                let readable = held.is_none() && client.may_read();
                let ready = poll_fn(|cx| {
                    Poll::Ready(if readable {
                        buffers::poll_read(stream, cx, rbuf, missing)
                    } else {
                        Poll::Pending
                    })
                })
                .await;
                let Poll::Ready(Ok(n)) = ready else {
                    return Exit::error(reason);
                };
                if n == 0 {
                    return Exit::lost();
                }
                client.tally.bytes_received += n as u64;
                if let Err(exit) = handle_buffered(client, rbuf, wbuf, &mut missing, &mut held) {
                    return exit;
                }
                continue;
            }
            if more && wbuf.len() < DRAIN_LIMIT {
                buffers::reserve_for_batch(wbuf);
                match client.drain(Instant::now(), wbuf, DRAIN_LIMIT) {
                    Ok(m) => more = m,
                    Err(exit) => return exit,
                }
            }
            client.tally.flush(&client.broker.inner.counters);
            // This turn's store writes (sent, acknowledged): one batch.
            client.flush_store();
            // Nothing to write and no partial packet: hold no buffer while
            // waiting.
            buffers::release_if_empty(wbuf);
            buffers::release_if_empty(rbuf);
            let throttled = held.is_some();
            if let Some(h) = &held {
                let at = tokio::time::Instant::from_std(h.until);
                match resume.as_mut() {
                    Some(r) if r.deadline() == at => {}
                    Some(r) => r.as_mut().reset(at),
                    None => resume = Some(Box::pin(tokio::time::sleep_until(at))),
                }
            }
            // Not while too many acknowledgements wait for the store.
            let can_read = wbuf.len() < WRITE_HIGH && !throttled && client.may_read();
            let wake = poll_fn(|cx| {
                if !wbuf.is_empty() {
                    if let Poll::Ready(r) = buffers::poll_write(stream, cx, wbuf) {
                        return Poll::Ready(Wake::Wrote(r));
                    }
                } else if needs_flush {
                    if let Poll::Ready(r) = Pin::new(&mut *stream).poll_flush(cx) {
                        return Poll::Ready(Wake::Flushed(r));
                    }
                }
                if can_read {
                    if let Poll::Ready(r) = buffers::poll_read(stream, cx, rbuf, missing) {
                        return Poll::Ready(Wake::Read(r));
                    }
                }
                if kick.poll_woken(cx).is_ready() {
                    return Poll::Ready(Wake::Queued);
                }
                if client.poll_deferred(cx).is_ready() {
                    return Poll::Ready(Wake::Stored);
                }
                // While throttled the client's packets wait unread in the
                // socket: keep alive does not run against it then.
                if keepalive_on && !throttled && timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                if let Some(r) = resume.as_mut().filter(|_| throttled) {
                    if r.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Resume);
                    }
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Wrote(Ok(0)) | Wake::Wrote(Err(_)) | Wake::Flushed(Err(_)) => {
                    return Exit::lost()
                }
                Wake::Wrote(Ok(_)) => {
                    needs_flush = true;
                    more = true;
                }
                Wake::Flushed(Ok(())) => needs_flush = false,
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) => return Exit::lost(),
                Wake::Read(Ok(n)) => {
                    client.tally.bytes_received += n as u64;
                    if let Err(exit) = handle_buffered(client, rbuf, wbuf, &mut missing, &mut held)
                    {
                        return exit;
                    }
                    // Acknowledgements may have opened the window.
                    more = true;
                    if reads.fill(n) {
                        tokio::task::yield_now().await;
                    }
                }
                Wake::Stored => {
                    if let Err(exit) = client.flush_deferred(wbuf) {
                        return exit;
                    }
                    // Deliveries that waited may have let the queue go on.
                    more = true;
                }
                Wake::Queued => more = true,
                Wake::Resume => {
                    if let Err(exit) = handle_buffered(client, rbuf, wbuf, &mut missing, &mut held)
                    {
                        return exit;
                    }
                    more = true;
                }
                Wake::Timer => {
                    if client.keepalive.expired(Instant::now()) {
                        return Exit::error(ReasonCode::KeepAliveTimeout);
                    }
                    timer.as_mut().reset(timer_deadline(client));
                }
            }
        }
    }
}

/// When the keep-alive timer should fire (far away when keep alive is off:
/// the timer is then never polled).
fn timer_deadline(client: &Client) -> tokio::time::Instant {
    match client.keepalive.deadline() {
        Some(d) => tokio::time::Instant::from_std(d),
        None => tokio::time::Instant::now() + Duration::from_secs(86_400 * 365),
    }
}

/// A decoded packet that the publish rate limit holds back until `until`.
struct Held {
    packet: Packet,
    until: Instant,
}

/// Handles the held packet if its time has come, then decodes and handles
/// every whole packet in `rbuf`, stopping at one the rate limit holds (it
/// goes into `held`). `missing` is set to what the partial packet left at
/// the end of `rbuf` still lacks.
fn handle_buffered(
    client: &mut Client,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    missing: &mut usize,
    held: &mut Option<Box<Held>>,
) -> Result<(), Exit> {
    // Looked up here rather than kept in the connection task's state.
    let protocol = client.protocol;
    let max_in = client.broker.config().max_packet_size as usize;
    let now = Instant::now();
    if let Some(h) = held.take() {
        if !admit(client, h.packet, now, wbuf, held)? {
            return Ok(());
        }
    }
    loop {
        // A PUBACK without reason or properties (3.x, or 5.0 Success) is
        // four bytes and the packet a QoS 1 subscriber sends most: handled
        // without building a `Packet` (with its 400-byte 5.0 properties to
        // fill, move and drop). A packet id of 0 is left to the decoder,
        // which rejects it.
        if let [0x40, 0x02, hi, lo, ..] = rbuf[..] {
            let pkid = u16::from_be_bytes([hi, lo]);
            if pkid != 0 {
                rbuf.advance(4);
                client.on_puback(pkid, now);
                continue;
            }
        }
        match decode(rbuf, protocol, max_in) {
            Ok(p) => {
                if !admit(client, p, now, wbuf, held)? {
                    return Ok(());
                }
            }
            Err(CodecError::Incomplete(n)) => {
                *missing = n;
                return Ok(());
            }
            Err(e) => {
                tracing::debug!(client_id = &*client.client_id, error = %e, "closing on a bad packet");
                return Err(Exit::error(e.reason_code()));
            }
        }
    }
}

/// Handles `packet` if the publish rate limit lets it through now (true),
/// else holds it (false). Inlined: a `Packet` is some 500 bytes, and each
/// call that takes one by value copies it.
#[inline]
fn admit(
    client: &mut Client,
    packet: Packet,
    now: Instant,
    wbuf: &mut BytesMut,
    held: &mut Option<Box<Held>>,
) -> Result<bool, Exit> {
    match client.admit(&packet, now)? {
        None => client.handle(packet, now, wbuf).map(|()| true),
        Some(until) => {
            *held = Some(Box::new(Held { packet, until }));
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection task lives as long as the connection, and its state
    /// is most of what an idle connection costs: keep it small (the
    /// handshake is boxed, rarely used state is boxed, no temporaries
    /// across the long await).
    #[test]
    fn connection_task_state_stays_small() {
        let broker = Broker::new(crate::BrokerConfig::default());
        let (a, _b) = tokio::io::duplex(64);
        let info = ConnectionInfo::new(None, "t", crate::Transport::Tcp);
        let fut = run(broker, a, Box::new(info), ());
        let size = std::mem::size_of_val(&fut);
        // 3,904 bytes before the handshake was boxed, 928 before the waker
        // became a waker slot and scratch vectors moved to the thread; 704
        // now. With TCP the server crate checks the task's size class
        // (`listener::tests`): 128 bytes per connection per step.
        assert!(size <= 720, "connection future is {size} bytes");
    }
}
