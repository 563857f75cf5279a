//! One MQTT connection: the byte stream, a read buffer and a write buffer,
//! and midge-proto to turn packets into bytes and back. `-d` logging of
//! every packet sent and received lives here, where every packet passes.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use midge_proto::{Error as ProtoError, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ClientError;
use crate::transport::BoxStream;

/// A writer shared by the parts that print (stderr for `-d` and warnings).
pub type SharedWriter = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes one line to a shared writer. The lock is held for the one write
/// only (never across an await), so a std Mutex is enough.
pub fn write_line(w: &SharedWriter, line: &str) {
    if let Ok(mut w) = w.lock() {
        // Nothing useful can be done when stderr itself fails.
        let _ = writeln!(w, "{line}");
        let _ = w.flush();
    }
}

/// `-d` output: lines in the style of libmosquitto's debug log.
#[derive(Clone)]
pub struct DebugLog {
    out: SharedWriter,
    /// The client id, or "(null)" until the broker assigns one.
    pub client_id: String,
}

impl std::fmt::Debug for DebugLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugLog")
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl DebugLog {
    pub fn new(out: SharedWriter, client_id: &str) -> Self {
        let client_id = if client_id.is_empty() {
            "(null)".to_owned()
        } else {
            client_id.to_owned()
        };
        DebugLog { out, client_id }
    }

    pub fn line(&self, text: &str) {
        write_line(&self.out, text);
    }

    fn packet(&self, verb: &str, packet: &Packet) {
        for detail in describe(packet) {
            self.line(&format!("Client {} {verb} {detail}", self.client_id));
        }
    }
}

/// One line per packet (one per filter for SUBSCRIBE/UNSUBSCRIBE).
fn describe(packet: &Packet) -> Vec<String> {
    match packet {
        Packet::Connect(_) => vec!["CONNECT".into()],
        Packet::ConnAck(c) => vec![format!("CONNACK ({})", c.reason as u8)],
        Packet::Publish(p) => vec![format!(
            "PUBLISH (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            u8::from(p.dup),
            p.qos as u8,
            u8::from(p.retain),
            p.pkid,
            p.topic,
            p.payload.len()
        )],
        Packet::PubAck(r) => vec![format!("PUBACK (Mid: {}, RC:{})", r.pkid, r.reason as u8)],
        Packet::PubRec(r) => vec![format!("PUBREC (Mid: {}, RC:{})", r.pkid, r.reason as u8)],
        Packet::PubRel(r) => vec![format!("PUBREL (Mid: {})", r.pkid)],
        Packet::PubComp(r) => vec![format!("PUBCOMP (Mid: {}, RC:{})", r.pkid, r.reason as u8)],
        Packet::Subscribe(s) => s
            .filters
            .iter()
            .map(|f| {
                let o = &f.options;
                let options = u8::from(o.no_local) << 2
                    | u8::from(o.retain_as_published) << 3
                    | (o.retain_handling as u8) << 4;
                format!(
                    "SUBSCRIBE (Mid: {}, Topic: {}, QoS: {}, Options: 0x{:02x})",
                    s.pkid, f.filter, o.qos as u8, options
                )
            })
            .collect(),
        Packet::SubAck(s) => vec![format!("SUBACK (Mid: {})", s.pkid)],
        Packet::Unsubscribe(u) => u
            .filters
            .iter()
            .map(|f| format!("UNSUBSCRIBE (Mid: {}, Topic: {f})", u.pkid))
            .collect(),
        Packet::UnsubAck(u) => vec![format!("UNSUBACK (Mid: {})", u.pkid)],
        Packet::PingReq => vec!["PINGREQ".into()],
        Packet::PingResp => vec!["PINGRESP".into()],
        Packet::Disconnect(d) => vec![format!("DISCONNECT ({})", d.reason as u8)],
        Packet::Auth(a) => vec![format!("AUTH ({})", a.reason as u8)],
    }
}

/// Socket plus buffers. `read_packet` is cancel-safe (bytes read stay in the
/// buffer), so it can sit in a `select!` beside timers and input.
pub struct Connection {
    stream: BoxStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    protocol: Protocol,
    max_incoming: usize,
    last_write: Instant,
    pub log: Option<DebugLog>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("protocol", &self.protocol)
            .field("buffered_in", &self.rbuf.len())
            .field("buffered_out", &self.wbuf.len())
            .finish()
    }
}

impl Connection {
    pub fn new(
        stream: BoxStream,
        protocol: Protocol,
        max_incoming: usize,
        log: Option<DebugLog>,
    ) -> Self {
        Connection {
            stream,
            rbuf: BytesMut::with_capacity(8 * 1024),
            wbuf: BytesMut::with_capacity(8 * 1024),
            protocol,
            max_incoming,
            last_write: Instant::now(),
            log,
        }
    }

    /// When bytes were last written (keep alive counts from there).
    pub fn last_write(&self) -> Instant {
        self.last_write
    }

    /// Reads the next whole packet. `Err(ConnectionLost)` when the broker
    /// closes the stream.
    pub async fn read_packet(&mut self) -> Result<Packet, ClientError> {
        loop {
            match midge_proto::check(&self.rbuf, self.max_incoming) {
                Ok(_) => {
                    let packet =
                        midge_proto::decode(&mut self.rbuf, self.protocol, self.max_incoming)?;
                    if let Some(log) = &self.log {
                        log.packet("received", &packet);
                    }
                    return Ok(packet);
                }
                Err(ProtoError::Incomplete(_)) => {
                    let n = self
                        .stream
                        .read_buf(&mut self.rbuf)
                        .await
                        .map_err(|e| ClientError::ConnectionLost(e.to_string()))?;
                    if n == 0 {
                        return Err(ClientError::ConnectionLost(
                            "the broker closed the connection".into(),
                        ));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Encodes `packet` into the write buffer; [`Connection::flush`] sends it.
    pub fn queue(&mut self, packet: &Packet) -> Result<(), ClientError> {
        if let Some(log) = &self.log {
            log.packet("sending", packet);
        }
        midge_proto::encode(packet, self.protocol, &mut self.wbuf)?;
        Ok(())
    }

    /// Bytes waiting in the write buffer.
    pub fn queued(&self) -> usize {
        self.wbuf.len()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let lost = |e: std::io::Error| ClientError::ConnectionLost(e.to_string());
        self.stream.write_all(&self.wbuf).await.map_err(lost)?;
        self.stream.flush().await.map_err(lost)?;
        self.wbuf.clear();
        self.last_write = Instant::now();
        Ok(())
    }

    /// Queues and flushes one packet.
    pub async fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        self.queue(packet)?;
        self.flush().await
    }

    /// Closes the write side (TLS close_notify, WebSocket close frame).
    pub async fn shutdown(&mut self) {
        // The connection is being dropped either way: a failed close changes nothing.
        let _ = self.stream.shutdown().await;
    }
}
