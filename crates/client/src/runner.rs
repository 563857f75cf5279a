//! What `midge pub` and `midge sub` share around a session: the process's
//! standard streams (replaceable, for tests), connecting within `-W`, and
//! the small timer helpers of their event loops.

use std::io::{Read, Write};
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
