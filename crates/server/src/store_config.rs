//! `[store]`: where and how midge keeps its durable state (sessions,
//! subscriptions, retained messages, queued and in-flight messages, wills;
//! see `docs/storage.md`), with every default written down. `engine =
//! "disk"` keeps it in `data_dir`; `"memory"` keeps nothing across a
//! restart.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use midge_store::{DiskStore, FsyncPolicy, MemoryStore, Store, StoreConfig, StoreError};
use serde::{Deserialize, Serialize};

/// Which store backs the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    /// The embedded database in `data_dir` (survives restarts and crashes).
    #[default]
    Disk,
    /// In memory: nothing survives a restart.
    Memory,
}

impl fmt::Display for StoreEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreEngine::Disk => "disk",
            StoreEngine::Memory => "memory",
        })
    }
}

/// A store engine name that is not `disk` or `memory`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown store engine '{0}' (expected disk or memory)")]
pub struct UnknownEngine(pub String);

impl FromStr for StoreEngine {
    type Err = UnknownEngine;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disk" => Ok(StoreEngine::Disk),
            "memory" => Ok(StoreEngine::Memory),
            other => Err(UnknownEngine(other.to_owned())),
        }
    }
}

/// The `[store]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// "disk" or "memory". [disk]
    pub engine: StoreEngine,
    /// When a commit reaches the disk, and so when a PUBACK/PUBREC may go:
    /// "always" (one fsync per batch), "batch" (group commit: one fsync for
    /// every batch queued meanwhile), "never" (a checkpoint every
    /// `checkpoint_interval_ms`; a crash loses up to that). [batch]
    pub fsync: FsyncPolicy,
    /// Queued messages kept in the store per session; more are not stored
    /// (counted, logged). [100000]
    pub max_session_messages: u32,
    /// Bytes of queued messages kept in the store per session. [104857600]
    pub max_session_bytes: u64,
    /// Total bytes of records; past it QoS 1/2 publishes that need the
    /// store are refused (5.0: 0x97 Quota exceeded; 3.x: connection closed
    /// without acknowledgement). 0 = no cap. [4294967296]
    pub max_store_bytes: u64,
    /// Verify every page checksum when opening (reads the whole file), so
    /// that a damaged file is refused with a clear error. [true]
    pub verify_on_open: bool,
    /// Page cache of the database, bytes. [67108864]
    pub cache_bytes: usize,
    /// fsync = "never": interval of the durable checkpoint. [1000]
    pub checkpoint_interval_ms: u64,
    /// fsync = "batch": how long a commit may wait for more batches to join
    /// once there is concurrency, microseconds (0: measured best). [0]
    pub batch_delay_us: u64,
    /// Most operations in one transaction. [65536]
    pub max_batch_ops: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        let c = StoreConfig::default();
        StoreSection {
            engine: StoreEngine::Disk,
            fsync: c.fsync,
            max_session_messages: c.max_session_messages,
            max_session_bytes: c.max_session_bytes,
            max_store_bytes: c.max_store_bytes,
            verify_on_open: c.verify_on_open,
            cache_bytes: c.cache_bytes,
            checkpoint_interval_ms: u64::try_from(c.checkpoint_interval.as_millis())
                .unwrap_or(u64::MAX),
            batch_delay_us: u64::try_from(c.batch_delay.as_micros()).unwrap_or(u64::MAX),
            max_batch_ops: c.max_batch_ops,
        }
    }
}

impl StoreSection {
    /// Range checks serde cannot make; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch_ops == 0 {
            return Err("store.max_batch_ops must be at least 1".into());
        }
        if self.checkpoint_interval_ms == 0 {
            return Err("store.checkpoint_interval_ms must be at least 1".into());
        }
        if self.max_session_messages == 0 {
            return Err("store.max_session_messages must be at least 1".into());
        }
        Ok(())
    }

    /// The store crate's settings.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            fsync: self.fsync,
            batch_delay: Duration::from_micros(self.batch_delay_us),
            max_batch_ops: self.max_batch_ops,
            max_session_messages: self.max_session_messages,
            max_session_bytes: self.max_session_bytes,
            max_store_bytes: self.max_store_bytes,
            verify_on_open: self.verify_on_open,
            cache_bytes: self.cache_bytes,
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms),
        }
    }

    /// Opens the configured store (the disk one in `data_dir`, locked for
    /// this process).
    pub fn open(&self, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self.engine {
            StoreEngine::Disk => Arc::new(DiskStore::open(data_dir, self.store_config())?),
            StoreEngine::Memory => Arc::new(MemoryStore::new(&self.store_config())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_store_crates() {
        let s = StoreSection::default();
        assert_eq!(s.store_config(), StoreConfig::default());
        assert_eq!((s.engine, s.fsync), (StoreEngine::Disk, FsyncPolicy::Batch));
    }

    #[test]
    fn names_parse() {
        assert_eq!("memory".parse::<StoreEngine>(), Ok(StoreEngine::Memory));
        assert!("tape".parse::<StoreEngine>().is_err());
    }
}
