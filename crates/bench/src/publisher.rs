//! One publisher connection: a write loop that encodes batches of PUBLISH
//! packets into one buffer per `write`, and a read task that turns PUBACK,
//! PUBREC and PUBCOMP into control messages for the write loop.
//!
//! Packet identifiers double as the in-flight limit: the write loop owns a
//! free list of `--inflight` ids and waits when it is empty.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use midge_proto::{
    ByteString, Disconnect, Packet, Properties, Protocol, PubResp, Publish, QoS, ReasonCode,
};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{encode_into, Conn, Reader};
use crate::flow::{Pacer, Window};
use crate::payload::{self, Stamp};
use crate::run::RunShared;

/// Most messages encoded into one write.
const BATCH: u64 = 64;
/// Payload arena refill size: payloads are cut from it to avoid one
/// allocation per message.
const ARENA: usize = 64 * 1024;

/// What one publisher does.
#[derive(Debug, Clone)]
pub struct PublisherPlan {
    pub id: u32,
    pub topic: String,
    pub qos: QoS,
    pub size: usize,
    /// Unacknowledged QoS 1/2 messages allowed (1..=65535).
    pub inflight: u16,
    /// Stop after this many messages.
    pub count: Option<u64>,
    pub pacer: Option<Pacer>,
    pub window: Option<Arc<Window>>,
}

/// What one publisher did.
#[derive(Debug, Clone, Default)]
pub struct PublisherResult {
    pub sent: u64,
    /// QoS 1/2 messages whose flow completed successfully.
    pub acked: u64,
    /// QoS 1/2 messages refused by the broker (5.0 reason code >= 0x80).
    pub rejected: u64,
    /// [`crate::payload::Clock`] time of the last write of messages.
    pub last_send_ns: u64,
    pub error: Option<String>,
}

/// From the read task to the write loop.
#[derive(Debug)]
enum Ctl {
    /// The flow of this id completed (PUBACK or PUBCOMP, or a refusal).
    Done { pkid: u16, ok: bool },
    /// PUBREC: send PUBREL for this id.
    Release(u16),
    /// The connection failed.
    Failed(String),
}

/// Bookkeeping of the write loop.
#[derive(Debug)]
struct Flight {
    free: Vec<u16>,
    capacity: usize,
    releases: Vec<u16>,
    acked: u64,
    rejected: u64,
    error: Option<String>,
}

impl Flight {
    fn new(qos: QoS, inflight: u16) -> Self {
        let free: Vec<u16> = match qos {
            QoS::AtMostOnce => Vec::new(),
            _ => (1..=inflight.max(1)).rev().collect(),
        };
        Flight {
            capacity: free.len(),
            free,
            releases: Vec::new(),
            acked: 0,
            rejected: 0,
            error: None,
        }
    }

    fn apply(&mut self, ctl: Option<Ctl>) {
        match ctl {
            Some(Ctl::Done { pkid, ok }) => {
                if ok {
                    self.acked += 1;
                } else {
                    self.rejected += 1;
                }
                self.free.push(pkid);
            }
            Some(Ctl::Release(pkid)) => self.releases.push(pkid),
            Some(Ctl::Failed(e)) => {
                self.error.get_or_insert(e);
            }
            None => {
                self.error.get_or_insert_with(|| "reader stopped".into());
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.capacity - self.free.len()
    }
}

/// Runs one publisher until `stop` (or its count), then waits for its
/// acknowledgements until `abort`, and disconnects.
pub async fn run(conn: Conn, plan: PublisherPlan, shared: Arc<RunShared>) -> PublisherResult {
    let Conn {
        reader,
        mut writer,
        protocol,
        receive_maximum,
    } = conn;
    let who = reader.who().to_owned();
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    let reader_task = tokio::spawn(read_acks(reader, ctl_tx, shared.abort.clone()));
    // A 5.0 broker says how many it accepts in flight; exceeding that is a
    // protocol error that gets the connection closed.
    let inflight = receive_maximum.map_or(plan.inflight, |m| plan.inflight.min(m.max(1)));
    let mut flight = Flight::new(plan.qos, inflight);
    let mut out = Output {
        buf: BytesMut::with_capacity(ARENA),
        arena: BytesMut::new(),
        protocol,
        who,
    };
    let topic = ByteString::from(plan.topic.as_str());
    let counter = shared.sent.get(plan.id as usize);
    let mut seq: u64 = 0;
    let mut last_send_ns = 0;

    loop {
        while let Ok(c) = ctl_rx.try_recv() {
            flight.apply(Some(c));
        }
        if flight.error.is_some() || shared.stop.is_cancelled() {
            break;
        }
        let mut budget = BATCH;
        if let Some(n) = plan.count {
            if seq >= n {
                break;
            }
            budget = budget.min(n - seq);
        }
        let mut pace_at = None;
        if let Some(p) = plan.pacer {
            match p.due(Instant::now(), seq) {
                0 => pace_at = Some(p.next_at(seq)),
                due => budget = budget.min(due),
            }
        }
        let acks_exhausted = plan.qos != QoS::AtMostOnce && flight.free.is_empty();
        budget = match plan.qos {
            QoS::AtMostOnce => budget,
            _ => budget.min(flight.free.len() as u64),
        };
        let mut window_full = None;
        if pace_at.is_none() && !acks_exhausted {
            if let Some(w) = &plan.window {
                budget = w.reserve(budget);
                if budget == 0 {
                    window_full = Some(w.clone());
                }
            }
        }
        if pace_at.is_some() || acks_exhausted || window_full.is_some() {
            // Nothing may be sent now: flush PUBRELs (the broker may hold
            // QoS 2 deliveries until it gets them), then wait for whatever
            // can change that.
            if let Err(e) = out.releases(&mut flight, &mut writer, &shared.abort).await {
                flight.error.get_or_insert(e);
                break;
            }
            tokio::select! {
                c = ctl_rx.recv() => flight.apply(c),
                _ = shared.stop.cancelled() => {}
                _ = sleep_until_opt(pace_at), if pace_at.is_some() => {}
                _ = wait_window(window_full.as_deref()), if window_full.is_some() => {}
            }
            continue;
        }
        for _ in 0..budget {
            let pkid = match plan.qos {
                QoS::AtMostOnce => 0,
                _ => flight.free.pop().unwrap_or(0),
            };
            let stamp = Stamp {
                publisher: plan.id,
                seq,
                sent_ns: shared.clock.now_ns(),
            };
            if let Err(e) = out.publish(&topic, plan.qos, pkid, stamp, plan.size) {
                flight.error.get_or_insert(e);
                break;
            }
            seq += 1;
        }
        out.encode_releases(&mut flight);
        // Counted before the write so that a subscriber never sees more
        // deliveries than sends.
        if let Some(c) = counter {
            c.fetch_add(budget, Ordering::AcqRel);
        }
        if let Err(e) = out.flush(&mut writer, &shared.abort).await {
            flight.error.get_or_insert(e);
            break;
        }
        last_send_ns = shared.clock.now_ns();
    }

    // Wait for the acknowledgements of what is in flight.
    while flight.error.is_none() && flight.in_flight() > 0 {
        if let Err(e) = out.releases(&mut flight, &mut writer, &shared.abort).await {
            flight.error.get_or_insert(e);
            break;
        }
        tokio::select! {
            c = ctl_rx.recv() => flight.apply(c),
            _ = shared.abort.cancelled() => break,
        }
    }
    if flight.error.is_none() && !shared.abort.is_cancelled() {
        let bye = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
        if encode_into(&bye, protocol, &mut out.buf, &out.who).is_ok() {
            let _ = out.flush(&mut writer, &shared.abort).await;
        }
        let _ = writer.shutdown().await;
    }
    reader_task.abort();
    let _ = reader_task.await;
    if let Some(e) = &flight.error {
        if shared.abort.is_cancelled() && e.contains("aborted") {
            flight.error = None;
        }
    }
    PublisherResult {
        sent: seq,
        acked: flight.acked,
        rejected: flight.rejected,
        last_send_ns,
        error: flight.error.take(),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

async fn wait_window(w: Option<&Window>) {
    if let Some(w) = w {
        w.wait().await;
    }
}

/// The write side's buffers.
#[derive(Debug)]
struct Output {
    buf: BytesMut,
    arena: BytesMut,
    protocol: Protocol,
    who: String,
}

impl Output {
    fn publish(
        &mut self,
        topic: &ByteString,
        qos: QoS,
        pkid: u16,
        stamp: Stamp,
        size: usize,
    ) -> Result<(), String> {
        if self.arena.capacity() - self.arena.len() < size.max(payload::HEADER_LEN) {
            self.arena.reserve(ARENA.max(size));
        }
        payload::write(stamp, size, &mut self.arena);
        let packet = Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.clone(),
            pkid,
            payload: self.arena.split().freeze(),
            properties: Properties::default(),
        });
        encode_into(&packet, self.protocol, &mut self.buf, &self.who).map_err(|e| e.to_string())
    }

    fn encode_releases(&mut self, flight: &mut Flight) {
        for pkid in flight.releases.drain(..) {
            let rel = Packet::PubRel(PubResp::new(pkid));
            if let Err(e) = encode_into(&rel, self.protocol, &mut self.buf, &self.who) {
                flight.error.get_or_insert(e.to_string());
            }
        }
    }

    async fn releases(
        &mut self,
        flight: &mut Flight,
        writer: &mut OwnedWriteHalf,
        abort: &CancellationToken,
    ) -> Result<(), String> {
        self.encode_releases(flight);
        self.flush(writer, abort).await
    }

    /// Writes the batch. Races only against `abort`: a write blocked by a
    /// saturated broker is allowed to finish after `stop`, so that every
    /// message counted as sent was really handed to the socket.
    async fn flush(
        &mut self,
        writer: &mut OwnedWriteHalf,
        abort: &CancellationToken,
    ) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        tokio::select! {
            r = writer.write_all(&self.buf) => {
                r.map_err(|e| format!("{}: write: {e}", self.who))?;
            }
            _ = abort.cancelled() => return Err(format!("{}: write aborted", self.who)),
        }
        self.buf.clear();
        Ok(())
    }
}

/// Reads acknowledgements and forwards them to the write loop.
async fn read_acks(mut reader: Reader, tx: mpsc::UnboundedSender<Ctl>, abort: CancellationToken) {
    loop {
        let packet = tokio::select! {
            p = reader.next() => p,
            _ = abort.cancelled() => return,
        };
        let ctl = match packet {
            Ok(Packet::PubAck(a)) | Ok(Packet::PubComp(a)) => Ctl::Done {
                pkid: a.pkid,
                ok: (a.reason as u8) < 0x80,
            },
            Ok(Packet::PubRec(a)) if (a.reason as u8) < 0x80 => Ctl::Release(a.pkid),
            Ok(Packet::PubRec(a)) => Ctl::Done {
                pkid: a.pkid,
                ok: false,
            },
            Ok(Packet::Disconnect(d)) => Ctl::Failed(format!(
                "{}: DISCONNECT from broker: {:?}",
                reader.who(),
                d.reason
            )),
            Ok(_) => continue,
            Err(e) => Ctl::Failed(e.to_string()),
        };
        let last = matches!(ctl, Ctl::Failed(_));
        if tx.send(ctl).is_err() || last {
            return;
        }
    }
}
