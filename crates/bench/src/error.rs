//! The bench tool's one error type: everything that stops a run early.

use std::io;

use crate::target::TargetError;

/// Why a benchmark run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot resolve {host}:{port}: {source}")]
    Resolve {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{what}: timed out after {secs:.1} s")]
    Timeout { what: String, secs: f64 },
    #[error("MQTT codec error on {who}: {source}")]
    Codec {
        who: String,
        source: midge_proto::Error,
    },
    #[error("{who}: broker closed the connection")]
    Closed { who: String },
    #[error("{who}: {what}")]
    Protocol { who: String, what: String },
    #[error("invalid options: {0}")]
    Options(String),
    #[error("cannot read the broker's memory: {0}")]
    Memory(String),
    #[error("cannot read the broker's CPU time: {0}")]
    Cpu(String),
    #[error("the run's task failed: {0}")]
    Task(String),
}

impl BenchError {
    /// Wraps an I/O error with what was being done, so that the message
    /// names the connection or step that failed.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}
