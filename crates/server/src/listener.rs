//! Plain TCP listeners: accept, tune the socket, hand it to the broker.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use midge_broker::{Broker, ConnectionInfo, Transport};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::gate::{Gate, Permit, Refusal};
use crate::tls::TlsAcceptorHandle;

/// Accepts connections on `listener` until `shutdown` is cancelled, running
/// each one on its own task tracked by `tracker`.
pub async fn serve_tcp(
    listener: TcpListener,
    name: Arc<str>,
    gate: Arc<Gate>,
    broker: Broker,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Ok(permit) = admit(&gate, &name, remote) else {
                    continue;
                };
                // Small MQTT packets must leave at once; the connection
                // batches writes itself, so Nagle only adds latency.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
                }
                let info = ConnectionInfo {
                    remote_addr: Some(remote),
                    listener: name.clone(),
                    transport: Transport::Tcp,
                    tls_identity: None,
                };
                let broker = broker.clone();
                tracker.spawn(async move {
                    broker.handle_connection(stream, info).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Running out of file descriptors (EMFILE) or a connection
                // reset before accept are transient: log, back off, go on.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                if is_resource_exhaustion(&e) {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }
}

/// Accepts TLS connections: the handshake runs on the connection's own task
/// so a slow client cannot stall the accept loop.
pub async fn serve_tls(
    listener: TcpListener,
    tls: TlsAcceptorHandle,
    identity_as_username: bool,
    name: Arc<str>,
    gate: Arc<Gate>,
    broker: Broker,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, remote) = match accepted {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(listener = %name, error = %e, "accept failed");
                if is_resource_exhaustion(&e) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let Ok(permit) = admit(&gate, &name, remote) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tls, broker, name) = (tls.clone(), broker.clone(), name.clone());
        tracker.spawn(async move {
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
pub(crate) fn admit(
    gate: &Arc<Gate>,
    name: &str,
    remote: std::net::SocketAddr,
) -> Result<Permit, Refusal> {
    gate.admit(remote.ip(), std::time::Instant::now())
        .inspect_err(|why| {
            // Debug level: a flood must not turn into a flood of log lines; the
            // count is kept by the gate.
            tracing::debug!(listener = name, %remote, ?why, "connection refused at accept");
        })
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23), ENOBUFS (105), ENOMEM (12).
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}
