//! Store settings with their defaults: the fsync policy and group commit,
//! the per-session and total caps, and open-time verification. Plain data:
//! the server crate fills it from its TOML file and flags.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// When a commit reaches the disk, and so when a PUBACK/PUBREC may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// One transaction and one fsync per submitted batch: no grouping.
    Always,
    /// Group commit: every batch queued while the previous commit ran goes
    /// into the next transaction, one fsync for all. Completions resolve
    /// after the fsync. [default]
    #[default]
    Batch,
    /// Completions resolve after the in-memory commit; a durable checkpoint
    /// runs every `checkpoint_interval` and at close. A crash loses at most
    /// the writes since the last checkpoint.
    Never,
}

impl FsyncPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Batch => "batch",
            FsyncPolicy::Never => "never",
        }
    }

    /// Whether completions wait for the fsync.
    pub fn is_durable(self) -> bool {
        self != FsyncPolicy::Never
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An fsync policy name that is not `always`, `batch` or `never`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fsync policy '{0}' (expected always, batch or never)")]
pub struct UnknownPolicy(pub String);

impl FromStr for FsyncPolicy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "batch" => Ok(FsyncPolicy::Batch),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(UnknownPolicy(other.to_owned())),
        }
    }
}

/// Everything a store can be told. See each field for its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// [batch]
    pub fsync: FsyncPolicy,
    /// Group commit linger (policy `batch` only): when the previous commit
    /// carried more than one batch (there is concurrency), the writer waits
    /// up to this long after the first pending batch for more to join.
    /// A lone sequential client never waits. Zero (the default) commits as
    /// soon as the previous commit is done: what queued meanwhile goes
    /// together, and a batch waits at most one commit plus its own. The
    /// bench measured lingering as a loss (the in-flight windows of the
    /// publishers, not the commit rate, bound the throughput). [0]
    pub batch_delay: Duration,
    /// Most operations in one transaction. [65,536]
    pub max_batch_ops: usize,
    /// Queued messages kept per session; more are dropped, counted and
    /// logged. [100,000]
    pub max_session_messages: u32,
    /// Bytes of queued messages kept per session. [100 MiB]
    pub max_session_bytes: u64,
    /// Total bytes of records (messages and their references); a batch
    /// that would pass it is refused with `CommitError::Full`. 0 = no cap.
    /// [4 GiB]
    pub max_store_bytes: u64,
    /// Verify every page checksum when opening, so that a corrupt file is
    /// refused with a clear error instead of being trusted. Reads the whole
    /// file. [true]
    pub verify_on_open: bool,
    /// Page cache of the embedded database. [64 MiB]
    pub cache_bytes: usize,
    /// Policy `never`: interval of the durable checkpoint. [1 s]
    pub checkpoint_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            fsync: FsyncPolicy::Batch,
            batch_delay: Duration::ZERO,
            max_batch_ops: 65_536,
            max_session_messages: 100_000,
            max_session_bytes: 100 * 1024 * 1024,
            max_store_bytes: 4 * 1024 * 1024 * 1024,
            verify_on_open: true,
            cache_bytes: 64 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for p in [FsyncPolicy::Always, FsyncPolicy::Batch, FsyncPolicy::Never] {
            assert_eq!(p.as_str().parse::<FsyncPolicy>(), Ok(p));
        }
        assert_eq!(
            "sometimes".parse::<FsyncPolicy>(),
            Err(UnknownPolicy("sometimes".into()))
        );
        assert_eq!(FsyncPolicy::default(), FsyncPolicy::Batch);
    }
}
