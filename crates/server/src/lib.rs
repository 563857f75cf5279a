//! midge-server: the front doors. Binds the configured listeners, runs the
//! broker's background tasks and shuts everything down in order.

pub mod auth;
pub mod config;
pub mod dashboard;
pub mod gate;
pub mod http;
mod listener;
pub mod store_config;
pub mod tls;
pub mod web;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use midge_broker::{Broker, Transport};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{AuthConfig, AuthHooks};
pub use config::{Config, ConfigError, ListenerConfig, ListenerKind};
pub use listener::{serve_tcp, serve_tls, Acceptor};
pub use store_config::{StoreEngine, StoreSection};
pub use tls::{TlsAcceptorHandle, TlsError, TlsFiles};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("authentication: {0}")]
    Auth(auth::AuthError),
    #[error("listener {listener}: {source}")]
    Tls { listener: String, source: TlsError },
    /// The store could not be opened or read (in use by another process,
    /// corrupt: the message says what to do).
    #[error(transparent)]
    Store(#[from] midge_store::StoreError),
}

/// A listener that is bound and serving.
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub kind: ListenerKind,
    pub name: String,
    pub local_addr: SocketAddr,
}

impl BoundListener {
    /// `mqtt://127.0.0.1:1883`, the form printed at start.
    pub fn url(&self) -> String {
        format!("{}://{}", self.kind.scheme(), self.local_addr)
    }
}

/// A running midge: the broker and its listeners.
#[derive(Debug)]
pub struct Server {
    broker: Broker,
    listeners: Vec<BoundListener>,
    tls: Vec<TlsAcceptorHandle>,
    auth: Option<Arc<AuthHooks>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    /// Binds every listener (all or nothing) and starts serving.
    pub async fn start(config: &Config) -> Result<Server, ServerError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        // Certificate identities become usernames in the auth hooks, so a
        // listener that uses them needs the hooks even when nothing else
        // is configured.
        let identities = config.listeners.iter().any(|l| l.use_identity_as_username);
        let hooks = if config.auth.is_open() && !identities {
            None
        } else {
            let hooks = AuthHooks::new(&config.auth).map_err(ServerError::Auth)?;
            tracing::info!("{}", hooks.summary());
            Some(Arc::new(hooks))
        };
        // Opened before anything listens: a second midge on the same data
        // directory, or a damaged store, stops the start here. Opening
        // (verifying the file) and recovery read the disk: off the workers.
        let broker_hooks: Arc<dyn midge_broker::Hooks> = match &hooks {
            Some(h) => h.clone(),
            None => Arc::new(midge_broker::AllowAll),
        };
        let (section, data_dir, broker_config) = (
            config.store.clone(),
            config.data_dir.clone(),
            config.broker_config(),
        );
        let opened = tokio::task::spawn_blocking(move || {
            let store = section.open(&data_dir)?;
            Broker::with_store(broker_config, broker_hooks, store)
        })
        .await;
        let broker = match opened {
            Ok(b) => b?,
            Err(e) => {
                return Err(ServerError::Store(midge_store::StoreError::Db(format!(
                    "store start-up task failed: {e}"
                ))))
            }
        };
        let web_hooks = hooks.clone().map(|h| h as Arc<dyn midge_broker::Hooks>);
        let mut server = Server::start_inner(config, broker, web_hooks).await?;
        server.auth = hooks;
        Ok(server)
    }

    /// As [`Server::start`], with a broker built by the caller (hooks).
    pub async fn start_with_broker(config: &Config, broker: Broker) -> Result<Server, ServerError> {
        Server::start_inner(config, broker, None).await
    }

    /// `hooks`: the broker's auth hooks, for the web doors' QoS 0 checks.
    async fn start_inner(
        config: &Config,
        broker: Broker,
        hooks: Option<Arc<dyn midge_broker::Hooks>>,
    ) -> Result<Server, ServerError> {
        // Bind everything before serving anything, so a bad address fails
        // the start instead of leaving a half-open server.
        let mut bound = Vec::new();
        for l in &config.listeners {
            let socket = TcpListener::bind(l.bind)
                .await
                .map_err(|source| ServerError::Bind {
                    listener: l.display_name(),
                    addr: l.bind,
                    source,
                })?;
            let local_addr = socket.local_addr().map_err(|source| ServerError::Bind {
                listener: l.display_name(),
                addr: l.bind,
                source,
            })?;
            bound.push((l.clone(), socket, local_addr));
        }
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let background = broker.spawn_background(shutdown.child_token());
        tracker.spawn(async move {
            let _ = background.await;
        });
        // Before any listener serves, so its registry sees every client.
        let web = web::Web::start(
            broker.clone(),
            config,
            hooks,
            shutdown.child_token(),
            &tracker,
        );
        let mut listeners = Vec::new();
        let mut tls_handles = Vec::new();
        for (l, socket, local_addr) in bound {
            let name: Arc<str> = Arc::from(l.display_name());
            let tls = match l.tls_files() {
                Some(files) => {
                    let handle =
                        TlsAcceptorHandle::load(files).map_err(|source| ServerError::Tls {
                            listener: name.to_string(),
                            source,
                        })?;
                    tls_handles.push(handle.clone());
                    Some(handle)
                }
                None => None,
            };
            let acceptor = Acceptor {
                listener: socket,
                name: name.clone(),
                gate: gate::Gate::new(
                    l.max_connections,
                    config.limits.max_connection_rate,
                    config.limits.connection_rate_burst,
                ),
                shutdown: shutdown.child_token(),
                tracker: tracker.clone(),
            };
            match (l.kind, tls) {
                (ListenerKind::Mqtt, _) => {
                    tracker.spawn(serve_tcp(acceptor, broker.clone()));
                }
                (ListenerKind::Mqtts, Some(tls)) => {
                    tracker.spawn(serve_tls(
                        acceptor,
                        broker.clone(),
                        tls,
                        l.use_identity_as_username,
                    ));
                }
                (ListenerKind::Ws | ListenerKind::Wss, tls) => {
                    let transport = if tls.is_some() {
                        Transport::WebSocketTls
                    } else {
                        Transport::WebSocket
                    };
                    let state = http::HttpState {
                        broker: broker.clone(),
                        listener: name.clone(),
                        transport,
                        max_packet_size: config.limits.max_packet_size as usize,
                        web: web.clone(),
                    };
                    tracker.spawn(http::serve_http(acceptor, http::router(state), tls));
                }
                (ListenerKind::Mqtts, None) => {
                    // validate() guarantees TLS files for mqtts.
                    return Err(ServerError::Config(ConfigError::Invalid(format!(
                        "listener {name}: mqtts needs cert and key"
                    ))));
                }
            }
            tracing::info!(listener = %name, addr = %local_addr, "listening");
            listeners.push(BoundListener {
                kind: l.kind,
                name: name.to_string(),
                local_addr,
            });
        }
        Ok(Server {
            broker,
            listeners,
            tls: tls_handles,
            auth: None,
            shutdown,
            tracker,
        })
    }

    /// Re-reads TLS certificates, the password file and the ACL (SIGHUP);
    /// connections stay up, and a file that fails to load leaves the
    /// previous one in force.
    pub fn reload(&self) {
        if let Some(auth) = &self.auth {
            match auth.reload() {
                Ok(()) => tracing::info!("reloaded: {}", auth.summary()),
                Err(e) => {
                    tracing::error!(error = %e, "auth reload failed; keeping the previous files")
                }
            }
        }
        for handle in &self.tls {
            if let Err(e) = handle.reload() {
                tracing::error!(error = %e, "TLS reload failed; keeping the previous certificates");
            }
        }
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    /// Stops accepting, disconnects every client (5.0: reason 0x8B), waits
    /// for connection tasks up to `deadline`.
    pub async fn shutdown(self, deadline: Duration) {
        self.shutdown.cancel();
        self.broker.shutdown(deadline).await;
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connection tasks did not end within {deadline:?}");
        }
        // Last writes durable, data directory released (a task that did
        // not end may still hold the broker). It blocks: off the workers.
        let broker = self.broker.clone();
        if tokio::task::spawn_blocking(move || broker.close_store())
            .await
            .is_err()
        {
            tracing::error!("closing the store failed");
        }
    }
}
