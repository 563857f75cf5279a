//! The resolved settings of one client run: where to connect, how, and as
//! whom. Built once from the command line by [`crate::args`]; read by the
//! transport and the session.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use midge_proto::{Protocol, Will};

use crate::props::PropertySets;

/// Where the broker is and which byte stream reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// MQTT over TCP (or TLS over TCP when [`ConnectConfig::tls`] is set).
    Tcp {
        host: String,
        port: u16,
        bind: Option<IpAddr>,
    },
    /// MQTT over WebSocket (`ws://`, or `wss://` with TLS), subprotocol `mqtt`.
    WebSocket {
        host: String,
        port: u16,
        path: String,
        bind: Option<IpAddr>,
    },
    /// MQTT over a Unix domain socket.
    Unix(PathBuf),
}

/// TLS version choice of `--tls-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// TLS settings: present when any TLS option or a TLS URL scheme was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Skip only the host name check, as mosquitto's `--insecure`.
    pub insecure: bool,
    pub use_os_certs: bool,
    pub version: Option<TlsVersion>,
    pub alpn: Vec<String>,
}

/// Everything needed to open a connection and send CONNECT.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub target: Target,
    pub tls: Option<TlsOptions>,
    pub protocol: Protocol,
    /// Empty lets the broker assign one (3.1.1 and 5.0 with a clean session).
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub will: Option<Will>,
    /// Properties for each packet kind (5.0 only; empty otherwise).
    pub props: PropertySets,
    pub debug: bool,
    pub quiet: bool,
    /// `-W`: give up (exit 27) this long after connecting.
    pub timeout: Option<Duration>,
    /// Limit for connecting and for the CONNACK to arrive.
    pub connect_timeout: Duration,
}
