//! The data directory: an exclusive `flock` on `midge.lock` (so that a
//! second process on the same directory fails with a clear message naming
//! the holder's pid) and the `FORMAT` file naming the store format version
//! (so that a directory written by another midge version is refused, not
//! misread).
//!
//! ```text
//! DATA_DIR/
//!   midge.lock   flock'd while open; holds the owner's pid
//!   FORMAT       "midge-store <version>"
//!   store.redb   the database
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs4::FileExt;

use crate::codec::FORMAT_VERSION;
use crate::error::StoreError;

pub(crate) const LOCK_FILE: &str = "midge.lock";
pub(crate) const FORMAT_FILE: &str = "FORMAT";
pub(crate) const DB_FILE: &str = "store.redb";
const FORMAT_PREFIX: &str = "midge-store ";

/// An open, locked data directory. The lock goes when this is dropped.
#[derive(Debug)]
pub(crate) struct DataDir {
    path: PathBuf,
    // Held for the flock; closing the file releases it.
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed, locks it, and checks (or, for a new
    /// directory, writes) its format version.
    pub fn open(path: &Path) -> Result<DataDir, StoreError> {
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::io("cannot create data directory", path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StoreError::io("cannot open lock file", &lock_path, e))?;
        // Fully qualified: std's File has an inherent method of the same
        // name only in newer Rust than the workspace's minimum.
        match FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                return Err(StoreError::Locked {
                    dir: path.to_path_buf(),
                    lock: lock_path,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(StoreError::io("cannot lock", &lock_path, e));
            }
        }
        // Tell a second process who holds the directory.
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(lock, "{}", std::process::id()));
        check_format(path)?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Like [`DataDir::open`] for the offline tools: the directory must
    /// exist already (a typo must not create an empty store).
    pub fn open_existing(path: &Path) -> Result<DataDir, StoreError> {
        if !path.is_dir() {
            return Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                reason: "no such directory".into(),
            });
        }
        DataDir::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }
}

/// Reads `FORMAT`, or writes it in a directory without a database yet.
fn check_format(dir: &Path) -> Result<(), StoreError> {
    let format_path = dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&format_path) {
        Ok(text) => {
            let found = text.trim();
            let version = found
                .strip_prefix(FORMAT_PREFIX)
                .and_then(|v| v.trim().parse::<u32>().ok());
            match version {
                Some(v) if v == FORMAT_VERSION => Ok(()),
                Some(_) => Err(StoreError::VersionMismatch {
                    dir: dir.to_path_buf(),
                    found: found.to_owned(),
                    supported: FORMAT_VERSION,
                }),
                None => Err(StoreError::NotAStore {
                    path: format_path,
                    reason: format!("unreadable format line '{found}'"),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let db = dir.join(DB_FILE);
            if db.exists() {
                return Err(StoreError::NotAStore {
                    path: dir.to_path_buf(),
                    reason: format!("{} exists without a {FORMAT_FILE} file", db.display()),
                });
            }
            write_format(dir)
        }
        Err(e) => Err(StoreError::io("cannot read", format_path, e)),
    }
}

/// Writes `FORMAT` atomically (temporary file, fsync, rename).
pub(crate) fn write_format(dir: &Path) -> Result<(), StoreError> {
    let tmp = dir.join("FORMAT.tmp");
    let path = dir.join(FORMAT_FILE);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{FORMAT_PREFIX}{FORMAT_VERSION}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    };
    write().map_err(|e| StoreError::io("cannot write", dir.join(FORMAT_FILE), e))
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
