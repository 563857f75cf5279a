//! Runs [`Hooks::authenticate`](crate::Hooks::authenticate) off the async
//! worker threads. A password check can take tens of milliseconds (argon2id)
//! and memory (argon2's working area): on the blocking pool, at most
//! `max_concurrent_auth` at once, a burst of logins neither stalls the
//! runtime workers nor starts hundreds of hashes together.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Protocol, ReasonCode};
use tokio::sync::Semaphore;

use crate::broker::Broker;
use crate::hooks::{AuthDecision, AuthRequest, ConnectionInfo};

/// The semaphore that bounds concurrent authentications; `configured` 0
/// means one per CPU core.
pub(crate) fn permits(configured: usize) -> Arc<Semaphore> {
    let n = if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };
    Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))
}

/// What the hook is asked, owned so that it can move to another thread.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub client_id: Arc<str>,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
    pub protocol: Protocol,
}

/// Asks the hook, waiting at most the connect timeout (for a permit and
/// for the answer together). No answer in time refuses the client with
/// 0x89 Server busy (a hook still running then finishes on its thread and
/// its answer is discarded); a panicking hook with 0x88 Server unavailable.
pub(crate) async fn authenticate(
    broker: &Broker,
    creds: Credentials,
    info: &ConnectionInfo,
) -> AuthDecision {
    let inner = &broker.inner;
    let req = AuthRequest {
        client_id: &creds.client_id,
        username: creds.username.as_deref(),
        password: creds.password.as_deref(),
        info,
        protocol: creds.protocol,
    };
    if !inner.hooks.authenticate_may_block(&req) {
        return inner.hooks.authenticate(&req);
    }
    let hooks = inner.hooks.clone();
    let permits = inner.auth_permits.clone();
    let info = info.clone();
    let client_id = creds.client_id.clone();
    let job = async move {
        // The semaphore is never closed; an error would only mean that.
        let permit = permits.acquire_owned().await.ok()?;
        let task = tokio::task::spawn_blocking(move || {
            // Held until the hook returns, even if the waiter gave up: the
            // thread is busy until then.
            let _permit = permit;
            hooks.authenticate(&AuthRequest {
                client_id: &creds.client_id,
                username: creds.username.as_deref(),
                password: creds.password.as_deref(),
                info: &info,
                protocol: creds.protocol,
            })
        });
        task.await.ok()
    };
    match tokio::time::timeout(inner.config.connect_timeout, job).await {
        Ok(Some(decision)) => decision,
        Ok(None) => {
            tracing::error!(client_id = &*client_id, "authentication hook panicked");
            AuthDecision::Deny(ReasonCode::ServerUnavailable)
        }
        Err(_) => {
            tracing::warn!(
                client_id = &*client_id,
                "authentication did not answer within the connect timeout"
            );
            AuthDecision::Deny(ReasonCode::ServerBusy)
        }
    }
}
