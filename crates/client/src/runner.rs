//! What `midge pub` and `midge sub` share around a session: the process's
//! standard streams (replaceable, for tests), connecting within `-W`, and
//! the small timer and Ctrl-C helpers of their event loops.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::time::Instant;

use crate::config::ConnectConfig;
use crate::conn::SharedWriter;
use crate::error::ClientError;
use crate::session::Session;

/// The standard streams a command uses. [`Io::process`] gives the real ones;
/// tests pass buffers and pipes.
pub struct Io {
    pub stdin: Box<dyn Read + Send>,
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    /// Stop cleanly on Ctrl-C (only for a real process: a test must not
    /// take over the test harness's signal handling).
    pub handle_ctrl_c: bool,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("handle_ctrl_c", &self.handle_ctrl_c)
            .finish_non_exhaustive()
    }
}

impl Io {
    /// The process's stdin, stdout and stderr.
    pub fn process() -> Io {
        Io {
            stdin: Box::new(std::io::stdin()),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            handle_ctrl_c: true,
        }
    }
}

/// Connects, counting the connection against `-W` as well: a broker that
/// never answers ends in "Timed out" (27) when `-W` is shorter than the
/// connect timeout.
pub async fn connect(cfg: &ConnectConfig, stderr: &SharedWriter) -> Result<Session, ClientError> {
    let attempt = Session::connect(cfg, stderr, cfg.connect_timeout);
    match cfg.timeout {
        Some(w) if w < cfg.connect_timeout => tokio::time::timeout(w, attempt)
            .await
            .unwrap_or(Err(ClientError::Timeout)),
        _ => attempt.await,
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves on Ctrl-C when `enabled`, else never.
pub async fn interrupted(enabled: bool) {
    if enabled && tokio::signal::ctrl_c().await.is_ok() {
        return;
    }
    std::future::pending::<()>().await
}

/// Ctrl-C presses, each seen once, for a loop that must notice a second one
/// (a `midge sub` already stopping, or reconnecting, still ends on Ctrl-C).
/// Unlike [`interrupted`], [`CtrlC::pressed`] can be awaited again after it
/// fired, and is cancel-safe: a press that arrives while the loop is busy
/// elsewhere is kept for the next call.
pub struct CtrlC {
    enabled: bool,
    listening: Option<Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>>,
}

impl std::fmt::Debug for CtrlC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlC")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl CtrlC {
    /// Listens only when `enabled` (a real process, not a test harness).
    pub fn new(enabled: bool) -> Self {
        CtrlC {
            enabled,
            listening: None,
        }
    }

    /// Resolves at the next Ctrl-C; never when disabled or when the signal
    /// handler cannot be installed.
    pub async fn pressed(&mut self) {
        if !self.enabled {
            return std::future::pending().await;
        }
        let listening = self
            .listening
            .get_or_insert_with(|| Box::pin(tokio::signal::ctrl_c()));
        let result = listening.as_mut().await;
        self.listening = None;
        if result.is_err() {
            self.enabled = false;
            std::future::pending::<()>().await
        }
    }
}
