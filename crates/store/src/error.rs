//! Errors: [`StoreError`] for opening, loading, checking and repairing a
//! store (with the context a user needs to act), and [`CommitError`], the
//! small cloneable outcome one failed commit hands to every waiter of it.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a batch was not made durable. Cloneable: one failed commit fails
/// every batch it carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The store reached its size cap (`max_store_bytes`): the batch was
    /// refused whole. The broker answers QoS 1/2 publishes with 0x97 Quota
    /// exceeded.
    #[error("store full: {used} of {cap} bytes used")]
    Full { used: u64, cap: u64 },
    /// The write or its fsync failed (disk full, I/O error). The broker
    /// answers QoS 1/2 publishes with 0x80 Unspecified error.
    #[error("store write failed: {0}")]
    Failed(Arc<str>),
    /// The store is closed (shutting down).
    #[error("store closed")]
    Closed,
}

/// Errors of opening, loading, checking and repairing a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "data directory {dir} is in use by another midge process{}: stop it, or give this one another data directory (lock file {lock})",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        dir: PathBuf,
        lock: PathBuf,
        pid: Option<u32>,
    },
    #[error(
        "data directory {dir} has store format {found}, this midge reads format {supported}: use the midge version that wrote it, or move the directory away to start empty"
    )]
    VersionMismatch {
        dir: PathBuf,
        found: String,
        supported: u32,
    },
    #[error("{path} does not look like a midge data directory: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    #[error(
        "store file {path} is corrupt ({reason}); run `midge store check --data-dir {dir}` for details and `midge store repair --data-dir {dir}` to keep what is readable"
    )]
    Corrupt {
        path: PathBuf,
        dir: PathBuf,
        reason: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store database error: {0}")]
    Db(String),
    #[error("store closed")]
    Closed,
}

impl StoreError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// An error inside one transaction: the whole transaction is abandoned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TxError(pub String);

impl From<redb::StorageError> for TxError {
    fn from(e: redb::StorageError) -> Self {
        TxError(e.to_string())
    }
}

impl From<redb::TableError> for TxError {
    fn from(e: redb::TableError) -> Self {
        TxError(e.to_string())
    }
}
