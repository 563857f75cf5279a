//! What `midge pub` and `midge sub` share around a session: the process's
//! standard streams (replaceable, for tests), connecting within `-W`,
//! reconnecting after a lost connection, and the small timer and Ctrl-C
//! helpers of their event loops.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::config::ConnectConfig;
use crate::conn::{DebugLog, SharedWriter};
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

/// Ctrl-C presses, each seen once, for a loop that must notice a second one
/// (a `midge sub` already stopping, a `midge pub` waiting for its last
/// acknowledgements, or either reconnecting, still ends on Ctrl-C).
/// [`CtrlC::pressed`] can be awaited again after it fired, and is cancel-safe: a press that arrives while the loop is busy
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

/// How one connection of `midge pub` or `midge sub` ended, when the run may
/// go on.
#[derive(Debug)]
pub enum End {
    /// Everything asked for is done (or a second Ctrl-C).
    Finished,
    /// `-W` expired.
    TimedOut,
    /// The connection broke (EOF, reset, keep alive): reconnect.
    Lost(String),
}

/// A lost connection ends the connection, not the run ([`End::Lost`]);
/// any other error ends the run.
pub fn lost(e: ClientError) -> Result<End, ClientError> {
    match e {
        ClientError::ConnectionLost(why) => Ok(End::Lost(why)),
        e => Err(e),
    }
}

/// Pause before each reconnection attempt. libmosquitto's default, which
/// mosquitto_sub and mosquitto_pub keep: 1 s, every time, without backing off.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Connects again with the same options, after [`RECONNECT_DELAY`] and again
/// after each failure, for as long as it takes: only `-W` (exit 27), Ctrl-C
/// (`None`) or a broker refusing the CONNECT end it, as they end the retries
/// of mosquitto_sub and mosquitto_pub.
pub async fn reconnect(
    cfg: &ConnectConfig,
    stderr: &SharedWriter,
    deadline: Option<Instant>,
    ctrl_c: &mut CtrlC,
) -> Result<Option<Session>, ClientError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            _ = sleep_until(deadline) => return Err(ClientError::Timeout),
            _ = ctrl_c.pressed() => return Ok(None),
        }
        let attempt = Session::connect(cfg, stderr, cfg.connect_timeout);
        let failed = tokio::select! {
            result = attempt => match result {
                Ok(session) => return Ok(Some(session)),
                Err(e) if gives_up(&e) => return Err(e),
                Err(e) => e,
            },
            _ = sleep_until(deadline) => return Err(ClientError::Timeout),
            _ = ctrl_c.pressed() => return Ok(None),
        };
        let why = failed.to_string();
        debug(
            cfg,
            stderr,
            &cfg.client_id,
            &format!(
                "reconnect failed ({}), retrying in {} s",
                why.strip_prefix("Error: ").unwrap_or(&why),
                RECONNECT_DELAY.as_secs()
            ),
        );
    }
}

/// The `-d` line telling that the connection was lost and a reconnection
/// follows.
pub fn debug_lost(cfg: &ConnectConfig, stderr: &SharedWriter, client_id: &str, why: &str) {
    debug(
        cfg,
        stderr,
        client_id,
        &format!(
            "connection lost ({why}), reconnecting in {} s",
            RECONNECT_DELAY.as_secs()
        ),
    );
}

/// Failures of a reconnection that end the run instead of another attempt.
/// A refused CONNECT exits with its code, as mosquitto_sub's and
/// mosquitto_pub's on_connect make it; a broker breaking the protocol will
/// not get better by retrying. Everything else (refused or reset
/// connections, DNS, TLS, a missing CONNACK) is retried, as libmosquitto
/// retries whatever its reconnect returns.
pub fn gives_up(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::RefusedV3(_)
            | ClientError::RefusedV5(_)
            | ClientError::Protocol(_)
            | ClientError::Usage(_)
    )
}

/// A `-d` line about the connection, in libmosquitto's "Client ID ..." style
/// (libmosquitto itself logs nothing when it reconnects; mosquitto_sub and
/// mosquitto_pub are silent about it without `-d`, and so is midge).
pub fn debug(cfg: &ConnectConfig, stderr: &SharedWriter, client_id: &str, what: &str) {
    if cfg.debug {
        let log = DebugLog::new(stderr.clone(), client_id);
        log.line(&format!("Client {} {what}", log.client_id));
    }
}
