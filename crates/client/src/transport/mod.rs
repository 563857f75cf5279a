//! Opens the byte stream to the broker: TCP, TLS, WebSocket, WebSocket over
//! TLS, or a Unix socket. Everything above sees one boxed
//! `AsyncRead + AsyncWrite`, so MQTT runs the same over each.

mod tls;
mod ws;

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use crate::config::{ConnectConfig, Target};
use crate::error::ClientError;

/// A duplex byte stream to the broker.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// Connects to the broker of `cfg` and performs the TLS and WebSocket
/// handshakes it asks for.
pub async fn connect(cfg: &ConnectConfig) -> Result<BoxStream, ClientError> {
    // Build the TLS settings first: a bad certificate file is reported
    // before any network traffic.
    let tls = cfg.tls.as_ref().map(tls::client_config).transpose()?;
    match &cfg.target {
        Target::Unix(path) => unix(path).await,
        Target::Tcp { host, port, bind } => {
            let tcp = tcp(host, *port, *bind).await?;
            match tls {
                None => Ok(Box::new(tcp)),
                Some(config) => Ok(Box::new(tls::handshake(config, host, tcp).await?)),
            }
        }
        Target::WebSocket {
            host,
            port,
            path,
            bind,
        } => {
            let tcp = tcp(host, *port, *bind).await?;
            match tls {
                None => Ok(Box::new(ws::handshake(tcp, "ws", host, *port, path).await?)),
                Some(config) => {
                    let stream = tls::handshake(config, host, tcp).await?;
                    Ok(Box::new(
                        ws::handshake(stream, "wss", host, *port, path).await?,
                    ))
                }
            }
        }
    }
}

#[cfg(unix)]
async fn unix(path: &std::path::Path) -> Result<BoxStream, ClientError> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| ClientError::Connect(format!("{} ({})", io_text(&e), path.display())))?;
    Ok(Box::new(stream))
}

#[cfg(not(unix))]
async fn unix(_path: &std::path::Path) -> Result<BoxStream, ClientError> {
    Err(ClientError::Connect(
        "Unix sockets are not available on this platform".into(),
    ))
}

/// Resolves `host` and tries each address in turn, as libmosquitto does.
async fn tcp(
    host: &str,
    port: u16,
    bind: Option<std::net::IpAddr>,
) -> Result<TcpStream, ClientError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ClientError::Connect(format!("{} ({host})", io_text(&e))))?
        .collect();
    let mut last = None;
    for addr in addrs {
        if bind.is_some_and(|b| b.is_ipv4() != addr.is_ipv4()) {
            continue;
        }
        match tcp_one(addr, bind).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => ClientError::Connect(format!("{} ({addr})", io_text(&e))),
        None => ClientError::Connect(format!("no usable address for {host}")),
    })
}

async fn tcp_one(addr: SocketAddr, bind: Option<std::net::IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    // A command-line client sends few, small packets and waits on each:
    // Nagle's algorithm would only add latency.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An I/O error as mosquitto words it ("Connection refused"), without the
/// "(os error N)" suffix.
fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
