//! The connection task: socket and buffers only. Reads into a `BytesMut`,
//! decodes with midge-proto, hands packets to the [`Client`], and writes
//! everything that piled up (responses and queued messages, many packets)
//! with one write call per batch. Generic over the transport.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use midge_proto::{
    decode, encode, ConnAck, Error as CodecError, Packet, PacketType, Protocol, ReasonCode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, Notify};

use crate::broker::{Broker, Inner};
use crate::client::{Client, Exit};
use crate::connect::{connect, refusal};
use crate::event::Event;
use crate::hooks::ConnectionInfo;

/// Queued messages are moved into the write buffer up to this size.
const DRAIN_LIMIT: usize = 64 * 1024;
/// Reading pauses while this much is waiting to be written (a client that
/// publishes but does not read its acknowledgements is slowed by TCP).
const WRITE_HIGH: usize = 1024 * 1024;
/// How long the last packets (DISCONNECT, CONNACK refusal) may take.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;

/// Keeps the connection counters and the kick registry right however the
/// task ends.
struct Registration<'a> {
    inner: &'a Inner,
    conn_id: u64,
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

pub(crate) async fn run<S>(broker: Broker, stream: S, info: ConnectionInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let inner = &*broker.inner;
    inner.counters.connections.fetch_add(1, Ordering::SeqCst);
    inner
        .counters
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    let conn_id = inner.next_id();
    let (kick_tx, mut kick_rx) = mpsc::channel(4);
    inner.conns.lock().insert(conn_id, kick_tx);
    let _registration = Registration { inner, conn_id };
    if inner.closing.load(Ordering::SeqCst) {
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let max_in = inner.config.max_packet_size as usize;

    let mut first_bytes = 0u64;
    let first = tokio::select! {
        biased;
        // Shutdown: nothing is attached yet, just close.
        _ = kick_rx.recv() => return,
        r = tokio::time::timeout(
            inner.config.connect_timeout,
            read_first(&mut reader, &mut rbuf, max_in, &mut first_bytes),
        ) => r,
    };
    let connect_packet = match first {
        Err(_) => {
            tracing::debug!(?info.remote_addr, "no CONNECT within the connect timeout");
            return;
        }
        Ok(Err(FirstError::Closed)) => return,
        Ok(Err(FirstError::Codec(e, level))) => {
            refuse_bad_connect(&mut writer, &e, level).await;
            return;
        }
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => {
            tracing::debug!(?info.remote_addr, "first packet is not CONNECT");
            return;
        }
    };
    let protocol = connect_packet.protocol;
    let waker = Arc::new(Notify::new());
    let accepted = tokio::select! {
        biased;
        // Shutdown while the authentication hook runs: `connect` attaches
        // nothing before its only await, so dropping it is clean.
        _ = kick_rx.recv() => return,
        r = connect(&broker, *connect_packet, &info, conn_id, waker.clone()) => r,
    };
    let (mut client, connack) = match accepted {
        Ok(ok) => ok,
        Err(refused) => {
            let mut buf = BytesMut::new();
            if encode(&Packet::ConnAck(*refused), protocol, &mut buf).is_ok() {
                let _ =
                    tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_and_close(&mut writer, &buf))
                        .await;
            }
            return;
        }
    };
    client.tally.messages_received += 1;
    client.tally.bytes_received += first_bytes;
    inner.counters.client_connected();
    let exit = match client.send(&Packet::ConnAck(connack), &mut wbuf) {
        Ok(()) => {
            serve(
                &mut client,
                &mut reader,
                &mut writer,
                &mut rbuf,
                &mut wbuf,
                kick_rx,
                &waker,
            )
            .await
        }
        Err(exit) => exit,
    };
    if let Some(d) = client.disconnect_packet(&exit) {
        let _ = client.send(&d, &mut wbuf);
    }
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_and_close(&mut writer, &wbuf)).await;
    client.tally.flush(&inner.counters);
    inner.counters.client_disconnected();
    inner.connection_closed(&client.session, conn_id, exit.will, Instant::now());
    inner.emit(|| Event::ClientDisconnected {
        client_id: client.client_id.clone(),
        reason: exit.reason,
        abnormal: exit.notify || exit.reason == ReasonCode::UnspecifiedError,
    });
    tracing::debug!(client_id = &*client.client_id, reason = ?exit.reason, "connection closed");
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
                rbuf.reserve(n.min(max).max(READ_CHUNK));
                match reader.read_buf(rbuf).await {
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

/// The connected loop: read and handle packets, drain the session queue,
/// write, watch keep alive and kicks. Returns why it ended.
async fn serve<S: AsyncRead + AsyncWrite>(
    client: &mut Client,
    reader: &mut ReadHalf<S>,
    writer: &mut WriteHalf<S>,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    mut kicks: mpsc::Receiver<ReasonCode>,
    waker: &Notify,
) -> Exit {
    let max_in = client.broker.config().max_packet_size as usize;
    let protocol = client.protocol;
    if let Err(exit) = client.resend_inflight(Instant::now(), wbuf) {
        return exit;
    }
    // Packets that arrived in the same read as CONNECT are already here.
    if let Err(exit) = handle_buffered(client, rbuf, wbuf, protocol, max_in) {
        return exit;
    }
    let mut more = true;
    let mut needs_flush = false;
    loop {
        if more && wbuf.len() < DRAIN_LIMIT {
            match client.drain(Instant::now(), wbuf, DRAIN_LIMIT) {
                Ok(m) => more = m,
                Err(exit) => return exit,
            }
        }
        client.tally.flush(&client.broker.inner.counters);
        let deadline = client
            .keepalive
            .deadline()
            .map(tokio::time::Instant::from_std);
        let can_read = wbuf.len() < WRITE_HIGH;
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            kick = kicks.recv() => {
                let reason = kick.unwrap_or(ReasonCode::ServerShuttingDown);
                return Exit::error(reason);
            }
            r = reader.read_buf(rbuf), if can_read => {
                match r {
                    Ok(0) | Err(_) => return Exit::lost(),
                    Ok(n) => {
                        client.tally.bytes_received += n as u64;
                        if let Err(exit) = handle_buffered(client, rbuf, wbuf, protocol, max_in) {
                            return exit;
                        }
                        // Acknowledgements may have opened the window.
                        more = true;
                    }
                }
            }
            w = write_some(writer, wbuf), if !wbuf.is_empty() || needs_flush => {
                match w {
                    Ok(0) if !wbuf.is_empty() => return Exit::lost(),
                    Ok(n) => {
                        if n > 0 {
                            let _ = wbuf.split_to(n);
                            needs_flush = true;
                        } else {
                            needs_flush = false;
                        }
                        more = true;
                    }
                    Err(_) => return Exit::lost(),
                }
            }
            _ = waker.notified() => {
                more = true;
            }
            _ = sleep_until_opt(deadline) => {
                if client.keepalive.expired(Instant::now()) {
                    return Exit::error(ReasonCode::KeepAliveTimeout);
                }
            }
        }
    }
}

/// Decodes and handles every whole packet in `rbuf`.
fn handle_buffered(
    client: &mut Client,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    protocol: Protocol,
    max_in: usize,
) -> Result<(), Exit> {
    let now = Instant::now();
    loop {
        match decode(rbuf, protocol, max_in) {
            Ok(p) => client.handle(p, now, wbuf)?,
            Err(CodecError::Incomplete(n)) => {
                rbuf.reserve(n);
                return Ok(());
            }
            Err(e) => {
                tracing::debug!(client_id = &*client.client_id, error = %e, "closing on a bad packet");
                return Err(Exit::error(e.reason_code()));
            }
        }
    }
}

/// Writes from `wbuf`, or flushes when it is empty (returns 0 then). Each
/// step is cancel-safe, so it can sit in a `select!`.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    wbuf: &BytesMut,
) -> std::io::Result<usize> {
    if wbuf.is_empty() {
        writer.flush().await?;
        return Ok(0);
    }
    writer.write(wbuf).await
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
