//! MQTT over WebSocket: adapts a WebSocket (a stream of binary messages) to
//! the byte stream (`AsyncRead + AsyncWrite`) the broker drives, so TCP, TLS
//! and WebSocket connections share one code path.
//!
//! MQTT packets may be split across frames or several may share a frame
//! (MQTT 5.0 §6.0): the adapter only moves bytes, the broker's codec finds
//! packet boundaries.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The WebSocket subprotocols that carry MQTT: `mqtt` (3.1.1 and 5.0) and
/// `mqttv3.1` (MQTT 3.1, as Mosquitto and MQTT.js name it).
pub const MQTT_SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// True when an upgrade request's `Sec-WebSocket-Protocol` header offers an
/// MQTT subprotocol.
pub fn offers_mqtt(protocol_header: &str) -> bool {
    protocol_header
        .split(',')
        .map(str::trim)
        .any(|p| MQTT_SUBPROTOCOLS.iter().any(|m| m.eq_ignore_ascii_case(p)))
}

/// A WebSocket seen as a byte stream.
pub struct WsIo {
    socket: WebSocket,
    /// The unread rest of the last binary message.
    pending: Bytes,
    eof: bool,
}

impl std::fmt::Debug for WsIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsIo")
            .field("pending", &self.pending.len())
            .field("eof", &self.eof)
            .finish()
    }
}

impl WsIo {
    pub fn new(socket: WebSocket) -> Self {
        WsIo {
            socket,
            pending: Bytes::new(),
            eof: false,
        }
    }
}

fn ws_error(e: axum::Error) -> io::Error {
    io::Error::other(e)
}

impl AsyncRead for WsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                // Control frames are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    // MQTT over WebSocket must use binary frames [MQTT-6.0.0-1].
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame on an MQTT WebSocket",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => self.eof = true,
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.socket).poll_ready(cx)).map_err(ws_error)?;
        // One binary frame per write: the broker already batches packets.
        Pin::new(&mut self.socket)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(ws_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_mqtt_subprotocols() {
        assert!(offers_mqtt("mqtt"));
        assert!(offers_mqtt("mqttv3.1"));
        assert!(offers_mqtt("chat, MQTT"));
        assert!(!offers_mqtt("chat"));
        assert!(!offers_mqtt(""));
    }
}
