//! Internal sessions kept per identity for one-shot requests (HTTP publish,
//! checking Basic credentials of admin requests), so that a burst of
//! requests does not pay a CONNECT and a password hash each. An idle
//! session is closed after a while; the pool is bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_broker::Broker;
use parking_lot::Mutex;

use super::auth::Identity;
use super::error::ApiError;
use super::session::{InternalClient, Login, SessionError};

/// Sessions idle this long are closed.
const IDLE: Duration = Duration::from_secs(60);
/// Most sessions kept; the least recently used goes first.
const MAX_SESSIONS: usize = 256;

struct Entry {
    client: Arc<InternalClient>,
    used: Instant,
}

/// The pool.
pub struct Pool {
    broker: Broker,
    // Held only to look up, insert or remove: never across an await.
    sessions: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("sessions", &self.sessions.lock().len())
            .finish()
    }
}

impl Pool {
    pub fn new(broker: Broker) -> Pool {
        Pool {
            broker,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// A connected session for `id`, opened (and so authenticated by the
    /// broker's hooks) if there is none.
    pub async fn get(
        &self,
        id: &Identity,
        remote: Option<SocketAddr>,
        listener: &Arc<str>,
    ) -> Result<Arc<InternalClient>, ApiError> {
        let key = id.cache_key();
        {
            let mut map = self.sessions.lock();
            if let Some(e) = map.get_mut(&key) {
                if !e.client.is_closed() {
                    e.used = Instant::now();
                    return Ok(e.client.clone());
                }
                map.remove(&key);
            }
        }
        let login = Login {
            client_id: super::client_id("pub"),
            username: id.username.clone(),
            password: id.password.clone(),
            remote_addr: remote,
            listener: listener.clone(),
            inbox: 1,
        };
        let (client, _inbox) = InternalClient::connect(&self.broker, login)
            .await
            .map_err(session_error)?;
        let client = Arc::new(client);
        let mut map = self.sessions.lock();
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            key,
            Entry {
                client: client.clone(),
                used: Instant::now(),
            },
        );
        Ok(client)
    }

    /// Forgets the session of `id` (after it failed).
    pub fn forget(&self, id: &Identity) {
        self.sessions.lock().remove(&id.cache_key());
    }

    /// Closes sessions idle for too long; returns how many are left.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let mut map = self.sessions.lock();
        map.retain(|_, e| !e.client.is_closed() && now.duration_since(e.used) < IDLE);
        map.len()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The API error for a session that could not be opened or used.
pub fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Refused(r) => ApiError::from_connack(r),
        SessionError::Closed => ApiError::Unavailable("the broker closed the session".into()),
        SessionError::Timeout => ApiError::Unavailable("the broker did not answer in time".into()),
        SessionError::Encode(e) => ApiError::BadRequest(format!("cannot encode: {e}")),
    }
}
