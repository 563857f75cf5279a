//! Extension points the server plugs in: authentication and authorization.
//! Every method has a default that allows everything, so `Broker::new` runs
//! an open broker.

use std::net::SocketAddr;
use std::sync::Arc;

use midge_proto::{Protocol, ReasonCode};

/// The transport a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Tls,
    WebSocket,
    WebSocketTls,
    /// Publishes made from inside midge (HTTP API, rules).
    Internal,
}

/// Where a connection comes from, given by the listener that accepted it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote_addr: Option<SocketAddr>,
    /// The listener's name, for logs, events and per-listener rules.
    pub listener: Arc<str>,
    pub transport: Transport,
    /// The identity of the client certificate (its subject CN) on a TLS
    /// listener that verified one; `None` elsewhere. Authentication hooks
    /// may use it instead of a username.
    pub tls_identity: Option<Arc<str>>,
}

impl ConnectionInfo {
    /// Without a TLS identity.
    pub fn new(remote_addr: Option<SocketAddr>, listener: &str, transport: Transport) -> Self {
        ConnectionInfo {
            remote_addr,
            listener: Arc::from(listener),
            transport,
            tls_identity: None,
        }
    }
}

/// What a client presented in CONNECT, for [`Hooks::authenticate`].
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The client id (already assigned by the broker if the client sent none).
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub info: &'a ConnectionInfo,
    pub protocol: Protocol,
}

/// The answer of [`Hooks::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Accept; `username` replaces the presented one for authorization (for
    /// example the identity taken from a client certificate).
    Allow { username: Option<String> },
    /// Refuse with this CONNACK reason (mapped to a 3.1.1 return code for
    /// older clients), e.g. `BadUserNameOrPassword` or `NotAuthorized`.
    Deny(ReasonCode),
}

/// The identity a connected client is authorized as.
#[derive(Debug, Clone, Copy)]
pub struct ClientRef<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
}

/// Authentication and authorization decisions.
///
/// `authenticate` runs on tokio's blocking thread pool (at most
/// `BrokerConfig::max_concurrent_auth` at once), so it may be slow (a
/// password hash) or block, unless `authenticate_may_block` says it answers
/// at once for that request. The `authorize_*` methods must be quick and must
/// not block: they run on the connection's task, and `authorize_deliver`
/// runs once per matching subscriber of every message.
pub trait Hooks: Send + Sync + 'static {
    fn authenticate(&self, req: &AuthRequest<'_>) -> AuthDecision {
        AuthDecision::Allow {
            username: req.username.map(str::to_owned),
        }
    }

    /// Whether [`Hooks::authenticate`] may take long or block for `req` (a
    /// password hash to verify): it then runs on the blocking pool. Return
    /// false when it answers at once: it is then called on the connection's
    /// task, which saves two thread hand-offs per CONNECT (a third of the
    /// cost of a connection). Default: true.
    fn authenticate_may_block(&self, req: &AuthRequest<'_>) -> bool {
        let _ = req;
        true
    }

    fn authorize_publish(&self, client: &ClientRef<'_>, topic: &str) -> bool {
        let _ = (client, topic);
        true
    }

    fn authorize_subscribe(&self, client: &ClientRef<'_>, filter: &str) -> bool {
        let _ = (client, filter);
        true
    }

    /// Called for each subscriber a message is about to be queued for, so
    /// that a `#` subscription does not leak topics the client may not read.
    fn authorize_deliver(&self, client: &ClientRef<'_>, topic: &str) -> bool {
        let _ = (client, topic);
        true
    }
}

/// The default hooks: everything allowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl Hooks for AllowAll {
    fn authenticate_may_block(&self, _: &AuthRequest<'_>) -> bool {
        false
    }
}
