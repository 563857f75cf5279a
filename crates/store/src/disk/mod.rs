//! The embedded store: a redb database in a locked, versioned data
//! directory, written by one writer thread with group commit.
//!
//! `DiskStore::open` locks the directory, checks its format, opens (and by
//! default verifies) the database and rebuilds the bookkeeping; then every
//! write goes through the writer thread (`writer`). Dropping the store
//! makes the last writes durable, stops the thread and releases the lock.

pub mod check;
mod db;
mod dir;
mod salvage;
mod tables;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase};

pub use db::FaultSwitch;

use crate::account::Accounting;
use crate::codec::{self, FORMAT_VERSION};
use crate::commit::Commit;
use crate::config::StoreConfig;
use crate::error::{CommitError, StoreError};
use crate::keys::{self, Table};
use crate::op::Batch;
use crate::recover::Recovered;
use crate::stats::{Counters, Ids, StoreStats};
use crate::tx::Tx;
use crate::Store;
use db::Opener;
use dir::DataDir;
use tables::{ReadTables, WriteTables};
use writer::{Request, Writer};

/// The store on disk. See the module documentation.
#[derive(Debug)]
pub struct DiskStore {
    // Dropped first (in `Drop`) so that the writer sees the channel close.
    // Unbounded: `submit` never blocks the caller (a tokio worker). The
    // back pressure is the commits themselves: a publisher's connection
    // stops reading while it waits for too many of them.
    tx: Option<Sender<Request>>,
    // Mutexes only for `Store::shutdown` (through a shared reference):
    // never touched on the write path.
    thread: Mutex<Option<JoinHandle<()>>>,
    ids: Ids,
    counters: Arc<Counters>,
    config: StoreConfig,
    path: PathBuf,
    // Last: the lock goes only after the writer closed the database.
    dir: Mutex<Option<DataDir>>,
}

impl DiskStore {
    /// Opens (creating if needed) the store in directory `dir`.
    ///
    /// Fails with [`StoreError::Locked`] if another process has it open,
    /// [`StoreError::VersionMismatch`] if another format wrote it, and
    /// [`StoreError::Corrupt`] if the file is damaged (see `midge store
    /// check` and `repair`).
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<DiskStore, StoreError> {
        DiskStore::open_inner(dir.as_ref(), config, None)
    }

    /// [`DiskStore::open`] with a switch that makes the file's writes fail
    /// (as a full disk does), for tests.
    pub fn open_with_faults(
        dir: impl AsRef<Path>,
        config: StoreConfig,
        faults: FaultSwitch,
    ) -> Result<DiskStore, StoreError> {
        DiskStore::open_inner(dir.as_ref(), config, Some(faults))
    }

    fn open_inner(
        path: &Path,
        config: StoreConfig,
        fault: Option<FaultSwitch>,
    ) -> Result<DiskStore, StoreError> {
        let dir = DataDir::open(path)?;
        let opener = Opener {
            path: dir.db_path(),
            dir: dir.path().to_path_buf(),
            cache_bytes: config.cache_bytes,
            fault,
        };
        let db = opener.open(config.verify_on_open)?;
        init_format(&db, dir.path())?;
        let acct = {
            let txn = db.begin_read().map_err(|e| StoreError::Db(e.to_string()))?;
            let mut tables = ReadTables::open(&txn).map_err(|e| StoreError::Db(e.0))?;
            Accounting::build(&mut tables).map_err(|e| StoreError::Db(e.0))?
        };
        let ids = Ids::new(acct.max_msg_id, acct.max_seq);
        let counters = Arc::new(Counters::default());
        counters.set_usage(acct.total_bytes, acct.msgs.len() as u64);
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(db, opener, acct, config.clone(), counters.clone(), rx);
        let thread = std::thread::Builder::new()
            .name("midge-store".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::io("cannot start the store writer thread", path, e))?;
        tracing::info!(dir = %path.display(), fsync = %config.fsync, "store opened");
        Ok(DiskStore {
            tx: Some(tx),
            thread: Mutex::new(Some(thread)),
            ids,
            counters,
            config,
            path: dir.path().to_path_buf(),
            dir: Mutex::new(Some(dir)),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Makes pending writes durable, stops the writer and releases the
    /// directory (as dropping does).
    pub fn close(self) {
        drop(self);
    }

    fn send(&self, req: Request) -> Result<(), ()> {
        let batch = matches!(req, Request::Batch(..));
        let sent = match &self.tx {
            Some(tx) => tx.send(req).map_err(|_| ()),
            None => Err(()),
        };
        if batch && sent.is_ok() {
            self.counters.queued(1);
        }
        sent
    }
}

impl DiskStore {
    fn join_writer(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        self.tx = None;
        self.join_writer();
    }
}

impl Store for DiskStore {
    fn submit(&self, batch: Batch) -> Commit {
        let (waiter, commit) = Commit::channel();
        match self.send(Request::Batch(batch, Some(waiter))) {
            Ok(()) => commit,
            Err(()) => Commit::ready(Err(CommitError::Closed)),
        }
    }

    fn submit_detached(&self, batch: Batch) {
        if self.send(Request::Batch(batch, None)).is_err() {
            tracing::warn!("store closed: batch dropped");
        }
    }

    fn sync(&self) -> Commit {
        let (waiter, commit) = Commit::channel();
        match self.send(Request::Sync(waiter)) {
            Ok(()) => commit,
            Err(()) => Commit::ready(Err(CommitError::Closed)),
        }
    }

    fn load_at(&self, now_ms: u64) -> Result<Recovered, StoreError> {
        // A std channel: `load` may be called from async code at start,
        // where a tokio blocking receive would panic.
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Request::Load(now_ms, reply))
            .map_err(|()| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    fn next_message_id(&self) -> u64 {
        self.ids.next_msg()
    }

    fn next_seq(&self) -> u64 {
        self.ids.next_seq()
    }

    fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    fn name(&self) -> &'static str {
        "disk"
    }

    fn shutdown(&self) {
        // The writer makes everything before durable, then stops; later
        // batches fail with `Closed`.
        let _ = self.send(Request::Close);
        self.join_writer();
        let dir = self.dir.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(dir);
    }
}

/// Writes the format version into a new database, or checks it.
fn init_format(db: &Database, dir: &Path) -> Result<(), StoreError> {
    let dberr = |e: String| StoreError::Db(e);
    let txn = db.begin_write().map_err(|e| dberr(e.to_string()))?;
    {
        let mut tables = WriteTables::open(&txn).map_err(|e| dberr(e.0))?;
        let mut value = Vec::new();
        let found = tables
            .get(Table::Meta, keys::META_FORMAT, &mut value)
            .map_err(|e| dberr(e.0))?;
        if found {
            let version = codec::decode_u64(&value).ok();
            if version != Some(u64::from(FORMAT_VERSION)) {
                return Err(StoreError::VersionMismatch {
                    dir: dir.to_path_buf(),
                    found: version.map_or_else(|| "unreadable".into(), |v| v.to_string()),
                    supported: FORMAT_VERSION,
                });
            }
        } else {
            codec::encode_u64(&mut value, u64::from(FORMAT_VERSION));
            let mut old = Vec::new();
            tables
                .put(Table::Meta, keys::META_FORMAT, &value, &mut old)
                .map_err(|e| dberr(e.0))?;
        }
    }
    txn.commit().map_err(|e| dberr(e.to_string()))
}

/// The path of the database file in a data directory.
pub fn db_file(dir: impl AsRef<Path>) -> PathBuf {
    dir.as_ref().join(dir::DB_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_of_another_format_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        DiskStore::open(&dir, StoreConfig::default())
            .expect("create")
            .close();
        // The FORMAT file says 1, the database says 999 (a file copied in
        // from elsewhere): refused all the same.
        {
            let db = Database::create(db_file(&dir)).expect("db");
            let txn = db.begin_write().expect("txn");
            {
                let mut tables = WriteTables::open(&txn).expect("tables");
                let mut value = Vec::new();
                codec::encode_u64(&mut value, 999);
                let mut old = Vec::new();
                tables
                    .put(Table::Meta, keys::META_FORMAT, &value, &mut old)
                    .expect("put");
            }
            txn.commit().expect("commit");
        }
        let err = DiskStore::open(&dir, StoreConfig::default()).expect_err("refused");
        match err {
            StoreError::VersionMismatch { found, .. } => assert_eq!(found, "999"),
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
    }
}
