//! Opening the redb file: builder settings, errors turned into what a user
//! can act on (a damaged file names `midge store check` and `repair`), and
//! an optional fault-injecting file backend for tests of write failures.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{Database, DatabaseError, StorageBackend, StorageError};

use crate::error::StoreError;

/// Makes every write, resize and fsync of a store's database file fail with
/// "no space left on device" while set: for tests of what a full disk does.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<AtomicBool>);

impl FaultSwitch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, failing: bool) {
        self.0.store(failing, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn check(&self) -> io::Result<()> {
        if self.is_set() {
            // ENOSPC, as a full disk reports it.
            Err(io::Error::from_raw_os_error(28))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
struct FaultyBackend {
    inner: FileBackend,
    switch: FaultSwitch,
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.switch.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.switch.check()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.switch.check()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
}

/// How to (re)open one store's database.
#[derive(Debug, Clone)]
pub(crate) struct Opener {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub cache_bytes: usize,
    pub fault: Option<FaultSwitch>,
}

impl Opener {
    /// Opens or creates the database; with `verify`, every page checksum
    /// is checked first.
    pub fn open(&self, verify: bool) -> Result<Database, StoreError> {
        let mut builder = Database::builder();
        builder.set_cache_size(self.cache_bytes);
        builder.set_check_integrity_on_open(verify);
        // redb may panic on a damaged file it was not asked to verify;
        // that is a corrupt store, not a crash of the broker.
        let opened = catch_unwind(AssertUnwindSafe(|| match &self.fault {
            None => builder.create(&self.path),
            Some(switch) => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&self.path)?;
                builder.create_with_backend(FaultyBackend {
                    inner: FileBackend::new(file)?,
                    switch: switch.clone(),
                })
            }
        }));
        match opened {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(e)) => Err(open_error(e, &self.path, &self.dir)),
            Err(_) => Err(corrupt(
                &self.path,
                &self.dir,
                "the database could not be read (it panicked while opening)".into(),
            )),
        }
    }
}

pub(crate) fn corrupt(path: &Path, dir: &Path, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        reason,
    }
}

fn open_error(e: DatabaseError, path: &Path, dir: &Path) -> StoreError {
    match e {
        DatabaseError::Storage(StorageError::Corrupted(reason)) => corrupt(path, dir, reason),
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == io::ErrorKind::UnexpectedEof =>
        {
            corrupt(path, dir, "the file is truncated".into())
        }
        DatabaseError::Storage(StorageError::Io(io)) => {
            StoreError::io("cannot open store file", path, io)
        }
        DatabaseError::RepairAborted => corrupt(path, dir, "repair after a crash failed".into()),
        DatabaseError::UpgradeRequired(v) => StoreError::NotAStore {
            path: path.to_path_buf(),
            reason: format!("database file format {v} is older than this redb reads"),
        },
        other => StoreError::Db(other.to_string()),
    }
}
