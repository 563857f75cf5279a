//! Plain TCP listeners: accept, tune the socket, hand it to the broker.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use midge_broker::{Broker, ConnectionInfo, Transport};
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::gate::{Gate, Permit, Refusal};
use crate::tls::TlsAcceptorHandle;

/// One listener's accept loop: its socket, name, admission gate and the
/// shutdown signal. Shared by the TCP, TLS and HTTP listeners.
#[derive(Debug)]
pub struct Acceptor {
    pub listener: TcpListener,
    pub name: Arc<str>,
    pub gate: Arc<Gate>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl Acceptor {
    /// The next admitted connection, tuned for MQTT; `None` on shutdown.
    pub async fn next(&self) -> Option<(TcpStream, SocketAddr, Permit)> {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                r = self.listener.accept() => r,
            };
            match accepted {
                Ok((stream, remote)) => {
                    let Ok(permit) = admit(&self.gate, &self.name, remote) else {
                        continue;
                    };
                    // Small MQTT packets must leave at once; the connection
                    // batches writes itself, so Nagle only adds latency.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
                    }
                    return Some((stream, remote, permit));
                }
                Err(e) => {
                    // Running out of file descriptors (EMFILE) or a reset
                    // before accept are transient: log, back off, go on.
                    tracing::warn!(listener = %self.name, error = %e, "accept failed");
                    if is_resource_exhaustion(&e) {
                        tokio::select! {
                            _ = self.shutdown.cancelled() => return None,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                }
            }
        }
    }
}

/// Serves MQTT over TCP until shutdown, each connection on its own task.
pub async fn serve_tcp(acceptor: Acceptor, broker: Broker) {
    while let Some((stream, remote, permit)) = acceptor.next().await {
        let info = ConnectionInfo {
            remote_addr: Some(remote),
            listener: acceptor.name.clone(),
            transport: Transport::Tcp,
            tls_identity: None,
        };
        // Spawned as it is, the permit inside: an `async` block around it
        // would keep a second copy of the stream and info for the
        // connection's whole life.
        acceptor
            .tracker
            .spawn(broker.handle_connection_with(stream, info, permit));
    }
}

/// Serves MQTT over TLS: the handshake runs on the connection's own task so
/// a slow client cannot stall the accept loop. With `identity_as_username`
/// the client certificate's Common Name is passed on as the identity.
pub async fn serve_tls(
    acceptor: Acceptor,
    broker: Broker,
    tls: TlsAcceptorHandle,
    identity_as_username: bool,
) {
    while let Some((stream, remote, permit)) = acceptor.next().await {
        let (tls, broker, name) = (tls.clone(), broker.clone(), acceptor.name.clone());
        acceptor.tracker.spawn(async move {
            let _permit = permit;
            // Bound the handshake like CONNECT: an idle socket must not
            // hold a task forever.
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(listener = %name, %remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(listener = %name, %remote, "TLS handshake timed out");
                    return;
                }
            };
            let tls_identity = if identity_as_username {
                match certificate_common_name(&stream) {
                    Some(cn) => Some(Arc::from(cn)),
                    None => {
                        // require_certificate guarantees a verified chain;
                        // one without a CN cannot name a user.
                        tracing::info!(listener = %name, %remote, "client certificate has no Common Name; closing");
                        return;
                    }
                }
            } else {
                None
            };
            let info = ConnectionInfo {
                remote_addr: Some(remote),
                listener: name,
                transport: Transport::Tls,
                tls_identity,
            };
            broker.handle_connection(stream, info).await
        });
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Common Name of the client's (verified) leaf certificate.
fn certificate_common_name(
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Option<String> {
    let leaf = stream.get_ref().1.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

/// Asks the listener's gate; a refused socket is dropped (closed) by the
/// caller without reading from it.
fn admit(gate: &Arc<Gate>, name: &str, remote: std::net::SocketAddr) -> Result<Permit, Refusal> {
    gate.admit(remote.ip(), std::time::Instant::now())
        .inspect_err(|why| {
            // Debug level: a flood must not turn into a flood of log lines; the
            // count is kept by the gate.
            tracing::debug!(listener = name, %remote, ?why, "connection refused at accept");
        })
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23), ENOBUFS (105), ENOMEM (12).
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle TCP connection is mostly its tokio task: a 32-byte header,
    /// the future plus 32 bytes, a 48-byte trailer, rounded up to the
    /// task's 128-byte alignment. A future of at most 784 bytes keeps the
    /// task at 896 bytes (at 785 it is 1,024: 128 more per connection).
    #[tokio::test]
    async fn tcp_connection_task_stays_in_its_size_class() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, remote) = listener.accept().await.expect("accept");
        let gate = Gate::new(10, 0, 0);
        let permit = admit(&gate, "t", remote).expect("admitted");
        let broker = Broker::new(midge_broker::BrokerConfig::default());
        let info = ConnectionInfo {
            remote_addr: Some(remote),
            listener: Arc::from("t"),
            transport: Transport::Tcp,
            tls_identity: None,
        };
        let fut = broker.handle_connection_with(stream, info, permit);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 784, "TCP connection future is {size} bytes");
    }
}
