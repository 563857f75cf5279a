//! One subscriber connection: a read loop that decodes every packet in each
//! read, accounts and timestamps the messages, and hands the batch's
//! acknowledgements (PUBACK, PUBREC, PUBCOMP) to a write task as one buffer.
//!
//! Reading and writing are separate tasks so that a subscriber blocked on
//! writing acknowledgements can never stop reading (which could deadlock
//! with a broker blocked writing to it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use midge_proto::{Disconnect, Packet, Protocol, PubResp, QoS, ReasonCode};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::accounting::{Arrival, Streams};
use crate::client::{encode_into, Conn};
use crate::flow::Window;
use crate::latency::Latency;
use crate::payload;
use crate::run::RunShared;

/// What one subscriber saw.
#[derive(Debug, Clone, Default)]
pub struct SubscriberResult {
    pub streams: Streams,
    pub latency: Latency,
    /// PUBLISH packets that did not carry a bench payload of this run.
    pub foreign: u64,
    /// [`crate::payload::Clock`] time of the last message received.
    pub last_recv_ns: u64,
    pub error: Option<String>,
}

/// Reads until `finish` (or `abort`, or an error), then disconnects.
///
/// `delivered` counts distinct messages, for the progress line and the
/// flow-control windows in `feeds`, which are told after each read.
pub async fn run(
    conn: Conn,
    delivered: Arc<AtomicU64>,
    feeds: Vec<Arc<Window>>,
    publishers: u32,
    shared: Arc<RunShared>,
) -> SubscriberResult {
    let Conn {
        mut reader,
        writer,
        protocol,
        ..
    } = conn;
    let who = reader.who().to_owned();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Bytes>();
    let writer_task = tokio::spawn(write_acks(
        writer,
        ack_rx,
        protocol,
        who.clone(),
        shared.abort.clone(),
    ));
    let mut res = SubscriberResult::default();
    let mut acks = BytesMut::new();
    loop {
        let filled = tokio::select! {
            r = reader.fill() => r,
            _ = shared.finish.cancelled() => break,
            _ = shared.abort.cancelled() => break,
        };
        if let Err(e) = filled {
            res.error = Some(e.to_string());
            break;
        }
        // One clock read per read batch: the messages of a batch arrived
        // together, and the clock is not free.
        let now = shared.clock.now_ns();
        let mut fresh = 0u64;
        loop {
            let packet = match reader.try_decode() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    res.error = Some(e.to_string());
                    break;
                }
            };
            match packet {
                Packet::Publish(p) => {
                    match payload::read(&p.payload) {
                        Ok(st) if st.publisher < publishers => {
                            match res.streams.record(st.publisher, st.seq) {
                                Arrival::Duplicate => {}
                                _ => {
                                    fresh += 1;
                                    res.latency.record(now.saturating_sub(st.sent_ns));
                                }
                            }
                        }
                        _ => res.foreign += 1,
                    }
                    let ack = match p.qos {
                        QoS::AtMostOnce => None,
                        QoS::AtLeastOnce => Some(Packet::PubAck(PubResp::new(p.pkid))),
                        QoS::ExactlyOnce => Some(Packet::PubRec(PubResp::new(p.pkid))),
                    };
                    if let Some(ack) = ack {
                        if let Err(e) = encode_into(&ack, protocol, &mut acks, &who) {
                            res.error = Some(e.to_string());
                        }
                    }
                }
                Packet::PubRel(r) => {
                    let comp = Packet::PubComp(PubResp::new(r.pkid));
                    if let Err(e) = encode_into(&comp, protocol, &mut acks, &who) {
                        res.error = Some(e.to_string());
                    }
                }
                Packet::Disconnect(d) => {
                    res.error = Some(format!("{who}: DISCONNECT from broker: {:?}", d.reason));
                }
                _ => {}
            }
        }
        if fresh > 0 {
            delivered.fetch_add(fresh, Ordering::AcqRel);
            res.last_recv_ns = now;
            for w in &feeds {
                w.notify_progress();
            }
        }
        if !acks.is_empty() && ack_tx.send(acks.split().freeze()).is_err() {
            res.error
                .get_or_insert_with(|| format!("{who}: acknowledgement writer stopped"));
        }
        if res.error.is_some() {
            break;
        }
    }
    // Closing the channel tells the writer to send DISCONNECT and finish.
    drop(ack_tx);
    match writer_task.await {
        Ok(Err(e)) if res.error.is_none() && !shared.abort.is_cancelled() => res.error = Some(e),
        _ => {}
    }
    res
}

/// Writes acknowledgement batches, coalescing whatever is queued, then a
/// DISCONNECT once the reader is done.
async fn write_acks(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    protocol: Protocol,
    who: String,
    abort: CancellationToken,
) -> Result<(), String> {
    let mut buf = BytesMut::new();
    loop {
        let first = tokio::select! {
            b = rx.recv() => b,
            _ = abort.cancelled() => return Ok(()),
        };
        let Some(first) = first else { break };
        buf.extend_from_slice(&first);
        while let Ok(more) = rx.try_recv() {
            buf.extend_from_slice(&more);
        }
        write(&mut writer, &buf, &who, &abort).await?;
        buf.clear();
    }
    let bye = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
    encode_into(&bye, protocol, &mut buf, &who).map_err(|e| e.to_string())?;
    write(&mut writer, &buf, &who, &abort).await?;
    let _ = writer.shutdown().await;
    Ok(())
}

async fn write(
    writer: &mut OwnedWriteHalf,
    buf: &[u8],
    who: &str,
    abort: &CancellationToken,
) -> Result<(), String> {
    tokio::select! {
        r = writer.write_all(buf) => r.map_err(|e| format!("{who}: write: {e}")),
        _ = abort.cancelled() => Ok(()),
    }
}
